"""The session.overlap rule: two transactions open on one connector (1.6) or EVSE (2.0.1) at once.

Exported through ``rules/metering.py``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

from chargeguard.detectors.base import Detector, DetectorContext, DetectorInfo
from chargeguard.detectors.rules.intervals import Clash, Span, SpanBook
from chargeguard.detectors.rules.txbook import connector_key
from chargeguard.events import Event, Finding, MeterSample, Severity, TransactionEnded, TransactionStarted


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()


@dataclass(frozen=True, slots=True)
class SessionOverlapConfig:
    """Thresholds of session.overlap.

    tolerance_s: overlap (station time) ignored - a stop and the next start stamped within the same minute.
    max_open_s: a transaction open longer than this (its stop was lost) no longer counts as running.
    idle_s: at a station that sends meter samples, an open transaction without a sample for four sample
      intervals (at least 10 minutes, at most this) no longer counts as running (its stop was lost).
    """

    tolerance_s: float = 60.0
    max_open_s: float = 172_800.0
    idle_s: float = 3600.0


class SessionOverlap(Detector[SessionOverlapConfig]):
    """Two transactions open on one connector at the same time.

    Catches: transactions of one station whose station-time intervals overlap by more than ``tolerance_s`` on
    the same 1.6 connector (``"2"``) or the same 2.0.1 EVSE (``"1/1"``, ``"1/2"`` and ``"1"`` are one EVSE: it
    charges one vehicle at a time). It fires on the first frame that shows both running beyond the tolerance:
    a meter sample or a start stamped ``tolerance_s`` after the later start while neither has stopped, or the
    stop that measures the overlap - so a next car whose transaction starts at plug-in seconds before the
    previous stop arrives is a hand-over, not an overlap. A transaction replayed from the offline queue is
    judged on its own station-time interval once its end is known, so an offline session followed by a live
    one is not an overlap.

    Why it matters: one connector cannot charge two vehicles; two open transactions mean a fabricated or
    replayed transaction, a transaction id reused to bill twice, or a lost stop that leaves a session unbilled
    (DOMAIN.md #19 duplicate billing, #20 phantom sessions, #21 sessions never billed).

    False positives: a station that lost a StopTransaction (power loss) and started the next transaction - the
    stuck one stops counting once it has sent no meter sample for ``idle_s`` (at stations that send samples)
    or after ``max_open_s``. A wrong station clock can make two transactions overlap in station time: two
    transactions both reported live (not from the offline queue) whose frames never ran at the same time
    (the first ended before the second began, in transport time) are not an overlap. Real data: the Dundee
    import (20,207 sessions) has 72 sessions that never stop; judged on ``max_open_s`` alone they raised 370
    overlaps with later sessions on their connectors.

    References: OCPP 1.6 §4.8 StartTransaction, §4.10 StopTransaction; OCPP 2.0.1 E01-E07 (one transaction per
    EVSE), E04 (offline transactions); DOMAIN.md #19, #20, #21.
    """

    info: ClassVar[DetectorInfo] = DetectorInfo(
        name="session-overlap",
        kinds=("session.overlap",),
        title="Two transactions open on one connector",
        severity=Severity.MEDIUM,
        references=("OCPP 1.6 §4.8 StartTransaction", "OCPP 2.0.1 E01", "DOMAIN.md #19", "DOMAIN.md #20"),
    )
    consumes: ClassVar[tuple[type[Any], ...]] = (TransactionStarted, MeterSample, TransactionEnded)
    Config: ClassVar[type[Any]] = SessionOverlapConfig

    def __init__(self, config: SessionOverlapConfig, context: DetectorContext) -> None:
        super().__init__(config, context)
        self._spans = SpanBook(
            max_keys=context.limits.max_keys,
            ttl_s=context.limits.ttl_s,
            max_open_s=config.max_open_s,
            idle_s=config.idle_s,
        )

    def state_size(self) -> int:
        return len(self._spans)

    def process(self, event: Event) -> Iterable[Finding]:
        if type(event) is MeterSample:
            unit = connector_key(event.connector)
            key = None if unit is None else event.station + "\x1f" + unit
            at = event.at.timestamp()
            sampled = self._spans.saw(key, event.station, event.transaction_id, at, event.ts)
            if sampled is None or key is None or unit is None:
                return ()
            clashes = self._spans.clashes(
                key, sampled, tolerance_s=self.config.tolerance_s, now=at, accept=_live_together
            )
            return [self._finding(event, key, unit, clash) for clash in clashes]
        if not isinstance(event, TransactionStarted | TransactionEnded):
            return ()
        unit = connector_key(event.connector)
        if unit is None:
            return ()
        key = f"{event.station}\x1f{unit}"
        if isinstance(event, TransactionStarted):
            start: float | None = event.at.timestamp()
            end: float | None = None
        else:
            start = None if event.started_at is None else event.started_at.timestamp()
            end = event.at.timestamp()
        span = self._spans.upsert(
            key,
            station=event.station,
            transaction_id=event.transaction_id,
            connector=event.connector,
            start=start,
            end=end,
            queued=event.queued,
            ts=event.ts,
        )
        now = event.at.timestamp()
        clashes = self._spans.clashes(
            key, span, tolerance_s=self.config.tolerance_s, now=now, accept=_live_together
        )
        return [self._finding(event, key, unit, clash) for clash in clashes]

    def _finding(
        self, event: TransactionStarted | MeterSample | TransactionEnded, key: str, unit: str, clash: Clash
    ) -> Finding:
        running = clash.first.end is None and clash.second.end is None
        return self.finding(
            "session.overlap",
            ts=event.ts,
            incident=key,
            summary=f"two transactions open at once on connector {unit} of {event.station}",
            confidence=0.9 if clash.overlap_s >= 300 else 0.75,
            station=event.station,
            transactions=(clash.first.transaction_id, clash.second.transaction_id),
            token_ref=None if isinstance(event, MeterSample) else event.token_ref,
            evidence={
                "connector": unit,
                "overlap_s": round(clash.overlap_s, 1),
                "still_running": running,
                "sessions": [_span(clash.first), _span(clash.second)],
            },
        )


def _span(span: Span) -> dict[str, Any]:
    return {
        "transaction": span.transaction_id,
        "connector": span.connector,
        "started_at": _iso(span.start),
        "ended_at": None if span.end is None else _iso(span.end),
        "queued": span.queued,
    }


def _live_together(clash: Clash) -> bool:
    return clash.first.live_together(clash.second)
