"""Session rule detectors: two transactions on one connector, energy billed without charging (``session.*``).

Exported through ``rules/metering.py``; ``capacity_kw`` is the connector rating lookup the metering rules
share.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

from chargeguard.detectors.base import Detector, DetectorContext, DetectorInfo
from chargeguard.detectors.rules.intervals import Clash, Span, SpanBook
from chargeguard.detectors.rules.txbook import connector_key
from chargeguard.events import Event, Finding, Severity, TransactionEnded, TransactionStarted


def capacity_kw(
    context: DetectorContext, station: str, connector: str | None, default_kw: float
) -> tuple[float, str]:
    """The most power ``connector`` can deliver and where that figure came from ("inventory" or "default")."""
    info = context.inventory.get(station)
    kw = None if info is None else info.connector_max_kw(connector)
    if kw is None or kw <= 0:
        return default_kw, "default"
    return kw, "inventory"


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()


# --------------------------------------------------------------------------------------------- overlap


@dataclass(frozen=True, slots=True)
class SessionOverlapConfig:
    """Thresholds of session.overlap.

    tolerance_s: overlap (station time) ignored - a stop and the next start stamped within the same moment.
    max_open_s: a transaction open longer than this (its stop was lost) no longer counts as running.
    """

    tolerance_s: float = 30.0
    max_open_s: float = 172_800.0


class SessionOverlap(Detector[SessionOverlapConfig]):
    """Two transactions open on one connector at the same time.

    Catches: transactions of one station whose station-time intervals overlap by more than ``tolerance_s`` on
    the same 1.6 connector (``"2"``) or the same 2.0.1 EVSE (``"1/1"``, ``"1/2"`` and ``"1"`` are one EVSE: it
    charges one vehicle at a time). A transaction replayed from the offline queue is judged on its own
    station-time interval once its end is known, so an offline session followed by a live one is not an
    overlap.

    Why it matters: one connector cannot charge two vehicles; two open transactions mean a fabricated or
    replayed transaction, a transaction id reused to bill twice, or a lost stop that leaves a session unbilled
    (DOMAIN.md #19 duplicate billing, #20 phantom sessions, #21 sessions never billed).

    False positives: a station that lost a StopTransaction (power loss) and started the next transaction - the
    stale one stops counting after ``max_open_s``; a wrong station clock moving between the two transactions.

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
    consumes: ClassVar[tuple[type[Any], ...]] = (TransactionStarted, TransactionEnded)
    Config: ClassVar[type[Any]] = SessionOverlapConfig

    def __init__(self, config: SessionOverlapConfig, context: DetectorContext) -> None:
        super().__init__(config, context)
        self._spans = SpanBook(
            max_keys=context.limits.max_keys, ttl_s=context.limits.ttl_s, max_open_s=config.max_open_s
        )

    def state_size(self) -> int:
        return len(self._spans)

    def process(self, event: Event) -> Iterable[Finding]:
        if not isinstance(event, TransactionStarted | TransactionEnded):
            return ()
        unit = connector_key(event.ocpp, event.connector)
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
        clashes = self._spans.clashes(key, span, tolerance_s=self.config.tolerance_s)
        return [self._finding(event, key, unit, clash) for clash in clashes]

    def _finding(
        self, event: TransactionStarted | TransactionEnded, key: str, unit: str, clash: Clash
    ) -> Finding:
        running = clash.overlap_s == float("inf")
        return self.finding(
            "session.overlap",
            ts=event.ts,
            incident=key,
            summary=f"two transactions open at once on connector {unit} of {event.station}",
            confidence=0.9 if running or clash.overlap_s >= 600 else 0.75,
            station=event.station,
            transactions=(clash.first.transaction_id, clash.second.transaction_id),
            token_ref=event.token_ref,
            evidence={
                "connector": unit,
                "overlap_s": None if running else round(clash.overlap_s, 1),
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


# --------------------------------------------------------------------------------------------- phantom


@dataclass(frozen=True, slots=True)
class PhantomConfig:
    """Thresholds of session.phantom.

    min_energy_wh: billed energy below this is never a phantom worth reporting.
    rise_wh: a sampled register rise of at least this shows charging.
    min_power_w: a sampled power of at least this shows charging. default_max_kw / tolerance / slack_wh: the
      connector rating (inventory first) that bounds energy per duration.
    """

    min_energy_wh: float = 1000.0
    rise_wh: float = 100.0
    min_power_w: float = 100.0
    default_max_kw: float = 400.0
    tolerance: float = 0.10
    slack_wh: float = 100.0


class Phantom(Detector[PhantomConfig]):
    """Energy billed with no plausible charging behind it.

    Catches, when a transaction ends having billed at least ``min_energy_wh``:

    * no sign of charging at all - no sample showing the register rising, no sampled power, and no Charging
      status (``charging_seen`` false) - for a live transaction;
    * or no sample at all and a duration too short for the energy on this connector (rating x duration,
      inventory first) - for live and offline-queued transactions alike.

    Why it matters: DOMAIN.md #20 (phantom / ghost sessions: billing records with no charging behind them,
    simulated transactions) and #15 (energy beyond physical limits, here at session level).

    False positives: stations configured to send neither MeterValues nor StatusNotification Charging (check
    the station's MeterValuesSampledData / SampledDataCtrlr); transactions sent from the offline queue, whose
    status changes are usually lost - they fire only on the duration test.

    References: OCPP 1.6 §4.9 StatusNotification (Charging), §4.7 MeterValues, §4.10 StopTransaction; OCPP
    2.0.1 E02 (chargingState), J01; DOMAIN.md #20, #15.
    """

    info: ClassVar[DetectorInfo] = DetectorInfo(
        name="session-phantom",
        kinds=("session.phantom",),
        title="Energy billed without charging behind it",
        severity=Severity.HIGH,
        references=("OCPP 1.6 §4.9 StatusNotification", "OCPP 2.0.1 E02", "DOMAIN.md #20"),
    )
    consumes: ClassVar[tuple[type[Any], ...]] = (TransactionEnded,)
    Config: ClassVar[type[Any]] = PhantomConfig

    def process(self, event: Event) -> Iterable[Finding]:
        if not isinstance(event, TransactionEnded):
            return ()
        cfg = self.config
        energy = event.energy_wh
        if energy is None or energy < cfg.min_energy_wh:
            return ()
        first, last = event.first_sample_wh, event.last_sample_wh
        rising = event.samples > 0 and first is not None and last is not None and last - first >= cfg.rise_wh
        powered = event.max_power_w is not None and event.max_power_w >= cfg.min_power_w
        limit_kw, source = capacity_kw(self.context, event.station, event.connector, cfg.default_max_kw)
        duration = event.duration_s
        possible_wh = (
            None
            if duration is None
            else (limit_kw * 1000.0 * max(duration, 0.0) / 3600.0 * (1.0 + cfg.tolerance) + cfg.slack_wh)
        )
        too_short = possible_wh is not None and energy > possible_wh and event.samples == 0
        lifeless = not rising and not powered and not event.charging_seen
        if not (too_short or (lifeless and not event.queued)):
            return ()
        signals = [
            name
            for name, absent in (
                ("no_register_rise", not rising),
                ("no_power", not powered),
                ("no_charging_status", not event.charging_seen),
            )
            if absent
        ]
        if too_short:
            signals.append("too_short")
        confidence = {4: 0.95, 3: 0.85}.get(len(signals), 0.7)
        reason = "in too short a time" if too_short else "with no sign of charging"
        return [
            self.finding(
                "session.phantom",
                ts=event.ts,
                incident=event.station,
                summary=f"{energy / 1000:.1f} kWh billed {reason}",
                confidence=confidence,
                severity=Severity.HIGH if len(signals) >= 3 else Severity.MEDIUM,
                station=event.station,
                transactions=(event.transaction_id,),
                token_ref=event.token_ref,
                evidence={
                    "energy_wh": round(energy, 1),
                    "duration_s": None if duration is None else round(duration, 1),
                    "samples": event.samples,
                    "max_power_w": event.max_power_w,
                    "charging_seen": event.charging_seen,
                    "signals": signals,
                    "possible_wh": None if possible_wh is None else round(possible_wh, 1),
                    "limit_kw": limit_kw,
                    "limit_source": source,
                    "offline": event.queued,
                    "connector": event.connector,
                },
            )
        ]
