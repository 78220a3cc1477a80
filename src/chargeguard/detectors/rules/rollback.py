"""The meter.rollback rule: an energy register going backwards, within a transaction or between two."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

from chargeguard.detectors.base import Detector, DetectorContext, DetectorInfo
from chargeguard.detectors.rules.registers import Readings, incident_key, started
from chargeguard.detectors.rules.txbook import TxBook, connector_key
from chargeguard.detectors.state import BoundedState
from chargeguard.events import Event, Finding, MeterSample, Severity, TransactionEnded, TransactionStarted


@dataclass(frozen=True, slots=True)
class RollbackConfig:
    """Thresholds of meter.rollback.

    tolerance_wh: decrease ignored as register rounding (kWh registers with two decimals step by 10 Wh).
    zero_register_wh: meterStart values at or below this are a register counting from zero; a connector whose
      transactions all start there meters per transaction, so its next start is not compared with the last stop.
    stop_memory_s: how long a connector's last stop register is remembered (event time, at least the engine's
      state TTL): a register keeps its value however long the connector stands idle, and connectors of rural
      or residential networks stand idle for weeks (Perth, Trondheim: 8-17 days before a set-back register).
      One small record per connector, still bounded by the engine's key limit.
    """

    tolerance_wh: float = 10.0
    zero_register_wh: float = 100.0
    stop_memory_s: float = 366 * 86_400.0


@dataclass(frozen=True, slots=True)
class _LastStop:
    transaction_id: str
    start_wh: float | None
    stop_wh: float
    at: float


class Rollback(Detector[RollbackConfig]):
    """An energy register going backwards.

    Catches, beyond ``tolerance_wh``: a sample lower than the highest earlier reading (meterStart or a sample, in
    station time) of the same transaction - compared with the highest, not the previous reading, so a slow
    rollback of many small steps is caught once their sum passes the tolerance; meterStop lower than meterStart,
    or lower than the highest sample of its transaction (a register set back while the car charged);
    and a transaction that starts below where the previous transaction on the same connector / EVSE stopped
    (set back between sessions, or restarted near zero, however long the connector stood idle in between - see
    ``stop_memory_s``) - unless that connector meters every transaction from zero. Samples and transactions
    that arrive late but carry an earlier station time are not decreases.

    Why it matters: DOMAIN.md #16 (meter rollback / non-monotonic register / meterStop < meterStart; SteVe
    accepted meterStop < meterStart). Energy.Active.Import.Register is cumulative by definition: it only rises, so
    a register set back hides energy from billing or lets a later session bill it again.

    False positives: a meter replaced or reset by a technician (the evidence shows both readings); stations that
    mix registers of different meters under one measurand. Real data: the Dundee sessions include 8 of negative
    energy (1 in 2,400) - data errors for the operator, which an OCPP capture would show as exactly this: an
    alert is the right answer, a meter reporting negative energy bills wrongly whoever is at fault. Perth
    (66,664 sessions): 3 alerts between transactions (16-510 Wh) come from records of one minute (a 0.14 kWh
    session and a zero-energy one, both 16:18) whose imported registers follow the rows while their times
    follow the ends - an import artefact the capture really shows, so the rule is left as it is.

    References: OCPP 1.6 §4.7 MeterValues, §4.8 StartTransaction (meterStart), §4.10 StopTransaction
    (meterStop), §7.31 Energy.Active.Import.Register; OCPP 2.0.1 E06, J01, Part 2 appendix Measurands;
    DOMAIN.md #16.
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
        self._tx: TxBook[Readings] = TxBook(Readings, context)
        self._stops: BoundedState[tuple[str, str], _LastStop] = BoundedState(
            context.limits.max_keys, max(context.limits.ttl_s, config.stop_memory_s)
        )

    def state_size(self) -> int:
        return len(self._tx) + len(self._stops)

    def process(self, event: Event) -> Iterable[Finding]:
        if type(event) is MeterSample:
            return self._sample(event) if event.energy_wh is not None else ()
        if isinstance(event, TransactionStarted):
            readings = started(self._tx, event)
            if event.meter_start_wh is None:
                return ()
            return self._between(
                event, readings, event.transaction_id, event.meter_start_wh, event.at.timestamp()
            )
        if isinstance(event, MeterSample):
            return self._sample(event)
        if isinstance(event, TransactionEnded):
            return self._ended(event)
        return ()

    def _sample(self, event: MeterSample) -> list[Finding]:
        wh = event.energy_wh
        readings = self._tx.for_sample(event.station, event.transaction_id, event.connector, event.ts)
        if readings is None or wh is None:
            return []
        tx = event.transaction_id or self._tx.resolve(event.station, None, event.connector)
        if tx is None:
            return []
        readings.connector, readings.ocpp = readings.connector or event.connector, event.ocpp
        at, tol = event.at.timestamp(), self.config.tolerance_wh
        if readings.samples:
            peak, peak_at = readings.peak_wh, readings.peak_at
            if peak is None or peak_at is None or at < peak_at or wh >= peak - tol:
                readings.sampled(wh, at, event.context)  # the common case: the register rose or held
                return []
        found: list[Finding] = []
        if readings.samples == 0:
            if readings.start_wh is None:
                # a 2.0.1 transaction whose Started event carried no register: its first reading is its start
                found += self._between(event, readings, tx, wh, at)
            elif wh < readings.start_wh - tol:
                # the first sample below meterStart: two registers disagree (meter.inconsistent's)
                readings.peak_wh, readings.peak_at = wh, at
        peak, peak_at = readings.peak_wh, readings.peak_at
        dropped = peak is not None and peak_at is not None and at >= peak_at and wh < peak - tol
        if dropped and peak is not None and "sample" not in readings.fired:
            readings.fired.add("sample")
            found.append(self._finding(event, readings, tx, "sample", peak, wh, {}))
        readings.sampled(wh, at, event.context)
        return found

    def _between(
        self, event: TransactionStarted | MeterSample, readings: Readings, tx: str, start_wh: float, at: float
    ) -> list[Finding]:
        """The register at this transaction's start against where the previous one on the connector stopped."""
        unit = connector_key(readings.connector or event.connector)
        if unit is None:
            return []
        last = self._stops.get((event.station, unit))
        cfg = self.config
        if (
            last is None
            or last.transaction_id == tx
            or at < last.at
            or start_wh >= last.stop_wh - cfg.tolerance_wh
        ):
            return []
        per_transaction = last.start_wh is not None and last.start_wh <= cfg.zero_register_wh
        if per_transaction and start_wh <= cfg.zero_register_wh:
            return []
        readings.fired.add("between")
        return [
            self._finding(
                event, readings, tx, "between_transactions", last.stop_wh, start_wh,
                {"previous_transaction": last.transaction_id},
                transactions=(last.transaction_id, tx),
            )
        ]  # fmt: skip

    def _ended(self, event: TransactionEnded) -> list[Finding]:
        readings = self._tx.pop(event.station, event.transaction_id, event.ts, event.connector) or Readings()
        readings.connector, readings.ocpp = readings.connector or event.connector, event.ocpp
        start, stop = event.meter_start_wh, event.meter_stop_wh
        unit = connector_key(readings.connector)
        register = stop if stop is not None else event.last_sample_wh
        if unit is not None and register is not None:
            key = (event.station, unit)
            last = self._stops.get(key)
            at = event.at.timestamp()
            if last is None or at >= last.at:
                self._stops.put(key, _LastStop(event.transaction_id, start, register, at), event.ts)
        tol = self.config.tolerance_wh
        if start is not None and stop is not None and stop < start - tol:
            return [self._finding(event, readings, event.transaction_id, "stop_below_start", start, stop, {})]
        peak, peak_at = readings.peak_wh, readings.peak_at
        if (
            stop is not None
            and readings.samples
            and peak is not None
            and peak_at is not None
            and event.at.timestamp() >= peak_at
            and stop < peak - tol
            and "sample" not in readings.fired
        ):
            # 1.6 meterStop is no sample: a stop below the register the transaction's own samples reached
            return [self._finding(event, readings, event.transaction_id, "stop_below_sample", peak, stop, {})]
        return []

    def _finding(
        self,
        event: TransactionStarted | MeterSample | TransactionEnded,
        readings: Readings,
        tx: str,
        check: str,
        before: float,
        after: float,
        extra: dict[str, Any],
        *,
        transactions: tuple[str, ...] | None = None,
    ) -> Finding:
        drop = before - after
        what = {
            "stop_below_start": "meterStop below meterStart",
            "between_transactions": "register set back between two transactions",
        }.get(check, "register decreased")
        return self.finding(
            "meter.rollback",
            ts=event.ts,
            incident=incident_key(event.station, readings.connector),
            summary=f"{what} by {drop / 1000:.3f} kWh",
            confidence=0.95 if drop >= 1000 else 0.8,
            severity=Severity.HIGH if drop >= 1000 else Severity.MEDIUM,
            station=event.station,
            transactions=transactions or (tx,),
            token_ref=event.token_ref if isinstance(event, TransactionStarted | TransactionEnded) else None,
            evidence={
                "check": check,
                "before_wh": before,
                "after_wh": after,
                "drop_wh": round(drop, 1),
                "connector": readings.connector,
                **extra,
            },
        )
