"""Alerts as JSON Lines (the public Alerts format, docs/formats.md) - one alert per line.

The encoder is the only place an Alert becomes JSON, so the API, exports and files agree; every string passes the
redaction layer's token net on the way out (evidence is built from pseudonyms already; this catches vendor
free text).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import IO, Any

import orjson

from chargeguard.events import Alert, Severity
from chargeguard.sources.timeparse import format_rfc3339, parse_rfc3339
from chargeguard.vault.redact import redact_value


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return format_rfc3339(value)
    if isinstance(value, Severity):
        return value.label
    if isinstance(value, tuple | set | frozenset):
        return list(value)
    raise TypeError(type(value).__name__)


def alert_to_dict(alert: Alert) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": alert.id,
        "kind": alert.kind,
        "severity": alert.severity.label,
        "confidence": round(alert.confidence, 3),
        "ts": format_rfc3339(alert.ts),
        "station": alert.station,
        "stations": list(alert.stations),
        "transactions": list(alert.transactions),
        "token_ref": alert.token_ref,
        "summary": alert.summary,
        "evidence": alert.evidence,
        "last_ts": format_rfc3339(alert.last_ts) if alert.last_ts else None,
        "status": alert.status,
        "count": alert.count,
    }
    redacted: dict[str, Any] = redact_value(out)
    return redacted


def encode_alert(alert: Alert) -> bytes:
    return orjson.dumps(alert_to_dict(alert), default=_default, option=orjson.OPT_NON_STR_KEYS) + b"\n"


def alert_from_dict(data: Mapping[str, Any]) -> Alert:
    """Decode one alert line (used by eval and tests); raises KeyError/ValueError on bad shapes."""
    ts = parse_rfc3339(data["ts"])
    if ts is None:
        raise ValueError("ts is not an RFC 3339 timestamp with zone")
    last = parse_rfc3339(data.get("last_ts")) if data.get("last_ts") else None
    return Alert(
        id=str(data["id"]),
        kind=str(data["kind"]),
        severity=Severity.parse(str(data["severity"])),
        confidence=float(data["confidence"]),
        ts=ts,
        station=data.get("station"),
        stations=tuple(data.get("stations") or ()),
        transactions=tuple(str(t) for t in data.get("transactions") or ()),
        token_ref=data.get("token_ref"),
        summary=str(data.get("summary", "")),
        evidence=dict(data.get("evidence") or {}),
        last_ts=last,
        status="closed" if data.get("status") == "closed" else "open",
        count=int(data.get("count", 1)),
    )


class JsonlAlertWriter:
    """Writes closed alerts to a binary stream, flushing per alert when the stream is interactive."""

    def __init__(self, stream: IO[bytes], *, flush_each: bool = False) -> None:
        self.stream = stream
        self.flush_each = flush_each
        self.written = 0

    def __call__(self, alert: Alert) -> None:
        self.stream.write(encode_alert(alert))
        self.written += 1
        if self.flush_each:
            self.stream.flush()
