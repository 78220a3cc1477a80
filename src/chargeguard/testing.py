"""Test helpers shipped with the package: event factories and a collecting engine harness.

``an_event(TransactionStarted, station="CP-2")`` builds any event type with plausible defaults that a test overrides;
``run_detector(detector, events)`` feeds events through a real Engine and returns the closed alerts.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import msgspec

from chargeguard.detectors.base import Detector, DetectorContext, build_config
from chargeguard.engine import Engine
from chargeguard.events import Alert, Direction, Event

T = TypeVar("T")

BASE_TS = datetime(2026, 3, 1, 8, 0, 0, tzinfo=UTC)

_DEFAULTS: dict[str, Any] = {
    "ts": BASE_TS,
    "at": BASE_TS,
    "station": "CP-0001",
    "ocpp": "1.6",
    "direction": Direction.STATION,
    "message_type": 2,
    "action": "Heartbeat",
    "size": 64,
    "event": "connect",
    "reason": None,
    "detail": "",
    "token_ref": None,
    "status": "Accepted",
    "context": "Authorize",
    "transaction_id": "1",
    "connector": "1",
    "meter_start_wh": 0.0,
    "meter_stop_wh": 0.0,
    "energy_wh": None,
    "power_w": None,
    "stop_token_ref": None,
    "started_at": None,
    "samples": 0,
    "first_sample_wh": None,
    "last_sample_wh": None,
    "max_power_w": None,
    "charging_seen": True,
    "vendor": "ACME",
    "model": "Wallbox-22",
    "serial": "SN-0001",
    "firmware": "1.0.0",
    "source": "ChangeConfiguration",
    "key": "HeartbeatInterval",
    "value": "300",
    "event_type": "StartupOfTheDevice",
    "message_id": "1",
}


def at(minutes: float = 0.0, *, seconds: float = 0.0) -> datetime:
    """BASE_TS plus an offset: ``at(5)`` is five minutes later."""
    return BASE_TS + timedelta(minutes=minutes, seconds=seconds)


def an_event(event_type: type[T], /, **override: Any) -> T:
    """Build an event of ``event_type`` with defaults; ``at`` defaults to ``ts`` when only ``ts`` is given."""
    values: dict[str, Any] = {}
    for f in msgspec.structs.fields(event_type):  # type: ignore[arg-type]
        if f.name in override:
            values[f.name] = override[f.name]
        elif f.name == "at" and "ts" in override:
            values[f.name] = override["ts"]
        elif f.name in _DEFAULTS:
            values[f.name] = _DEFAULTS[f.name]
    return event_type(**values)


def make_detector(
    cls: type[Detector[Any]], context: DetectorContext | None = None, **settings: Any
) -> Detector[Any]:
    """Instantiate a detector class with optional threshold overrides."""
    return cls(build_config(cls.Config, settings, detector=cls.info.name), context or DetectorContext())


def run_detector(
    detector: Detector[Any], events: Iterable[Event], *, merge_gap_s: float = 3600.0
) -> list[Alert]:
    """Feed events through a real Engine with one detector and return the closed (final) alerts."""
    closed: list[Alert] = []
    engine = Engine([detector], merge_gap_s=merge_gap_s, on_close=closed.append)
    for event in events:
        engine.process(event)
    engine.finish()
    return closed


def kinds(alerts: Iterable[Alert]) -> list[str]:
    return sorted(a.kind for a in alerts)
