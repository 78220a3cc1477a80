"""Metering rule detectors: energy or power beyond the connector, registers going backwards, bad readings.

Emits the ``meter.*`` kinds. The ``session.*`` detectors live in ``rules/sessions.py``; every metering and
session detector is exported through ``DETECTORS`` here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from chargeguard.detectors.base import Detector, DetectorContext, DetectorInfo
from chargeguard.detectors.rules.sessions import Phantom, SessionOverlap, capacity_kw
from chargeguard.detectors.rules.txbook import TxBook, connector_key
from chargeguard.events import Event, Finding, MeterSample, Severity, TransactionEnded, TransactionStarted


@dataclass(slots=True)
class _Meter:
    """What a metering detector remembers of one transaction's register (station time, Wh)."""

    ocpp: str = "1.6"
    connector: str | None = None
    start_wh: float | None = None
    start_at: float | None = None
    first_wh: float | None = None
    first_at: float | None = None
    last_wh: float | None = None
    last_at: float | None = None
    max_wh: float | None = None
    max_at: float | None = None
    fired: set[str] = field(default_factory=set)


def _started(book: TxBook[_Meter], ev: TransactionStarted) -> _Meter:
    meter = book.touch(ev.station, ev.transaction_id, ev.ts, ev.connector)
    meter.ocpp, meter.connector = ev.ocpp, ev.connector
    meter.start_wh, meter.start_at = ev.meter_start_wh, ev.at.timestamp()
    if ev.meter_start_wh is not None and (meter.max_wh is None or ev.meter_start_wh > meter.max_wh):
        meter.max_wh, meter.max_at = ev.meter_start_wh, meter.start_at
    return meter


def _incident(station: str, ocpp: str, connector: str | None) -> str:
    return f"{station}\x1f{connector_key(ocpp, connector) or '?'}"


# --------------------------------------------------------------------------------------------- capacity


@dataclass(frozen=True, slots=True)
class ExceedsCapacityConfig:
    """Thresholds of meter.exceeds_capacity.

    default_max_kw: connector limit when the inventory does not know the station or connector.
    tolerance: relative margin over the connector rating (meter accuracy, nameplate rounding).
    slack_wh: absolute margin on energy between two readings (register resolution, e.g. 0.1 kWh steps).
    max_session_wh: energy no single vehicle battery takes in one transaction.
    """

    default_max_kw: float = 400.0
    tolerance: float = 0.10
    slack_wh: float = 100.0
    max_session_wh: float = 250_000.0


