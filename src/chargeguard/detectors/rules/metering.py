"""Metering rule detectors: energy or power beyond what a connector can deliver (``meter.exceeds_capacity``).

Every metering and session detector is exported through ``DETECTORS`` here: meter.rollback lives in
``rules/rollback.py``, meter.inconsistent in ``rules/consistency.py``, session.overlap in ``rules/sessions.py``
and session.phantom in ``rules/phantom.py``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

from chargeguard.detectors.base import Detector, DetectorContext, DetectorInfo
from chargeguard.detectors.rules.consistency import Inconsistent
from chargeguard.detectors.rules.phantom import Phantom
from chargeguard.detectors.rules.registers import Readings, capacity_kw, incident_key, started
from chargeguard.detectors.rules.rollback import Rollback
from chargeguard.detectors.rules.sessions import SessionOverlap
from chargeguard.detectors.rules.txbook import TxBook
from chargeguard.events import Event, Finding, MeterSample, Severity, TransactionEnded, TransactionStarted


@dataclass(frozen=True, slots=True)
class ExceedsCapacityConfig:
    """Thresholds of meter.exceeds_capacity.

    default_max_kw: connector limit when the inventory does not know the station or connector; also the most any
      charger delivers (a first sample further above meterStart than that is meter.inconsistent's).
    tolerance: relative margin over the connector rating: nameplate rounding (a "7 kW" post delivers 7.4 kW),
      mains voltage up to +10 %, meters on the AC input side of DC chargers counting conversion losses.
    slack_wh: absolute margin on energy between two readings (register resolution, e.g. 0.1 kWh steps).
    time_slack_s: margin on the time between two readings (timestamps written to the second or the minute).
    max_session_wh: energy no single vehicle battery takes in one transaction (heavy trucks and buses carry
      400-900 kWh; the EPFL DC station's real sessions include a 269 kWh charge of a 370 kWh battery).
    """

    default_max_kw: float = 400.0
    tolerance: float = 0.25
    slack_wh: float = 100.0
    time_slack_s: float = 30.0
    max_session_wh: float = 1_000_000.0


class ExceedsCapacity(Detector[ExceedsCapacityConfig]):
    """Energy or power beyond what the connector can physically deliver.

    Catches, per transaction: a sampled power above the connector rating; a register rise between two readings
    (meterStart and the samples, in station time) above rating x elapsed time; for a transaction without any
    sample, meterStop - meterStart above rating x its duration; and a transaction's energy above a plausible
    battery (``max_session_wh``). The rating is the inventory's ``connector_max_kw`` (connector row, else EVSE,
    else station), else ``default_max_kw``, plus ``tolerance`` and ``slack_wh``. Rises are measured from the
    highest reading so far, so a register that was rolled back and recovers is meter.rollback's alone; the step
    from the last sample to meterStop is meter.inconsistent's.

    Why it matters: DOMAIN.md #15 (energy exceeding physical limits: inflated meter values or CDRs bill energy
    that was never delivered) and #18 (CDR inflation). Real data: the Dundee sessions include one of 1,430 kWh
    on a 50 kW charger - a data error for the operator, and exactly what this detector is for.

    False positives: a heavy vehicle's battery taken for a car's (EPFL data: 269 kWh, 25 % to 94 % of a
    370 kWh battery, at 118 kW average - was a false alarm at a 250 kWh bound, hence 1 MWh); a wrong inventory
    rating (the evidence shows the limit used and where it came from; in the
    Dundee data the "7 kW" outlets reach 10 kW at the 99th percentile, so rate them as they are); readings whose
    timestamps are wrong (see station.clock_skew); without an inventory only grossly impossible values fire.

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
        self._tx: TxBook[Readings] = TxBook(Readings, context)

    def state_size(self) -> int:
        return len(self._tx)

    def process(self, event: Event) -> Iterable[Finding]:
        kind = type(event)
        if kind is MeterSample:
            assert isinstance(event, MeterSample)
            return self._sample(event)
        if kind is TransactionStarted:
            assert isinstance(event, TransactionStarted)
            started(self._tx, event)
        elif kind is TransactionEnded:
            assert isinstance(event, TransactionEnded)
            return self._ended(event)
        return ()

    def _sample(self, event: MeterSample) -> list[Finding] | tuple[()]:
        station, connector = event.station, event.connector
        readings = self._tx.for_sample(station, event.transaction_id, connector, event.ts)
        if readings is None:
            return ()
        tx = event.transaction_id or self._tx.resolve(station, None, connector)
        if tx is None:
            return ()
        if readings.connector is None:
            readings.connector = connector
        readings.ocpp = event.ocpp
        wh = event.energy_wh
        found: list[Finding] | None = None
        if event.power_w is not None and "power" not in readings.fired:
            found = self._power(event, readings, tx)
        if wh is not None:
            at = event.at.timestamp()
            peak, base = readings.peak_wh, readings.start_wh
            # a reading at or below the highest so far, within a battery of meterStart, has nothing to judge
            if (
                peak is None
                or wh > peak
                or readings.fired
                or base is None
                or wh - base > self.config.max_session_wh
            ):
                rise = self._rise(event, readings, tx, wh, at)
                if rise:
                    found = rise if found is None else found + rise
            readings.sampled(wh, at, event.context)
        return () if found is None else found

    def _limit(self, station: str, readings: Readings) -> tuple[float, str]:
        """The connector's rating, looked up once per transaction and connector (samples ask on every reading)."""
        cached = readings.limit
        if cached is not None and cached[0] == readings.connector:
            return cached[1], cached[2]
        kw, source = capacity_kw(self.context, station, readings.connector, self.config.default_max_kw)
        readings.limit = (readings.connector, kw, source)
        return kw, source

    def _allowed_wh(self, limit_kw: float, seconds: float) -> float:
        cfg = self.config
        hours = (max(seconds, 0.0) + cfg.time_slack_s) / 3600.0
        return limit_kw * 1000.0 * hours * (1.0 + cfg.tolerance) + cfg.slack_wh

    def _power(self, event: MeterSample, readings: Readings, tx: str) -> list[Finding] | None:
        if event.power_w is None or "power" in readings.fired:
            return None
        limit_kw, source = self._limit(event.station, readings)
        if event.power_w <= limit_kw * 1000.0 * (1.0 + self.config.tolerance):
            return None
        readings.fired.add("power")
        return [
            self._finding(
                event, readings, tx,
                f"sampled power {event.power_w / 1000:.1f} kW above the {limit_kw:g} kW rating",
                event.power_w / (limit_kw * 1000.0),
                {"check": "power", "power_w": event.power_w, "limit_kw": limit_kw, "limit_source": source},
            )
        ]  # fmt: skip

    def _rise(self, event: MeterSample, readings: Readings, tx: str, wh: float, at: float) -> list[Finding]:
        """The rise from the highest earlier reading to this one, against rating x time."""
        found: list[Finding] = []
        ref_wh, ref_at = readings.peak_wh, readings.peak_at
        if ref_wh is not None and ref_at is not None and at >= ref_at and wh > ref_wh:
            delta_wh, delta_s = wh - ref_wh, at - ref_at
            limit_kw, source = self._limit(event.station, readings)
            average_kw = delta_wh / max(delta_s, 1.0) * 3.6
            from_start = readings.samples == 0
            mismatch = from_start and average_kw > self.config.default_max_kw * (1.0 + self.config.tolerance)
            if mismatch:
                readings.fired.add(
                    "start_mismatch"
                )  # meterStart is not this register: count from the samples
            if (
                delta_wh > self._allowed_wh(limit_kw, delta_s)
                and not mismatch
                and "interval" not in readings.fired
            ):
                readings.fired.add("interval")
                found.append(
                    self._finding(
                        event, readings, tx,
                        f"{delta_wh / 1000:.1f} kWh in {delta_s:.0f} s ({average_kw:.0f} kW), rated {limit_kw:g} kW",
                        average_kw / limit_kw,
                        {"check": "interval", "energy_wh": round(delta_wh, 1), "interval_s": round(delta_s, 1),
                         "average_kw": round(average_kw, 1), "limit_kw": limit_kw, "limit_source": source},
                    )
                )  # fmt: skip
        base = readings.start_wh if "start_mismatch" not in readings.fired else readings.first_wh
        if base is None:
            base = wh if readings.first_wh is None else readings.first_wh
        if wh - base > self.config.max_session_wh and "battery" not in readings.fired:
            found.append(self._battery(event, readings, tx, wh - base))
        return found

    def _ended(self, event: TransactionEnded) -> list[Finding]:
        readings = self._tx.pop(event.station, event.transaction_id, event.ts, event.connector) or Readings()
        readings.connector = readings.connector or event.connector
        readings.ocpp = event.ocpp
        found: list[Finding] = []
        energy, duration = event.energy_wh, event.duration_s
        unsampled = readings.samples == 0 and event.samples == 0
        if unsampled and energy is not None and duration is not None and "interval" not in readings.fired:
            limit_kw, source = self._limit(event.station, readings)
            if energy > self._allowed_wh(limit_kw, duration):
                readings.fired.add("interval")
                average_kw = energy / max(duration, 1.0) * 3.6
                found.append(
                    self._finding(
                        event, readings, event.transaction_id,
                        f"meterStop - meterStart = {energy / 1000:.1f} kWh in {duration / 60:.0f} min, "
                        f"rated {limit_kw:g} kW",
                        average_kw / limit_kw,
                        {"check": "session", "energy_wh": round(energy, 1), "interval_s": round(duration, 1),
                         "average_kw": round(average_kw, 1), "limit_kw": limit_kw, "limit_source": source},
                    )
                )  # fmt: skip
        if (
            "start_mismatch" in readings.fired
            and readings.first_wh is not None
            and event.meter_stop_wh is not None
        ):
            energy = event.meter_stop_wh - readings.first_wh
        if energy is not None and energy > self.config.max_session_wh and "battery" not in readings.fired:
            found.append(self._battery(event, readings, event.transaction_id, energy))
        return found

    def _battery(
        self, event: MeterSample | TransactionEnded, readings: Readings, tx: str, energy: float
    ) -> Finding:
        readings.fired.add("battery")
        return self._finding(
            event, readings, tx, f"{energy / 1000:.0f} kWh in one transaction, more than any vehicle battery takes",
            energy / self.config.max_session_wh,
            {"check": "battery", "energy_wh": round(energy, 1), "max_session_wh": self.config.max_session_wh},
        )  # fmt: skip

    def _finding(
        self,
        event: MeterSample | TransactionEnded,
        readings: Readings,
        tx: str,
        summary: str,
        ratio: float,
        evidence: dict[str, Any],
    ) -> Finding:
        return self.finding(
            "meter.exceeds_capacity",
            ts=event.ts,
            incident=incident_key(event.station, readings.connector),
            summary=summary,
            confidence=0.95 if ratio >= 2.0 else 0.8,
            severity=Severity.HIGH if ratio >= 1.5 else Severity.MEDIUM,
            station=event.station,
            transactions=(tx,),
            evidence={"connector": readings.connector, **evidence},
        )


DETECTORS: tuple[type[Detector[Any]], ...] = (
    ExceedsCapacity,
    Rollback,
    Inconsistent,
    SessionOverlap,
    Phantom,
)
