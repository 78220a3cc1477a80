"""Counting charging sessions in an OCPP capture (the denominator of false alerts per 1,000 sessions).

A session is a station's StartTransaction CALL (1.6) or a TransactionEvent CALL with ``eventType`` Started
(2.0.1 / 2.1). Lines that are not JSON or not frames are skipped: scanning reports them, counting does not.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import orjson

from chargeguard.errors import CaptureError


def count_sessions(path: Path) -> int:
    """Number of transaction starts a capture file (plain or .gz) shows."""
    opener = gzip.open if path.suffix == ".gz" else open
    count = 0
    try:
        with opener(path, "rb") as handle:
            for raw in handle:
                if b"StartTransaction" not in raw and b"Started" not in raw:
                    continue
                try:
                    obj = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    continue
                if not isinstance(obj, dict) or obj.get("from") != "station":
                    continue
                frame = obj.get("frame")
                if not isinstance(frame, list) or len(frame) != 4 or frame[0] != 2:
                    continue
                action, payload = frame[2], frame[3]
                if action == "StartTransaction" or (
                    action == "TransactionEvent"
                    and isinstance(payload, dict)
                    and payload.get("eventType") == "Started"
                ):
                    count += 1
    except FileNotFoundError as exc:
        raise CaptureError(f"{path} does not exist") from exc
    except (OSError, EOFError) as exc:
        raise CaptureError(f"{path} cannot be read completely: {exc.__class__.__name__}") from exc
    return count