class ExceedsCapacity(Detector[ExceedsCapacityConfig]):
    """Energy or power beyond what the connector can physically deliver.

    Catches, per transaction: reported power above the connector rating; energy between two readings of the
    register (meterStart, each sample, meterStop) above rating x elapsed station time; and a transaction's
    energy above a plausible battery (``max_session_wh``). The rating is the inventory's ``connector_max_kw``
    (connector row, else EVSE, else station), else ``default_max_kw``, plus ``tolerance`` and ``slack_wh``.
    Transactions without any sample are judged by session.phantom instead (too short for their energy).

    Why it matters: DOMAIN.md #15 (energy exceeding physical limits: inflated meter values or CDRs bill energy
    that was never delivered) and #18 (CDR inflation). Real data: the Dundee sessions include one of 1,430 kWh
    on a 50 kW charger - a data error for the operator, and exactly what this detector is for.

    False positives: a wrong inventory rating (the evidence shows the limit used and where it came from);
    readings whose timestamps are wrong (see station.clock_skew); without an inventory only grossly impossible
    values fire.

    References: OCPP 1.6 §4.7 MeterValues, §7.31 Measurand; OCPP 2.0.1 J01, E02; DOMAIN.md #15, #18.
    """

    info: ClassVar[DetectorInfo] = DetectorInfo(
        name="meter-exceeds-capacity",
        kinds=("meter.exceeds_capacity",),
        title="Energy or power beyond the connector's capacity",
        severity=Severity.HIGH,
        references=("OCPP 1.6 §4.7 MeterValues", "OCPP 2.0.1 J01", "DOMAIN.md #15"),
    )
    consumes: ClassVar[tuple[type[Any], ...]] = (TransactionStarted, MeterSample, TransactionEnded)
    Config: ClassVar[type[Any]] = ExceedsCapacityConfig

    def __init__(self, config: ExceedsCapacityConfig, context: DetectorContext) -> None:
        super().__init__(config, context)
        self._tx: TxBook[_Meter] = TxBook(_Meter, context)

    def state_size(self) -> int:
        return len(self._tx)

    def process(self, event: Event) -> Iterable[Finding]:
        if isinstance(event, TransactionStarted):
            meter = _started(self._tx, event)
            meter.last_wh, meter.last_at = event.meter_start_wh, meter.start_at
            return ()
        if isinstance(event, MeterSample):
            sampled = self._tx.for_sample(event.station, event.transaction_id, event.connector, event.ts)
            tx = self._tx.resolve(event.station, event.transaction_id, event.connector)
            if sampled is None or tx is None:
                return ()
            sampled.connector = sampled.connector or event.connector
            sampled.ocpp = event.ocpp
            found = self._power(event, sampled, tx)
            if event.energy_wh is not None:
                found += self._reading(event, sampled, tx, event.energy_wh, event.at.timestamp())
                sampled.first_wh = event.energy_wh if sampled.first_wh is None else sampled.first_wh
            return found
        if isinstance(event, TransactionEnded):
            ended = self._tx.pop(event.station, event.transaction_id, event.connector)
            if ended is None:
                ended = _Meter(event.ocpp, event.connector, event.meter_start_wh)
                ended.start_at = None if event.started_at is None else event.started_at.timestamp()
            ended.connector = ended.connector or event.connector
            closing: list[Finding] = []
            if event.meter_stop_wh is not None and ended.first_wh is not None:
                closing += self._reading(
                    event, ended, event.transaction_id, event.meter_stop_wh, event.at.timestamp()
                )
            energy = event.energy_wh
            if energy is not None and energy > self.config.max_session_wh and "battery" not in ended.fired:
                closing.append(self._battery(event, ended, event.transaction_id, energy))
            return closing
        return ()

    def _limit(self, station: str, connector: str | None) -> tuple[float, str]:
        return capacity_kw(self.context, station, connector, self.config.default_max_kw)

    def _power(self, event: MeterSample, meter: _Meter, tx: str) -> list[Finding]:
        if event.power_w is None or "power" in meter.fired:
            return []
        limit_kw, source = self._limit(event.station, meter.connector)
        if event.power_w <= limit_kw * 1000.0 * (1.0 + self.config.tolerance):
            return []
        meter.fired.add("power")
        ratio = event.power_w / (limit_kw * 1000.0)
        return [
            self._finding(
                event,
                meter,
                tx,
                f"reported power {event.power_w / 1000:.1f} kW above the {limit_kw:g} kW rating",
                ratio,
                {"check": "power", "power_w": event.power_w, "limit_kw": limit_kw, "limit_source": source},
            )
        ]

    def _reading(self, event: Event, meter: _Meter, tx: str, wh: float, at: float) -> list[Finding]:
        """Energy since the previous reading against rating x time; then remember this reading."""
        prev_wh, prev_at = meter.last_wh, meter.last_at
        found: list[Finding] = []
        if prev_wh is not None and prev_at is not None and at >= prev_at:
            if at > prev_at or wh > prev_wh:
                meter.last_wh, meter.last_at = wh, at
            delta_wh, delta_s = wh - prev_wh, at - prev_at
            limit_kw, source = self._limit(event.station, meter.connector)
            allowed = (
                limit_kw * 1000.0 * delta_s / 3600.0 * (1.0 + self.config.tolerance) + self.config.slack_wh
            )
            if delta_wh > allowed and "interval" not in meter.fired:
                meter.fired.add("interval")
                assert isinstance(event, MeterSample | TransactionEnded)
                average_kw = delta_wh / max(delta_s, 1.0) * 3.6
                found.append(
                    self._finding(
                        event,
                        meter,
                        tx,
                        f"{delta_wh / 1000:.1f} kWh in {delta_s:.0f} s ({average_kw:.0f} kW), rated {limit_kw:g} kW",
                        average_kw / limit_kw,
                        {
                            "check": "interval",
                            "energy_wh": round(delta_wh, 1),
                            "interval_s": round(delta_s, 1),
                            "average_kw": round(average_kw, 1),
                            "limit_kw": limit_kw,
                            "limit_source": source,
                        },
                    )
                )
        elif prev_wh is None:
            meter.last_wh, meter.last_at = wh, at
        start = meter.start_wh if meter.start_wh is not None else meter.first_wh
        if start is not None and wh - start > self.config.max_session_wh and "battery" not in meter.fired:
            assert isinstance(event, MeterSample | TransactionEnded)
            found.append(self._battery(event, meter, tx, wh - start))
        return found

    def _battery(
        self, event: MeterSample | TransactionEnded, meter: _Meter, tx: str, energy: float
    ) -> Finding:
        meter.fired.add("battery")
        return self._finding(
            event,
            meter,
            tx,
            f"{energy / 1000:.0f} kWh in one transaction, more than any vehicle battery takes",
            energy / self.config.max_session_wh,
            {"check": "battery", "energy_wh": round(energy, 1), "max_session_wh": self.config.max_session_wh},
        )

    def _finding(
        self,
        event: MeterSample | TransactionEnded,
        meter: _Meter,
        tx: str,
        summary: str,
        ratio: float,
        evidence: dict[str, Any],
    ) -> Finding:
        return self.finding(
            "meter.exceeds_capacity",
            ts=event.ts,
            incident=_incident(event.station, meter.ocpp, meter.connector),
            summary=summary,
            confidence=0.95 if ratio >= 2.0 else 0.8,
            severity=Severity.HIGH if ratio >= 1.5 else Severity.MEDIUM,
            station=event.station,
            transactions=(tx,),
            evidence={"connector": meter.connector, **evidence},
        )


