"""Benchmark of OCPI real-time authorisation over HTTP on loopback, fraud decision included, beside a trivial
endpoint served by the same app in the same run.

The server (uvicorn, one worker) runs in its own process: the chargeguard OCPI app acting as eMSP, with 10,000
published tokens and the default fraud decision (the token's status plus open alerts on its pseudonym, read from a
real SQLite store holding 5,000 alerts). The client, in this process, keeps one HTTP/1.1 connection and sends, one
at a time and interleaved, ``POST /ocpi/2.2.1/emsp/tokens/{uid}/authorize?type=RFID`` (random known tokens; a
share of them have open alerts and are BLOCKED) and ``GET /bench/ping`` (a route that returns a constant: the
HTTP and framework floor). Figures: p50/p99/max milliseconds of each, as the client measures them.

Run: ``.venv/bin/python bench/ocpi_authorize.py [--requests 3000]``  (goal: authorisation p99 < 50 ms)
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import random
import socket
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import msgspec
import uvicorn

from chargeguard.events import Alert, Severity
from chargeguard.logs import configure_logging
from chargeguard.sources.ocpi.connector.app import create_app
from chargeguard.sources.ocpi.connector.client import OcpiClient
from chargeguard.sources.ocpi.connector.context import Connector, ConnectorConfig
from chargeguard.sources.ocpi.connector.decision import TokenStatusDecision
from chargeguard.sources.ocpi.connector.headers import Party, encode_token
from chargeguard.sources.ocpi.connector.store import PartnerStore
from chargeguard.sources.ocpi.importer import pseudonymise
from chargeguard.sources.ocpi.models import Token
from chargeguard.store import Store
from chargeguard.vault.pseudonyms import Pseudonymiser

TOKENS = 10_000
ALERTED = 500
PSEUDONYMISER = Pseudonymiser({1: b"b" * 32}, 1)


def uid_of(i: int) -> str:
    return f"04{i:012X}"


def serve(sock: socket.socket, db: str, ready: mp.synchronize.Event, access: mp.Queue) -> None:  # type: ignore[type-arg]
    configure_logging("warning")  # as deployed: no per-request info lines
    store = Store.open(f"sqlite:///{db}")
    party = Party("DE", "CGD")
    connector = Connector(
        config=ConnectorConfig(base_url="http://127.0.0.1", party=party, roles=frozenset({"EMSP"})),
        store=PartnerStore(),
        client=OcpiClient(party),
        pseudonymiser=PSEUDONYMISER,
    )
    for i in range(TOKENS):
        raw = {
            "country_code": "DE",
            "party_id": "CGD",
            "uid": uid_of(i),
            "type": "RFID",
            "contract_id": f"DE-CGD-C{i:08d}",
            "issuer": "bench",
            "valid": i % 97 != 0,
            "whitelist": "ALLOWED",
            "last_updated": "2026-01-01T00:00:00Z",
        }
        connector.published.put("tokens", pseudonymise(msgspec.convert(raw, type=Token), PSEUDONYMISER))
    connector.decision = TokenStatusDecision(
        connector.lookup_token,
        lambda pseudonym: [a.kind for a in store.alerts(token_ref=pseudonym, status="open", limit=20)],
    )
    partner = connector.store.create_partner("bench-cpo")
    partner.registered = True
    connector.store.update(partner)
    access.put(connector.store.issue_token(partner.partner_id, "access"))
    app = create_app(connector)

    @app.get("/bench/ping")
    async def ping() -> dict[str, str]:
        return {"pong": "1"}

    server = uvicorn.Server(uvicorn.Config(app, log_level="error", access_log=False, lifespan="off"))
    ready.set()
    server.run(sockets=[sock])


def seed_alerts(db: str) -> None:
    store = Store.open(f"sqlite:///{db}")
    now = datetime(2026, 1, 1, tzinfo=UTC)
    alerts = [
        Alert(
            id=f"bench-{i}",
            kind="token.velocity",
            severity=Severity.HIGH,
            confidence=0.9,
            ts=now,
            station="CS1",
            stations=("CS1",),
            transactions=(),
            summary="bench",
            token_ref=PSEUDONYMISER(uid_of(i % ALERTED if i < ALERTED else TOKENS + i)),
            evidence={},
        )
        for i in range(5000)
    ]
    store.save_alerts(alerts)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=3000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "bench.db")
        seed_alerts(db)
        # proto IPPROTO_TCP: asyncio sets TCP_NODELAY on accepted connections only for such sockets (with the
        # default proto 0 every response pays Nagle + delayed ACK, ~40 ms); uvicorn's own binding gets it right
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        ctx = mp.get_context("spawn")
        ready, access = ctx.Event(), ctx.Queue()
        proc = ctx.Process(target=serve, args=(sock, db, ready, access), daemon=True)
        proc.start()
        token = access.get(timeout=120)
        ready.wait(60)
        base = f"http://127.0.0.1:{port}"
        rng = random.Random(7)
        auth_ms: list[float] = []
        ping_ms: list[float] = []
        verdicts: dict[str, int] = {}
        try:
            with httpx.Client(headers={"Authorization": encode_token(token)}, timeout=10) as http:
                for _ in range(100):
                    try:
                        http.get(base + "/bench/ping")
                        break
                    except httpx.TransportError:
                        time.sleep(0.1)
                for n in range(args.requests + 200):  # the first 200 of each warm up
                    uid = uid_of(rng.randrange(TOKENS))
                    t0 = time.perf_counter()
                    resp = http.post(f"{base}/ocpi/2.2.1/emsp/tokens/{uid}/authorize?type=RFID")
                    t1 = time.perf_counter()
                    http.get(base + "/bench/ping")
                    t2 = time.perf_counter()
                    if n >= 200:
                        auth_ms.append((t1 - t0) * 1000)
                        ping_ms.append((t2 - t1) * 1000)
                        allowed = resp.json()["data"]["allowed"]
                        verdicts[allowed] = verdicts.get(allowed, 0) + 1
        finally:
            proc.terminate()
            proc.join(10)
    print(f"requests: {args.requests} of each, sequential, one keep-alive connection; verdicts {verdicts}")
    print(f"{'endpoint':<34} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for name, values in (
        ("authorize (fraud decision)", auth_ms),
        ("trivial /bench/ping (baseline)", ping_ms),
    ):
        print(f"{name:<34} {statistics.median(values):>8.2f} {pct(values, 0.99):>8.2f} {max(values):>8.2f}")
    p99 = pct(auth_ms, 0.99)
    print(f"goal p99 < 50 ms: {'met' if p99 < 50 else 'MISSED'} ({p99:.2f} ms)")


if __name__ == "__main__":
    main()
