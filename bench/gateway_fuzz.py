"""Fuzzing the gateway's frame path in-process: parse, the full guard chain (with the project's schema validator),
connection book-keeping and capture sanitising, on generated and mutated frames.

Frames: valid OCPP 1.6 / 2.0.1 / 2.1 frames, then grammar-aware mutations (values swapped for other JSON types,
truncated or extended arrays, unknown actions and message types, long ids), byte mutations (invalid UTF-8
included), oversize frames and deep nesting. Any exception is a failure (the gateway must turn every input into a
verdict); memory is sampled so that growth shows (per-connection state is bounded).

The sockets are exercised by tests/sources/ocpp/gateway (a bounded live sample runs in CI).

Run: ``.venv/bin/python bench/gateway_fuzz.py [--frames 1000000] [--seed 1]``
"""

from __future__ import annotations

import argparse
import random
import resource
import time
from typing import Any

import orjson

from chargeguard.sources.ocpp.gateway.config import PolicyConfig
from chargeguard.sources.ocpp.gateway.guards import ConnectionState, build_chain, default_validator
from chargeguard.sources.ocpp.gateway.redact import sanitise_frame
from chargeguard.sources.ocpp.gateway.wire import Direction, parse_frame
from chargeguard.vault.pseudonyms import Pseudonymiser

TS = "2026-03-01T08:00:00Z"
VALID: dict[str, list[list[Any]]] = {
    "1.6": [
        [2, "m", "Heartbeat", {}],
        [2, "m", "Authorize", {"idTag": "04A2B3C4D5E6F7"}],
        [2, "m", "StartTransaction", {"connectorId": 1, "idTag": "04A2B3C4D5E6F7", "meterStart": 0, "timestamp": TS}],
        [2, "m", "MeterValues", {"connectorId": 1,
                                 "meterValue": [{"timestamp": TS, "sampledValue": [{"value": "1"}]}]}],
        [2, "m", "ChangeConfiguration", {"key": "AuthorizationKey", "value": "00" * 20}],
        [3, "m", {"currentTime": TS}],
        [4, "m", "GenericError", "", {}],
    ],
    "2.0.1": [
        [2, "m", "Heartbeat", {}],
        [2, "m", "TransactionEvent", {"eventType": "Started", "timestamp": TS, "triggerReason": "Authorized",
                                      "seqNo": 0, "transactionInfo": {"transactionId": "T1"},
                                      "idToken": {"idToken": "04A2B3C4D5E6F7", "type": "ISO14443"}}],
        [2, "m", "BootNotification", {"reason": "PowerUp", "chargingStation": {"model": "M", "vendorName": "V"}}],
        [3, "m", {"currentTime": TS}],
    ],
    "2.1": [
        [2, "m", "Heartbeat", {}],
        [6, "m", "NotifyPeriodicEventStream", {"id": 1, "pending": 0, "basetime": TS, "data": [{"t": 0, "v": "1"}]}],
        [5, "m", "GenericError", "", {}],
    ],
}  # fmt: skip
ODD: list[Any] = [
    None,
    True,
    -1,
    2**70,
    1.5e308,
    "",
    "x" * 40,
    [],
    {},
    [[[[[]]]]],
    "\ud800",
    {"a": {"b": {}}},
]


def mutate(rng: random.Random, version: str, index: int) -> bytes:
    frame = orjson.loads(orjson.dumps(rng.choice(VALID[version])))
    frame[1] = f"f{index}"
    kind = rng.randrange(10)
    if kind == 0:
        frame[rng.randrange(len(frame))] = rng.choice(ODD)
    elif kind == 1:
        frame = frame[: rng.randrange(len(frame))]
    elif kind == 2:
        frame.append(rng.choice(ODD))
    elif kind == 3 and len(frame) == 4:
        frame[2] = rng.choice(
            ["Frobnicate", "../../v201/schemas/Heartbeat", "RemoteStartTransaction", "Reset"]
        )
    elif kind == 4 and isinstance(frame[-1], dict):
        frame[-1][rng.choice(["idTag", "extra", "timestamp", "connectorId"])] = rng.choice(ODD)
    elif kind == 5:
        frame[0] = rng.randrange(-2, 9)
    elif kind == 6:
        frame[1] = rng.choice(["", "x" * rng.randrange(30, 80), f"f{index - rng.randrange(1, 50)}"])
    try:
        data = orjson.dumps(frame)
    except orjson.JSONEncodeError:  # lone surrogates: write them the way a broken station would
        data = repr(frame).encode("utf-8", "surrogatepass")
    if kind == 7:
        data = bytearray(data)
        for _ in range(rng.randrange(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        data = bytes(data)
    elif kind == 8 and rng.random() < 0.02:
        data = b"[" * 100_000 + b"]" * 100_000
    elif kind == 9 and rng.random() < 0.02:
        data = orjson.dumps([2, f"f{index}", "DataTransfer", {"vendorId": "v", "data": "A" * 70_000}])
    return data


def main(frames: int, seed: int) -> None:
    rng = random.Random(seed)
    validator = default_validator()
    unlimited = PolicyConfig(
        station_calls_per_s=1e9, station_call_burst=1e9, address_calls_per_s=1e9, address_call_burst=1e9
    )
    chain = build_chain(unlimited, validator, time.monotonic)
    pseudonymiser = Pseudonymiser({1: b"k" * 32}, 1)
    states = {v: ConnectionState("FUZZ", v, "127.0.0.1:1", 1) for v in VALID}
    verdicts: dict[str, int] = {}
    errors = 0
    rss: list[int] = []
    started = time.perf_counter()
    for i in range(frames):
        version = ("1.6", "2.0.1", "2.1")[i % 3]
        direction = Direction.STATION if i % 5 else Direction.CSMS
        data = mutate(rng, version, i)
        try:
            frame = parse_frame(data, direction, version)
            result = chain.check(frame, states[version])
            if result.verdict.allow:
                states[version].commit(frame)
                if frame.value is not None:
                    sanitise_frame(frame.value, pseudonymiser)
            key = result.verdict.reason or ("flagged" if result.flags else "allowed")
            verdicts[key] = verdicts.get(key, 0) + 1
        except Exception as exc:  # counting is the point of a fuzzer
            errors += 1
            if errors <= 5:
                print(f"frame {i}: {type(exc).__name__}")
        if i % (frames // 10 or 1) == 0:
            rss.append(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    elapsed = time.perf_counter() - started
    schema = "on" if validator else "off"
    print(f"frames={frames} seed={seed} schema validation={schema}: {frames / elapsed:,.0f} frames/s")
    print(f"unhandled exceptions: {errors}")
    print(f"max RSS (KiB) at each tenth: {rss}")
    print("verdicts: " + ", ".join(f"{k}={v}" for k, v in sorted(verdicts.items(), key=lambda kv: -kv[1])))
    print("seen ids per connection (bounded): " + ", ".join(f"{v}={len(s.sides[Direction.STATION].seen_ids)}"
                                                             for v, s in states.items()))  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    main(args.frames, args.seed)
