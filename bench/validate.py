"""Benchmark of OCPP payload validation: orjson.loads vs PayloadValidator.validate vs jsonschema, per frame.

Builds a realistic mix of OCPP-J frames (1.6 and 2.0.1: MeterValues with 8 sampled values, StatusNotification,
Heartbeat, Authorize, Start/StopTransaction, TransactionEvent, BootNotification and their CALLRESULTs) and
measures, in one run and on the same frames:

* ``orjson.loads`` of each frame (the floor of any Python pipeline),
* ``PayloadValidator.validate`` of each decoded payload (schemas compiled beforehand),
* the exact validator alone (what a payload the fast path refuses costs),
* ``jsonschema`` validation of each payload with a FormatChecker (validators built once per schema).

Run: ``.venv/bin/python bench/validate.py [--frames N] [--jsonschema-frames M] [--capture FILE]``
(with ``--capture``, the frames are the CALLs and matched CALLRESULTs of an OCPP capture, e.g. one written by
``chargeguard simulate``).
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import orjson

from chargeguard.sources.ocpp.schemas import VERSIONS, PayloadValidator, known_actions, load_schema
from chargeguard.sources.ocpp.schemas_exact import compile_exact

Frame = tuple[str, str, str, bytes]  # version, action, kind, raw frame

MEASURANDS_16 = [
    ("Energy.Active.Import.Register", "Wh"),
    ("Power.Active.Import", "W"),
    ("Current.Import", "A"),
    ("Voltage", "V"),
    ("SoC", "Percent"),
    ("Temperature", "Celsius"),
    ("Current.Offered", "A"),
    ("Power.Offered", "W"),
]

# OCPP 2.0.1 has no Temperature measurand
MEASURANDS_201 = [(m, u) if m != "Temperature" else ("Frequency", "Hz") for m, u in MEASURANDS_16]


def _ts(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _payloads(rnd: random.Random, moment: datetime) -> list[tuple[str, str, dict[str, Any], dict[str, Any]]]:
    """One of each message of the mix: (version, action, request, response)."""
    tag = f"{rnd.getrandbits(56):014X}"
    energy = rnd.randint(0, 10**7)
    ts = _ts(moment)
    sampled_16 = [
        {
            "value": f"{rnd.uniform(0, 1000):.1f}",
            "context": "Sample.Periodic",
            "format": "Raw",
            "measurand": measurand,
            "location": "Outlet",
            "unit": unit,
        }
        for measurand, unit in MEASURANDS_16
    ]
    sampled_201 = [
        {
            "value": rnd.uniform(0, 1000),
            "context": "Sample.Periodic",
            "measurand": measurand,
            "location": "Outlet",
            "unitOfMeasure": {"unit": unit, "multiplier": 0},
        }
        for measurand, unit in MEASURANDS_201
    ]
    id_tag_info = {"status": "Accepted", "expiryDate": _ts(moment + timedelta(days=30))}
    return [
        (
            "1.6",
            "MeterValues",
            {
                "connectorId": 1,
                "transactionId": 42,
                "meterValue": [{"timestamp": ts, "sampledValue": sampled_16}],
            },
            {},
        ),
        (
            "1.6",
            "StatusNotification",
            {"connectorId": 1, "errorCode": "NoError", "status": "Charging", "timestamp": ts},
            {},
        ),
        ("1.6", "Heartbeat", {}, {"currentTime": ts}),
        ("1.6", "Authorize", {"idTag": tag}, {"idTagInfo": id_tag_info}),
        (
            "1.6",
            "StartTransaction",
            {"connectorId": 1, "idTag": tag, "meterStart": energy, "timestamp": ts},
            {"transactionId": 42, "idTagInfo": id_tag_info},
        ),
        (
            "1.6",
            "StopTransaction",
            {
                "transactionId": 42,
                "idTag": tag,
                "meterStop": energy + 5000,
                "timestamp": ts,
                "reason": "Local",
            },
            {"idTagInfo": id_tag_info},
        ),
        (
            "1.6",
            "BootNotification",
            {"chargePointVendor": "Vendor", "chargePointModel": "Model X", "firmwareVersion": "1.2.3"},
            {"status": "Accepted", "currentTime": ts, "interval": 300},
        ),
        (
            "2.0.1",
            "TransactionEvent",
            {
                "eventType": "Updated",
                "timestamp": ts,
                "triggerReason": "MeterValuePeriodic",
                "seqNo": 7,
                "transactionInfo": {"transactionId": "tx-8f3a", "chargingState": "Charging"},
                "evse": {"id": 1, "connectorId": 1},
                "idToken": {"idToken": tag, "type": "ISO14443"},
                "meterValue": [{"timestamp": ts, "sampledValue": sampled_201}],
            },
            {"totalCost": 12.5, "idTokenInfo": {"status": "Accepted"}},
        ),
        (
            "2.0.1",
            "StatusNotification",
            {"timestamp": ts, "connectorStatus": "Occupied", "evseId": 1, "connectorId": 1},
            {},
        ),
        ("2.0.1", "Heartbeat", {}, {"currentTime": ts}),
        (
            "2.0.1",
            "Authorize",
            {"idToken": {"idToken": tag, "type": "ISO14443"}},
            {"idTokenInfo": {"status": "Accepted"}},
        ),
    ]


# how often each message occurs in the mix (meter values and status dominate real traffic)
WEIGHTS = {
    ("1.6", "MeterValues"): 30,
    ("1.6", "StatusNotification"): 8,
    ("1.6", "Heartbeat"): 10,
    ("1.6", "Authorize"): 3,
    ("1.6", "StartTransaction"): 2,
    ("1.6", "StopTransaction"): 2,
    ("1.6", "BootNotification"): 1,
    ("2.0.1", "TransactionEvent"): 25,
    ("2.0.1", "StatusNotification"): 6,
    ("2.0.1", "Heartbeat"): 8,
    ("2.0.1", "Authorize"): 3,
}


def build_frames(count: int, seed: int = 7) -> list[Frame]:
    rnd = random.Random(seed)
    moment = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
    keys = list(WEIGHTS)
    weights = [WEIGHTS[key] for key in keys]
    frames: list[Frame] = []
    while len(frames) < count:
        moment += timedelta(seconds=rnd.uniform(0, 2))
        catalogue = {
            (version, action): (request, response)
            for version, action, request, response in _payloads(rnd, moment)
        }
        version, action = rnd.choices(keys, weights)[0]
        request, response = catalogue[(version, action)]
        message_id = f"{rnd.getrandbits(32):08x}"
        frames.append((version, action, "call", orjson.dumps([2, message_id, action, request])))
        frames.append((version, action, "result", orjson.dumps([3, message_id, response])))
    return frames[:count]


def read_capture(path: Path, limit: int) -> list[Frame]:
    """The CALLs of known actions and their matched CALLRESULTs from a capture (JSON Lines), in order."""
    frames: list[Frame] = []
    pending: dict[tuple[str, str, str], str] = {}  # (station, sender of the CALL, message id) -> action
    with path.open("rb") as lines:
        for line in lines:
            record = orjson.loads(line)
            frame, version = record.get("frame"), record.get("ocpp")
            if not isinstance(frame, list) or len(frame) < 3 or version not in VERSIONS:
                continue
            if frame[0] in (2, 6) and len(frame) == 4 and frame[2] in known_actions(version):
                pending[(record["station"], record["from"], str(frame[1]))] = frame[2]
                frames.append((version, frame[2], "call", orjson.dumps(frame)))
            elif frame[0] == 3:
                caller = "csms" if record["from"] == "station" else "station"
                action = pending.pop((record["station"], caller, str(frame[1])), None)
                if action is not None:
                    frames.append((version, action, "result", orjson.dumps(frame)))
            if len(frames) >= limit:
                break
    return frames


def per_frame_us(fn: Callable[[], None], frames: int) -> float:
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best / frames * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--frames", type=int, default=200_000)
    parser.add_argument("--jsonschema-frames", type=int, default=5_000)
    parser.add_argument(
        "--capture", type=Path, help="measure on the CALLs/CALLRESULTs of this capture instead"
    )
    args = parser.parse_args()

    frames = read_capture(args.capture, args.frames) if args.capture else build_frames(args.frames)
    raw = [frame for _v, _a, _k, frame in frames]
    decoded = [(version, action, kind, orjson.loads(frame)[-1]) for version, action, kind, frame in frames]
    validator = PayloadValidator()
    validator.compile_all()
    invalid = sum(validator.validate(v, a, k, p) is not None for v, a, k, p in decoded)  # type: ignore[arg-type]
    if invalid and not args.capture:
        raise SystemExit(f"{invalid} frames of the benchmark mix are invalid: fix the generator")
    print(f"invalid payloads: {invalid:,}")

    def loads() -> None:
        for frame in raw:
            orjson.loads(frame)

    def validate() -> None:
        check = validator.validate
        for version, action, kind, payload in decoded:
            check(version, action, kind, payload)  # type: ignore[arg-type]

    exact_checks = {
        key: compile_exact(load_schema(*key))  # type: ignore[arg-type]
        for key in {(version, action, kind) for version, action, kind, _payload in decoded}
    }

    def exact() -> None:
        for version, action, kind, payload in decoded:
            exact_checks[(version, action, kind)](payload)

    references: dict[tuple[str, str, str], Any] = {}
    for version, action, kind, _payload in decoded:
        if (version, action, kind) not in references:
            schema = load_schema(version, action, kind)  # type: ignore[arg-type]
            cls = jsonschema.validators.validator_for(schema)
            references[(version, action, kind)] = cls(schema, format_checker=cls.FORMAT_CHECKER)
    sample = decoded[: args.jsonschema_frames]

    def reference() -> None:
        for version, action, kind, payload in sample:
            references[(version, action, kind)].is_valid(payload)

    loads_us = per_frame_us(loads, len(raw))
    validate_us = per_frame_us(validate, len(decoded))
    exact_us = per_frame_us(exact, len(decoded))
    reference_us = per_frame_us(reference, len(sample))
    size = sum(map(len, raw)) / len(raw)
    print(f"frames: {len(raw):,} (mean {size:.0f} bytes; jsonschema on the first {len(sample):,})")
    rows = [
        ("orjson.loads", loads_us),
        ("PayloadValidator.validate", validate_us),
        ("exact validator alone", exact_us),
        ("jsonschema + FormatChecker", reference_us),
    ]
    for name, us in rows:
        print(f"{name:<28}{us:9.2f} us/frame {us / loads_us:8.2f}x orjson.loads")
    print(f"validate is {reference_us / validate_us:.0f}x faster than jsonschema")
    print(f"loads + validate: {1e6 / (loads_us + validate_us):,.0f} frames/s on one core")


if __name__ == "__main__":
    main()