# --------------------------------------------------------------------------------------------- rollback


@dataclass(frozen=True, slots=True)
class RollbackConfig:
    """Thresholds of meter.rollback.

    tolerance_wh: decrease ignored as register rounding (kWh registers with two decimals step by 10 Wh).
    """

    tolerance_wh: float = 10.0


class Rollback(Detector[RollbackConfig]):
    """An energy register going backwards within a transaction.

    Catches: a sample whose register is lower than the highest reading taken earlier in station time in the
    same transaction (meterStart or any sample) by more than ``tolerance_wh`` - compared with the maximum, not
    just the previous reading, so a slow rollback made of many small steps is caught once their sum passes the
    tolerance; and meterStop lower than meterStart. Samples that arrive late but carry an earlier station time
    are not mistaken for a decrease.

    Why it matters: DOMAIN.md #16 (meter rollback / non-monotonic register / meterStop < meterStart; SteVe
    accepted meterStop < meterStart). Energy.Active.Import.Register is cumulative by definition: it only
    rises.

    False positives: a meter replaced or reset mid-transaction (rare; the evidence shows both readings);
    stations that mix registers of different meters under one measurand.

    References: OCPP 1.6 §4.7 MeterValues, §4.10 StopTransaction (meterStop), §7.31
    Energy.Active.Import.Register; OCPP 2.0.1 E06, J01, 2.0.1 Part 2 appendix Measurands; DOMAIN.md #16.
    """

    info: ClassVar[DetectorInfo] = DetectorInfo(
        name="meter-rollback",
        kinds=("meter.rollback",),
        title="Energy register going backwards",
        severity=Severity.HIGH,
        references=("OCPP 1.6 §7.31 Energy.Active.Import.Register", "OCPP 2.0.1 J01", "DOMAIN.md #16"),
    )
    consumes: ClassVar[tuple[type[Any], ...]] = (TransactionStarted, MeterSample, TransactionEnded)
    Config: ClassVar[type[Any]] = RollbackConfig

    def __init__(self, config: RollbackConfig, context: DetectorContext) -> None:
        super().__init__(config, context)
        self._tx: TxBook[_Meter] = TxBook(_Meter, context)

    def state_size(self) -> int:
        return len(self._tx)

    def process(self, event: Event) -> Iterable[Finding]:
        tol = self.config.tolerance_wh
        if isinstance(event, TransactionStarted):
            _started(self._tx, event)
            return ()
        if isinstance(event, MeterSample):
            meter = self._tx.for_sample(event.station, event.transaction_id, event.connector, event.ts)
            tx = self._tx.resolve(event.station, event.transaction_id, event.connector)
            if meter is None or tx is None or event.energy_wh is None:
                return ()
            meter.connector, meter.ocpp = meter.connector or event.connector, event.ocpp
            at, wh = event.at.timestamp(), event.energy_wh
            if meter.first_wh is None:
                meter.first_wh = wh
                if meter.start_wh is not None and wh < meter.start_wh - tol:
                    # a first sample below meterStart: two registers disagree (meter.inconsistent)
                    meter.max_wh, meter.max_at = wh, at
            found: list[Finding] = []
            peak, peak_at = meter.max_wh, meter.max_at
            dropped = peak is not None and peak_at is not None and at >= peak_at and wh < peak - tol
            if dropped and peak is not None and "sample" not in meter.fired:
                meter.fired.add("sample")
                found.append(self._finding(event, meter, tx, "sample", peak, wh))
            if meter.max_wh is None or wh > meter.max_wh:
                meter.max_wh, meter.max_at = wh, at
            return found
        if isinstance(event, TransactionEnded):
            meter = self._tx.pop(event.station, event.transaction_id, event.connector) or _Meter(event.ocpp)
            meter.connector = meter.connector or event.connector
            start, stop = event.meter_start_wh, event.meter_stop_wh
            if start is not None and stop is not None and stop < start - tol:
                return [self._finding(event, meter, event.transaction_id, "stop_below_start", start, stop)]
        return ()

    def _finding(
        self,
        event: MeterSample | TransactionEnded,
        meter: _Meter,
        tx: str,
        check: str,
        before: float,
        after: float,
    ) -> Finding:
        drop = before - after
        what = "meterStop below meterStart" if check == "stop_below_start" else "register decreased"
        return self.finding(
            "meter.rollback",
            ts=event.ts,
            incident=_incident(event.station, meter.ocpp, meter.connector),
            summary=f"{what} by {drop / 1000:.3f} kWh",
            confidence=0.95 if drop >= 1000 else 0.8,
            severity=Severity.HIGH if drop >= 1000 else Severity.MEDIUM,
            station=event.station,
            transactions=(tx,),
            evidence={
                "check": check,
                "before_wh": before,
                "after_wh": after,
                "drop_wh": round(drop, 1),
                "connector": meter.connector,
            },
        )


