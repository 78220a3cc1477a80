"""Benchmark of the gateway at rest and after a restart: memory per idle station (both legs, compression), CPU
at rest, and a reconnect storm with OCPP back-off (time until every station is back, zero lost CALLs).

Three processes on 127.0.0.1: a central system, the gateway (pinned to core 0 when there are two cores) and the
stations (core 1). The open-file limit is raised to the hard limit, as a deployment would; the gateway needs two
descriptors per station, so ``--stations`` is capped by it.

1. N stations connect (each with its CSMS leg, permessage-deflate negotiated on both legs) and send one
   BootNotification; gateway RSS is read from /proc before and after: (after - before) / N per station.
2. CPU the gateway process uses over ``--rest`` seconds with every station idle (websockets keepalive pings on).
3. The gateway is stopped and a new one started on the same port; every station reconnects with a randomised
   back-off (OCPP 2.0.1 RetryBackOffWaitMinimum / RetryBackOffRandomRange, here 1 s + up to 2 s, doubling) and
   sends one Heartbeat; time until all are answered and the number of CALLs never answered.

Run: ``.venv/bin/python bench/gateway_idle.py [--stations 2000] [--rest 10] [--gateways 1]``; 10,000 stations
need ``--gateways 2`` where the open-file hard limit is 20,000 (as in the shared development container).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing as mp
import os
import random
import resource
import time
from pathlib import Path
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.headers import build_authorization_basic

PASSWORD = "0123456789abcdef0123456789abcdef01234567"
BOOT = {"chargePointVendor": "V", "chargePointModel": "M"}


def _raise_nofile() -> int:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def _pin(core: int) -> None:
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) >= 2:
        os.sched_setaffinity(0, {core})


def _rss_kib(pid: int) -> int:
    with Path(f"/proc/{pid}/status").open(encoding="ascii") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _cpu_s(pid: int) -> float:
    with Path(f"/proc/{pid}/stat").open(encoding="ascii") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _answer(connection: ServerConnection) -> None:
    with contextlib.suppress(ConnectionClosed):
        async for message in connection:
            frame = orjson.loads(message)
            payload = {"currentTime": "2026-03-01T08:00:00Z"}
            if frame[2] == "BootNotification":
                payload = {**payload, "interval": 300, "status": "Accepted"}
            await connection.send(orjson.dumps([3, frame[1], payload]).decode())


def _csms_process(ready: Any, port_out: Any) -> None:
    _raise_nofile()
    _pin(1)

    async def main() -> None:
        server = await serve(
            _answer,
            "127.0.0.1",
            0,
            subprotocols=["ocpp1.6"],  # type: ignore[list-item]
            backlog=4096,
            open_timeout=120,  # a loaded shared machine: do not drop handshakes the gateway is waiting for
        )
        port_out.value = server.sockets[0].getsockname()[1]
        ready.set()
        await server.serve_forever()

    asyncio.run(main())


def _gateway_process(
    csms_port: int,
    listen_port: int,
    stations: int,
    compression: str,
    ready: Any,
    port_out: Any,
    stop: Any,
    tuning: dict[str, Any],
) -> None:
    _raise_nofile()
    _pin(0)
    import structlog

    from chargeguard.sources.ocpp.gateway.auth import hash_password
    from chargeguard.sources.ocpp.gateway.config import parse_config
    from chargeguard.sources.ocpp.gateway.observer import ObserverFanout
    from chargeguard.sources.ocpp.gateway.proxy import Gateway

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))
    hashed = hash_password(PASSWORD, n=2**10)
    config = parse_config(
        {
            "listen": {"host": "127.0.0.1", "plain_port": listen_port},
            "upstream": {"url": f"ws://127.0.0.1:{csms_port}/csms", "open_timeout_s": 30},
            "stations": {
                f"IDLE-{i}": {"security_profile": 1, "allow_plain": True, "password_hash": hashed}
                for i in range(stations)
            },
            "policy": {
                "address_handshakes_per_s": 1e6,
                "address_handshake_burst": 1e6,
                "hashes_per_s": 1e6,
                "address_calls_per_s": 1e9,
                "address_call_burst": 1e9,
                "compression": compression != "off",
                "upstream_compression": compression == "both",
                **tuning,
            },
        },
        env={},
    )

    async def main() -> None:
        gateway = Gateway(config, ObserverFanout([]))
        await gateway.start()
        port_out.value = gateway.plain_port or 0
        ready.set()
        while not stop.is_set():
            await asyncio.sleep(0.05)
        await gateway.stop()

    asyncio.run(main())


def _start_gateway(
    ctx: Any, csms_port: int, listen_port: int, stations: int, compression: str, tuning: dict[str, Any]
) -> tuple[Any, Any, int]:
    ready, stop, port = ctx.Event(), ctx.Event(), ctx.Value("i", 0)
    args = (csms_port, listen_port, stations, compression, ready, port, stop, tuning)
    process = ctx.Process(target=_gateway_process, args=args)
    process.start()
    if not ready.wait(120):
        raise RuntimeError("gateway did not start")
    return process, stop, port.value


async def _station(index: int, port: int, message: str) -> ClientConnection:
    ws = await connect(
        f"ws://127.0.0.1:{port}/ocpp/IDLE-{index}",
        subprotocols=["ocpp1.6"],  # type: ignore[list-item]
        additional_headers={"Authorization": build_authorization_basic(f"IDLE-{index}", PASSWORD)},
        proxy=None,
        open_timeout=60,
    )
    await ws.send(message)
    await ws.recv()
    return ws


async def _reconnect(index: int, port: int, rng: random.Random) -> tuple[ClientConnection | None, int]:
    """OCPP back-off: wait min + random range, doubling up to 3 times; returns the connection and attempts."""
    wait = 1.0
    for attempt in range(1, 30):
        await asyncio.sleep(wait + rng.uniform(0, 2.0))
        try:
            return await _station(
                index, port, orjson.dumps([2, f"hb-{index}", "Heartbeat", {}]).decode()
            ), attempt
        except (OSError, InvalidHandshake, ConnectionClosed, TimeoutError):
            wait = min(wait * 2, 8.0)
    return None, 30


async def _first_connect(index: int, port: int, message: str, retries: list[int]) -> ClientConnection:
    """A station's first connection; refused or failed attempts are retried after a second, and counted."""
    for _ in range(20):
        try:
            return await _station(index, port, message)
        except (OSError, InvalidHandshake, ConnectionClosed, TimeoutError):
            retries.append(index)
            await asyncio.sleep(1.0)
    raise RuntimeError(f"station {index} could not connect")


