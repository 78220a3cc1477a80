"""Live detection: the gateway's capture lines go through the same normaliser and engine as ``chargeguard scan``.

``LiveDetection`` implements the gateway's ``FrameObserver`` protocol (``on_frame`` / ``on_connection`` with
capture-format dicts), so a live period and a replay of its recorded capture give the same alerts. Alerts are
handed to the sinks when their incident opens (so the store, a JSON Lines file and the webhook see them within the
same call) and again, merged, when it closes. ``token_verdict`` answers the gateway's enforcement question: is this
token under an open alert of a kind the operator enforces, at or above a severity?
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import orjson

from chargeguard.allowlist import AllowList
from chargeguard.detectors.base import DetectorContext
from chargeguard.detectors.registry import build_detectors
from chargeguard.engine import Engine
from chargeguard.events import Alert, Event, Severity
from chargeguard.inventory import Inventory
from chargeguard.settings import Settings
from chargeguard.sources.capture import BadLine, ConnectionRecord, FrameRecord, record_from_obj
from chargeguard.sources.ocpp.normalize import Normaliser
from chargeguard.vault.pseudonyms import Pseudonymiser

AlertSink = Callable[[Alert], None]
EventSink = Callable[[Event], None]


class LiveDetection:
    """A FrameObserver that detects in real time."""

    def __init__(
        self,
        settings: Settings,
        pseudonymiser: Pseudonymiser,
        *,
        inventory: Inventory | None = None,
        allowlist: AllowList | None = None,
        sinks: Sequence[AlertSink] = (),
        event_sinks: Sequence[EventSink] = (),
        enforce_kinds: Iterable[str] = (),
        enforce_severity: Severity = Severity.HIGH,
    ) -> None:
        context = DetectorContext(inventory=inventory or Inventory())
        detectors = build_detectors(
            context, overrides=settings.detectors, disabled=settings.disabled_detectors
        )
        self.sinks = tuple(sinks)
        self.event_sinks = tuple(event_sinks)
        self.engine = Engine(
            detectors,
            allowlist=allowlist,
            merge_gap_s=settings.merge_gap_s,
            on_open=self._emit,
            on_close=self._emit,
        )
        self.normaliser = Normaliser(pseudonymiser)
        self.pseudonymiser = pseudonymiser
        self.enforce_kinds = frozenset(enforce_kinds)
        self.enforce_severity = enforce_severity
        self._token_alerts: dict[str, Alert] = {}
        self.lines = 0
        self.bad_lines = 0

    def _emit(self, alert: Alert) -> None:
        if alert.token_ref:
            if alert.status == "open":
                self._token_alerts[alert.token_ref] = alert
            elif self._token_alerts.get(alert.token_ref, alert).id == alert.id:
                self._token_alerts.pop(alert.token_ref, None)
        for sink in self.sinks:
            sink(alert)

    def _feed(self, line: dict[str, Any]) -> None:
        self.lines += 1
        size = len(orjson.dumps(line["frame"])) if "frame" in line else 0
        item = record_from_obj(line, f"live:{self.lines}", size)
        if isinstance(item, FrameRecord):
            events: list[Event] = self.normaliser.frame(item)
        elif isinstance(item, ConnectionRecord):
            events = self.normaliser.connection(item)
        else:
            assert isinstance(item, BadLine)
            self.bad_lines += 1
            events = self.normaliser.bad_line(item)
        for event in events:
            self.engine.process(event)
            for sink in self.event_sinks:
                sink(event)

    def on_frame(self, line: dict[str, Any]) -> None:
        self._feed(line)

    def on_connection(self, line: dict[str, Any]) -> None:
        self._feed(line)

    def token_verdict(self, raw_or_ref: str) -> Alert | None:
        """The open alert that makes a token enforceable, or None (raw tokens are pseudonymised first)."""
        alert = self._token_alerts.get(self.pseudonymiser(raw_or_ref))
        if alert is None or alert.kind not in self.enforce_kinds or alert.severity < self.enforce_severity:
            return None
        return alert

    def close(self) -> None:
        """End of the live period: close every open incident (the sinks get the merged alerts)."""
        self.engine.finish()