# --------------------------------------------------------------------------------------------- inconsistent


@dataclass(frozen=True, slots=True)
class InconsistentConfig:
    """Thresholds of meter.inconsistent.

    tolerance_wh / tolerance_ratio: disagreement ignored (the larger of the two; ratio of the transaction
      energy).
    default_max_kw: connector limit used to bound how much a register can rise between two readings when the
      inventory does not know the connector.
    """

    tolerance_wh: float = 100.0
    tolerance_ratio: float = 0.02
    default_max_kw: float = 400.0


class Inconsistent(Detector[InconsistentConfig]):
    """Transaction readings that disagree: meterStop vs the sampled register, meterStart vs the first sample.

    Catches, at the end of a transaction: meterStop below the last sampled register, or above it by more than
    the connector could deliver in the time between; and a first sample below meterStart, or above it by more
    than the connector could deliver since the start - each beyond ``tolerance_wh`` / ``tolerance_ratio``.
    meterStop below meterStart is meter.rollback's.

    Why it matters: the billed energy (meterStop - meterStart) must be what the register measured; a mismatch
    is a manipulated stop value, a meterStart that hides energy, or a station that bills from a different
    meter than it samples (DOMAIN.md #16, #17 and the issue's "reported energy disagreeing with its meter
    readings").

    False positives: stations that report meterStart as 0 while sampling an absolute register (a real
    integration defect that bills the register's whole history - worth an alert, but fix the station); samples
    of another measurand mistaken for the register (checked by the normaliser).

    References: OCPP 1.6 §4.8 StartTransaction (meterStart), §4.10 StopTransaction (meterStop,
    transactionData); OCPP 2.0.1 E06, J02 (Transaction.Begin / Transaction.End samples); DOMAIN.md #16, #17.
    """

    info: ClassVar[DetectorInfo] = DetectorInfo(
        name="meter-inconsistent",
        kinds=("meter.inconsistent",),
        title="Transaction meter readings that disagree",
        severity=Severity.MEDIUM,
        references=("OCPP 1.6 §4.10 StopTransaction", "OCPP 2.0.1 J02", "DOMAIN.md #16", "DOMAIN.md #17"),
    )
    consumes: ClassVar[tuple[type[Any], ...]] = (TransactionStarted, MeterSample, TransactionEnded)
    Config: ClassVar[type[Any]] = InconsistentConfig

    def __init__(self, config: InconsistentConfig, context: DetectorContext) -> None:
        super().__init__(config, context)
        self._tx: TxBook[_Meter] = TxBook(_Meter, context)

    def state_size(self) -> int:
        return len(self._tx)

    def process(self, event: Event) -> Iterable[Finding]:
        if isinstance(event, TransactionStarted):
            _started(self._tx, event)
            return ()
        if isinstance(event, MeterSample):
            meter = self._tx.for_sample(event.station, event.transaction_id, event.connector, event.ts)
            if meter is None or event.energy_wh is None:
                return ()
            meter.connector = meter.connector or event.connector
            at = event.at.timestamp()
            if meter.first_at is None or at < meter.first_at:
                meter.first_wh, meter.first_at = event.energy_wh, at
            if meter.last_at is None or at >= meter.last_at:
                meter.last_wh, meter.last_at = event.energy_wh, at
            return ()
        if isinstance(event, TransactionEnded):
            meter = self._tx.pop(event.station, event.transaction_id, event.connector) or _Meter(event.ocpp)
            return self._ended(event, meter)
        return ()

    def _ended(self, event: TransactionEnded, meter: _Meter) -> list[Finding]:
        start, stop = event.meter_start_wh, event.meter_stop_wh
        first_wh = meter.first_wh if meter.first_wh is not None else event.first_sample_wh
        last_wh = meter.last_wh if meter.last_wh is not None else event.last_sample_wh
        if start is None or stop is None or stop < start or first_wh is None or last_wh is None:
            return []
        connector = meter.connector or event.connector
        limit_kw, _ = capacity_kw(self.context, event.station, connector, self.config.default_max_kw)
        tol = max(self.config.tolerance_wh, self.config.tolerance_ratio * (stop - start))
        started = (
            meter.start_at
            if meter.start_at is not None
            else (event.started_at.timestamp() if event.started_at is not None else None)
        )
        checks: list[tuple[str, str, float, float, float | None]] = [
            (
                "first_sample",
                "first sample vs meterStart",
                start,
                first_wh,
                None if started is None or meter.first_at is None else meter.first_at - started,
            ),
            (
                "stop",
                "meterStop vs last sample",
                last_wh,
                stop,
                None if meter.last_at is None else event.at.timestamp() - meter.last_at,
            ),
        ]
        for check, label, earlier, later, gap_s in checks:
            rise_allowed = tol + (limit_kw * 1000.0 * max(gap_s, 0.0) / 3600.0 if gap_s is not None else 0.0)
            if gap_s is None and check == "stop":
                rise_allowed = max(rise_allowed, 0.05 * (stop - start) + tol)  # last sample time unknown
            if later < earlier - tol or later > earlier + rise_allowed:
                diff = later - earlier
                return [
                    self.finding(
                        "meter.inconsistent",
                        ts=event.ts,
                        incident=_incident(event.station, event.ocpp, connector),
                        summary=f"{label} differ by {diff / 1000:+.3f} kWh",
                        confidence=0.9 if abs(diff) >= 10 * tol else 0.75,
                        severity=Severity.HIGH if abs(diff) >= 5000 else Severity.MEDIUM,
                        station=event.station,
                        transactions=(event.transaction_id,),
                        token_ref=event.token_ref,
                        evidence={
                            "check": check,
                            "meter_start_wh": start,
                            "meter_stop_wh": stop,
                            "first_sample_wh": first_wh,
                            "last_sample_wh": last_wh,
                            "difference_wh": round(diff, 1),
                            "tolerance_wh": round(tol, 1),
                            "connector": connector,
                        },
                    )
                ]
        return []


DETECTORS: tuple[type[Detector[Any]], ...] = (
    ExceedsCapacity,
    Rollback,
    Inconsistent,
    SessionOverlap,
    Phantom,
)
