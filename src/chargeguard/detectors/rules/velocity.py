"""The token.high_velocity rule: one token starting many transactions on different connectors quickly."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

from chargeguard.detectors.base import Detector, DetectorContext, DetectorInfo
from chargeguard.detectors.rules.txbook import TxBook, TxFacts, connector_key, iso_time, remember_start
from chargeguard.detectors.state import BoundedState
from chargeguard.events import (
    AuthorizationDecision,
    Event,
    Finding,
    Severity,
    TransactionEnded,
    TransactionStarted,
)


@dataclass(frozen=True, slots=True)
class HighVelocityConfig:
    """Thresholds of token.high_velocity.

    window_s: station-time window in which starts are counted.
    min_connectors: distinct connectors (1.6) / EVSEs (2.0.1) started on within the window that fire.
    max_starts: starts remembered per token.
    """

    window_s: float = 3600.0
    min_connectors: int = 6
    max_starts: int = 64


@dataclass(frozen=True, slots=True)
class _Start:
    at: float
    station: str
    unit: str
    transaction_id: str


class HighVelocity(Detector[HighVelocityConfig]):
    """One token starting implausibly many transactions at different connectors in a short time.

    Catches: ``min_connectors`` or more distinct (station, connector) places started on by one token within
    ``window_s`` of station time (2.0.1 counts EVSEs; the token may join a 2.0.1 transaction after it
    started). Repeated starts on one connector (a driver retrying) never count twice.

    Why it matters: DOMAIN.md #1 (a cloned code used at 41 locations in a day), #4 (account sharing: many
    sessions per day) and #9 (remote-start abuse from a stolen app account starts sessions across a site).

    False positives: technician and test cards (allow-list them). Real data check (Dundee, Jun-Sep 2018,
    19,227 sessions): at 6 distinct connectors within one hour only a test card at the operator's test site,
    one other card once and sessions without a user id reach the threshold; drivers trying two or three
    outlets of a hub within minutes are common, so thresholds below five would be noisy. The full Dundee import
    (67,110 sessions) raises 2 alerts, both one card on 6-7 connectors of 3-6 stations within 20 minutes on
    one morning: a commissioning sweep, which an operator allow-lists rather than a rule could tell apart.

    References: DOMAIN.md #1, #4, #9; OCPP 1.6 §4.8 StartTransaction; OCPP 2.0.1 E01.
    """

    info: ClassVar[DetectorInfo] = DetectorInfo(
        name="token-high-velocity",
        kinds=("token.high_velocity",),
        title="Token starting many transactions quickly",
        severity=Severity.MEDIUM,
        references=("DOMAIN.md #1", "DOMAIN.md #4", "DOMAIN.md #9"),
    )
    consumes: ClassVar[tuple[type[Any], ...]] = (TransactionStarted, AuthorizationDecision, TransactionEnded)
    Config: ClassVar[type[Any]] = HighVelocityConfig

    def __init__(self, config: HighVelocityConfig, context: DetectorContext) -> None:
        super().__init__(config, context)
        self._tx: TxBook[TxFacts] = TxBook(TxFacts, context)
        self._starts: BoundedState[str, list[_Start]] = BoundedState(
            context.limits.max_keys, context.limits.ttl_s
        )

    def state_size(self) -> int:
        return len(self._tx) + len(self._starts)

    def process(self, event: Event) -> Iterable[Finding]:
        if isinstance(event, TransactionStarted):
            facts = remember_start(self._tx, event)
            facts.token_ref = event.token_ref
            if event.token_ref is None:
                return ()
            return self._started(event, event.token_ref, event.at.timestamp(), event.connector)
        if isinstance(event, AuthorizationDecision):
            if event.transaction_id is None or event.token_ref is None or event.context != "TransactionEvent":
                return ()
            if self._tx.ended(event.station, event.transaction_id):
                return ()
            facts = self._tx.touch(event.station, event.transaction_id, event.ts)
            if facts.token_ref is not None:
                return ()
            facts.token_ref = event.token_ref
            start = facts.start if facts.start is not None else event.at.timestamp()
            return self._started(event, event.token_ref, start, facts.connector or event.connector)
        if isinstance(event, TransactionEnded):
            self._tx.pop(event.station, event.transaction_id, event.ts, event.connector)
        return ()

    def _started(self, event: Event, token: str, at: float, connector: str | None) -> list[Finding]:
        assert isinstance(event, TransactionStarted | AuthorizationDecision)
        assert event.transaction_id is not None
        unit = connector_key(connector) or "?"
        starts = self._starts.setdefault(token.lower(), list, event.ts)
        if any(s.station == event.station and s.transaction_id == event.transaction_id for s in starts):
            return []
        new = _Start(at, event.station, unit, event.transaction_id)
        window = self.config.window_s
        starts.append(new)
        starts.sort(key=lambda s: s.at)
        newest = starts[-1].at
        starts[:] = [
            s for s in starts if newest - s.at <= window
        ]  # older starts share no window with newer ones
        if len(starts) > self.config.max_starts:
            del starts[0]
        best: list[_Start] = []
        for i, first in enumerate(starts):
            if first.at > at or at - first.at > window:
                continue
            inside = [s for s in starts[i:] if s.at - first.at <= window]
            if len({(s.station, s.unit) for s in inside}) > len({(s.station, s.unit) for s in best}):
                best = inside
        places = {(s.station, s.unit) for s in best}
        if len(places) < self.config.min_connectors:
            return []
        stations = sorted({s.station for s in best})
        span_s = best[-1].at - best[0].at
        return [
            self.finding(
                "token.high_velocity",
                ts=event.ts,
                incident=token.lower(),
                summary=f"{len(best)} transactions on {len(places)} connectors in {span_s / 60:.0f} min",
                confidence=0.9 if len(places) >= 2 * self.config.min_connectors else 0.75,
                station=event.station,
                stations=stations,
                transactions=[s.transaction_id for s in best],
                token_ref=token,
                evidence={
                    "starts": len(best),
                    "connectors": len(places),
                    "stations": len(stations),
                    "span_s": round(span_s, 1),
                    "window_s": window,
                    "first_at": iso_time(best[0].at),
                },
            )
        ]
