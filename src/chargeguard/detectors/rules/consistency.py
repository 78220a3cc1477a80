"""The meter.inconsistent rule: a transaction's billed readings disagreeing with its sampled register."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

from chargeguard.detectors.base import Detector, DetectorContext, DetectorInfo
from chargeguard.detectors.rules.registers import Readings, capacity_kw, incident_key, started
from chargeguard.detectors.rules.txbook import TxBook
from chargeguard.events import Event, Finding, MeterSample, Severity, TransactionEnded, TransactionStarted


@dataclass(frozen=True, slots=True)
class InconsistentConfig:
    """Thresholds of meter.inconsistent.

    tolerance_wh / tolerance_ratio: disagreement ignored (the larger of the two; ratio of the transaction
      energy).
    default_max_kw: connector rating when the inventory does not know it; also the most any charger delivers,
      which bounds how far the first sample may sit above meterStart.
    rate_margin: how much faster than the fastest charging seen in the transaction the register may have risen
      between the last sample and the stop (never below half the rating; never above it, unless the
      transaction's own readings already rose faster - then as fast as they did).
    """

    tolerance_wh: float = 100.0
    tolerance_ratio: float = 0.02
    default_max_kw: float = 400.0
    rate_margin: float = 1.5


@dataclass(frozen=True, slots=True)
class _Check:
    name: str
    label: str
    expected: float
    reported: float
    rise_allowed: float


class Inconsistent(Detector[InconsistentConfig]):
    """Billed readings that disagree with the sampled register (meterStop vs last sample, meterStart vs first).

    Catches, when a transaction ends, beyond ``tolerance_wh`` / ``tolerance_ratio``:

    * the stop register below the last register sampled while the transaction ran, or above it by more than the
      charging seen in the transaction (fastest rise or sampled power, x ``rate_margin``, capped by the
      connector rating unless the readings themselves rose faster) could add in the time between - the 1.6
      meterStop against the MeterValues, the 2.0.1 Transaction.End register against the periodic samples;
    * the first sample below meterStart, or above it by more than any charger could deliver since the start (a
      station billing from another register than it samples, such as meterStart 0 against an absolute register).

    meterStop below meterStart is meter.rollback's; a first interval plausible for a charger but beyond this
    connector is meter.exceeds_capacity's.

    Why it matters: the billed energy (meterStop - meterStart) must be what the register measured; a mismatch is
    an inflated or trimmed stop value, a meterStart that hides energy, or a station that bills from a different
    meter than it samples (DOMAIN.md #16, #17; the foundation issue's "reported energy disagreeing with its meter
    readings").

    The rise allowed after the last sample is never below the fastest charging the transaction's own readings
    showed, even beyond the rating: a register that rose at 59 kW on a 22 kW connector throughout and stops
    where that pace leads is impossible energy (meter.exceeds_capacity's alert), not a stop disagreeing with
    its samples (injected real data: five such transactions were double-counted as inconsistent).

    False positives: a car that starts drawing much faster right after the last sample (the allowance never
    falls below half the rating); stations that report meterStart 0 while sampling an absolute register (a
    real integration defect that bills the register's whole history - worth an alert, but fix the station).

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
        self._tx: TxBook[Readings] = TxBook(Readings, context)

    def state_size(self) -> int:
        return len(self._tx)

    def process(self, event: Event) -> Iterable[Finding]:
        if type(event) is MeterSample:
            readings = self._tx.for_sample(event.station, event.transaction_id, event.connector, event.ts)
            if readings is None:
                return ()
            if readings.connector is None:
                readings.connector = event.connector
            readings.ocpp = event.ocpp
            power = event.power_w
            if power is not None and power > readings.max_rate_w:
                readings.max_rate_w = power
            if event.energy_wh is not None:
                readings.sampled(event.energy_wh, event.at.timestamp(), event.context)
            return ()
        if isinstance(event, TransactionStarted):
            started(self._tx, event)
            return ()
        if isinstance(event, TransactionEnded):
            readings = (
                self._tx.pop(event.station, event.transaction_id, event.ts, event.connector) or Readings()
            )
            readings.connector = readings.connector or event.connector
            return self._ended(event, readings)
        return ()

    def _checks(self, event: TransactionEnded, readings: Readings, start: float, stop: float) -> list[_Check]:
        cfg = self.config
        tol = max(cfg.tolerance_wh, cfg.tolerance_ratio * (stop - start))
        rating_kw, _ = capacity_kw(self.context, event.station, readings.connector, cfg.default_max_kw)
        checks: list[_Check] = []
        started_at = readings.start_at if readings.start_at is not None else (
            event.started_at.timestamp() if event.started_at is not None else None
        )  # fmt: skip
        first_wh = readings.first_wh if readings.first_wh is not None else event.first_sample_wh
        if first_wh is not None and not event.ocpp.startswith("2"):  # 2.0.1 meterStart is the first register
            gap = None if started_at is None or readings.first_at is None else readings.first_at - started_at
            rise = tol + (cfg.default_max_kw * 1000.0 * max(gap, 0.0) / 3600.0 if gap is not None else 0.0)
            checks.append(_Check("first_sample", "first sample vs meterStart", start, first_wh, rise))
        # the 2.0.1 stop register is the Transaction.End sample itself: compare it with the running samples
        if event.ocpp.startswith("2"):
            last_wh, last_at = readings.running_wh, readings.running_at
        else:
            last_wh, last_at = readings.last_wh, readings.last_at
        if last_wh is None and readings.samples == 0 and event.last_sample_wh is not None:
            if not event.ocpp.startswith("2"):  # only the summary: no sample times
                checks.append(_Check("stop", "meterStop vs last sample", event.last_sample_wh, stop,
                                     tol + 0.05 * (stop - start)))  # fmt: skip
        elif last_wh is not None and last_at is not None:
            observed = readings.max_rate_w * cfg.rate_margin
            rate_w = (
                min(rating_kw * 1000.0, max(observed, rating_kw * 500.0))
                if observed > 0
                else rating_kw * 1000.0
            )
            # samples that already rose faster than the rating (meter.exceeds_capacity's finding) may go on at
            # that pace: a stop keeping up with the transaction's own register agrees with it
            rate_w = max(rate_w, readings.max_rate_w)
            gap = max(event.at.timestamp() - last_at, 0.0)
            checks.append(
                _Check("stop", "meterStop vs last sample", last_wh, stop, tol + rate_w * gap / 3600.0)
            )
        return [
            c for c in checks if c.reported < c.expected - tol or c.reported > c.expected + c.rise_allowed
        ]

    def _ended(self, event: TransactionEnded, readings: Readings) -> list[Finding]:
        start, stop = event.meter_start_wh, event.meter_stop_wh
        if start is None or stop is None or stop < start:
            return []
        failed = self._checks(event, readings, start, stop)
        if not failed:
            return []
        check = failed[0]
        diff = check.reported - check.expected
        tol = max(self.config.tolerance_wh, self.config.tolerance_ratio * (stop - start))
        return [
            self.finding(
                "meter.inconsistent",
                ts=event.ts,
                incident=incident_key(event.station, readings.connector),
                summary=f"{check.label} differ by {diff / 1000:+.3f} kWh",
                confidence=0.9 if abs(diff) >= 10 * tol else 0.75,
                severity=Severity.HIGH if abs(diff) >= 5000 else Severity.MEDIUM,
                station=event.station,
                transactions=(event.transaction_id,),
                token_ref=event.token_ref,
                evidence={
                    "check": check.name,
                    "meter_start_wh": start,
                    "meter_stop_wh": stop,
                    "expected_wh": check.expected,
                    "reported_wh": check.reported,
                    "difference_wh": round(diff, 1),
                    "tolerance_wh": round(tol, 1),
                    "rise_allowed_wh": round(check.rise_allowed, 1),
                    "connector": readings.connector,
                    "checks_failed": [c.name for c in failed],
                },
            )
        ]