async def _connect_all(
    indexes: list[int], ports: list[int], messages: list[str], retries: list[int]
) -> list[ClientConnection]:
    """Stations connect in parallel batches of 250 (a deployment's stations do not queue behind each other)."""
    clients: list[ClientConnection] = []
    for batch in range(0, len(indexes), 250):
        chunk = indexes[batch : batch + 250]
        clients += await asyncio.gather(
            *(_first_connect(i, ports[i % len(ports)], messages[i], retries) for i in chunk)
        )
    return clients


async def main(
    stations: int, rest_s: float, compression: str, gateways: int, tuning: dict[str, Any], storm: bool
) -> None:
    hard = _raise_nofile()
    _pin(1)
    # each gateway process holds two descriptors per station; where the hard limit is lower than that (a container
    # that may not raise it), the stations are spread over several gateway processes, all pinned to one core
    per_gateway = -(-stations // gateways)
    if 2 * per_gateway + 64 > hard:
        raise SystemExit(
            f"the open-file hard limit {hard} allows at most {(hard - 64) // 2} stations per gateway process: "
            f"use --gateways {-(-2 * stations // (hard - 64))}"
        )
    ctx = mp.get_context("spawn")
    csms_ready, csms_port = ctx.Event(), ctx.Value("i", 0)
    csms = ctx.Process(target=_csms_process, args=(csms_ready, csms_port), daemon=True)
    csms.start()
    csms_ready.wait(60)
    running = [
        _start_gateway(ctx, csms_port.value, 0, stations, compression, tuning) for _ in range(gateways)
    ]
    ports = [port for _, _, port in running]
    await asyncio.sleep(0.5)
    before = sum(_rss_kib(process.pid) for process, _, _ in running)
    boot = [orjson.dumps([2, f"boot-{i}", "BootNotification", BOOT]).decode() for i in range(stations)]
    started = time.perf_counter()
    retries: list[int] = []
    clients = await _connect_all(list(range(stations)), ports, boot, retries)
    connect_s = time.perf_counter() - started
    compressed = sum(
        "permessage-deflate" in (c.response.headers.get("Sec-WebSocket-Extensions") or "") for c in clients
    )
    await asyncio.sleep(1.0)
    after = sum(_rss_kib(process.pid) for process, _, _ in running)
    cpu_before = sum(_cpu_s(process.pid) for process, _, _ in running)
    await asyncio.sleep(rest_s)
    cpu_rest = (sum(_cpu_s(process.pid) for process, _, _ in running) - cpu_before) / rest_s

    print(
        f"stations={stations} over {gateways} gateway process(es) pinned to core 0 (open-file hard limit {hard}); "
        f"compression={compression}, negotiated on {compressed} station legs; policy {tuning or 'defaults'}"
    )
    print(f"load average (1/5/15 min) after the connects: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"connect + BootNotification for all: {connect_s:.1f} s ({len(retries)} attempts retried)")
    print(f"gateway RSS {before / 1024:.1f} MiB -> {after / 1024:.1f} MiB: "
          f"{(after - before) / stations:.1f} KiB per station (station leg + CSMS leg)")  # fmt: skip
    print(
        f"gateway CPU at rest: {100 * cpu_rest:.2f}% of one core over {rest_s:.0f} s (all gateway processes)",
        flush=True,
    )
    if not storm:
        for process, stop, _ in running:
            stop.set()
            process.join(60)
        for ws in clients:
            ws.transport.abort()
        csms.terminate()
        return

    # restart: stop the gateways (every station leg closes), start new ones on the same ports, storm back
    for process, stop, _ in running:
        stop.set()
        process.join(60)
    for ws in clients:
        ws.transport.abort()
    storm_start = time.perf_counter()
    running = [_start_gateway(ctx, csms_port.value, port, stations, compression, tuning) for port in ports]
    rng = random.Random(1)
    results = await asyncio.gather(*(_reconnect(i, ports[i % len(ports)], rng) for i in range(stations)))
    storm_s = time.perf_counter() - storm_start
    back = [ws for ws, _ in results if ws is not None]
    attempts = [n for _, n in results]
    for ws in back:
        ws.transport.abort()
    for process, stop, _ in running:
        stop.set()
        process.join(60)
    csms.terminate()

    print(f"reconnect storm after restart: all back in {storm_s:.1f} s (back-off 1 s + U(0,2) s, doubling); "
          f"{len(back)} / {stations} answered, lost CALLs: {stations - len(back)}, "
          f"max attempts {max(attempts)}")  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stations", type=int, default=2000)
    parser.add_argument("--rest", type=float, default=10.0)
    parser.add_argument(
        "--compression",
        choices=["both", "station", "off"],
        default="both",
        help="legs with permessage-deflate",
    )
    parser.add_argument(
        "--gateways", type=int, default=1, help="gateway processes sharing the stations (open-file limit)"
    )
    parser.add_argument("--ping-interval", type=float, default=20.0, help="keepalive seconds, 0 = none")
    parser.add_argument(
        "--context-takeover", action="store_true", help="keep zlib state between messages (default: not)"
    )
    parser.add_argument("--no-storm", action="store_true", help="skip the restart / reconnect storm")
    args = parser.parse_args()
    tuning: dict[str, Any] = {}
    if args.ping_interval != 20.0:
        interval = args.ping_interval or None
        tuning = {"station_ping_interval_s": interval, "upstream_ping_interval_s": interval}
    if args.context_takeover:
        tuning["deflate_context_takeover"] = True
    asyncio.run(main(args.stations, args.rest, args.compression, args.gateways, tuning, not args.no_storm))
