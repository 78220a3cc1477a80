"""The session.phantom rule: energy billed for a transaction with no sign of a vehicle charging behind it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

from chargeguard.detectors.base import Detector, DetectorContext, DetectorInfo
from chargeguard.detectors.rules.intervals import MIN_GAP_S
from chargeguard.detectors.rules.registers import BOUNDARY_CONTEXTS, capacity_kw
from chargeguard.detectors.rules.txbook import TxBook, connector_key
from chargeguard.detectors.state import BoundedState
from chargeguard.events import (
    ConnectorStatus,
    Event,
    Finding,
    MeterSample,
    Severity,
    TransactionEnded,
    TransactionStarted,
)

VEHICLE_STATUSES = frozenset(
    {"Preparing", "Charging", "SuspendedEV", "SuspendedEVSE", "Finishing", "Occupied"}
)
"""Connector statuses that mean a cable is plugged in (1.6 and 2.0.1 names)."""
OUT_OF_SERVICE = frozenset({"Unavailable", "Faulted"})


@dataclass(frozen=True, slots=True)
class PhantomConfig:
    """Thresholds of session.phantom.

    min_energy_wh: billed energy below this is never a phantom worth reporting.
    rise_wh: a register rise of at least this in samples taken while the transaction ran shows charging.
    min_power_w: a sampled power of at least this shows charging.
    plug_lead_s: a plugged-in status this long before the start still counts (1.6 Preparing, 2.0.1 Occupied).
    default_max_kw / tolerance: the connector rating (inventory first) that makes a duration too short for the
      energy billed.
    unsampled_intervals: a transaction that said Charging yet sent no sample while it ran, at a station that
      samples while charging, is judged on the station's habits once it lasted this many of its sample intervals.
    unplugged_s: the connector reported Available (no cable) while the transaction ran, at least this long
      before it ended, and never a plugged-in status: the station itself says no vehicle was there.
    """

    min_energy_wh: float = 1000.0
    rise_wh: float = 100.0
    min_power_w: float = 100.0
    plug_lead_s: float = 1800.0
    default_max_kw: float = 400.0
    tolerance: float = 0.10
    unsampled_intervals: float = 3.0
    unplugged_s: float = 600.0


@dataclass(slots=True)
class _Life:
    """Signs of a vehicle charging during one transaction."""

    unit: str | None = None
    start_at: float | None = None
    first_wh: float | None = None
    rising: bool = False
    powered: bool = False
    plugged: bool = False
    out_of_service: str | None = None
    running_samples: int = 0  # readings taken while it ran (not the Begin/End boundary readings)
    last_running_at: float | None = None
    gap_s: float | None = None  # shortest time between two of those readings
    available_at: float | None = None  # first Available status reported while it ran (station time)
    plug_lead: bool = False  # a plugged-in status shortly before the start, even if a late Available followed


class Phantom(Detector[PhantomConfig]):
    """Energy billed with no plausible charging behind it.

    Catches: a transaction that ends having billed at least ``min_energy_wh`` while nothing showed a vehicle
    charging - no register rise in samples taken while it ran (Transaction.Begin / End readings are the billed
    values themselves, not evidence), no sampled power, and no plugged-in status on its connector (1.6
    Preparing / Charging / Suspended* / Finishing, 2.0.1 Occupied) from shortly before its start to its end.
    It fires when the station is known to report such signs (an earlier transaction of the station showed
    them), when the connector was Unavailable or Faulted at the start, when it reported Available (no cable)
    while the transaction ran at least ``unplugged_s`` before its end, or when the transaction was also too
    short for its energy on this connector; confidence rises with each.

    Why it matters: DOMAIN.md #20 (phantom or ghost sessions: billing records with no charging behind them,
    simulated transactions) - invented energy billed to a driver or an eMSP.

    False positives: a station that stops reporting statuses and samples (it is silent on stations that never
    reported them); transactions replayed from the offline queue, whose status changes are usually lost, fire
    only when the connector was out of service or the duration is too short. A transaction in which the station
    said Charging (``charging_seen``: a Charging status, or 2.0.1 ``chargingState`` Charging) is not flagged on
    the station's habits alone, only when too short or out of service - or when it sent not one sample while it
    ran although it lasted ``unsampled_intervals`` of the sample interval the station showed in transactions
    that really charged (a fabricated transaction can claim Charging; it has no meter behind it). Real data:
    at the EPFL DC station (1,878 sessions) a 9-minute 18.9 kWh session sent only its Begin/End registers
    (samples every 15 min), and the previous car's unplug (Available) landed 25 s before its start, after its
    own plug-in - yet its TransactionEvent said Charging; judged on the station's habits alone it was a false
    alarm. Perth (66,664 sessions) had 17 such alerts, all short 2.0.1 sessions with only Begin/End registers:
    now none.

    References: OCPP 1.6 §4.9 StatusNotification, §4.7 MeterValues, §4.10 StopTransaction; OCPP 2.0.1 G01
    (connector status), E02, J01; DOMAIN.md #20.
    """

    info: ClassVar[DetectorInfo] = DetectorInfo(
        name="session-phantom",
        kinds=("session.phantom",),
        title="Energy billed without charging behind it",
        severity=Severity.HIGH,
        references=("OCPP 1.6 §4.9 StatusNotification", "OCPP 2.0.1 G01", "DOMAIN.md #20"),
    )
    consumes: ClassVar[tuple[type[Any], ...]] = (
        ConnectorStatus,
        TransactionStarted,
        MeterSample,
        TransactionEnded,
    )
    Config: ClassVar[type[Any]] = PhantomConfig

    def __init__(self, config: PhantomConfig, context: DetectorContext) -> None:
        super().__init__(config, context)
        limits = context.limits
        self._tx: TxBook[_Life] = TxBook(_Life, context)
        self._status: BoundedState[tuple[str, str], tuple[str, float]] = BoundedState(
            limits.max_keys, limits.ttl_s
        )
        self._open: BoundedState[tuple[str, str], str] = BoundedState(limits.max_keys, limits.ttl_s)
        self._reporting: BoundedState[str, bool] = BoundedState(limits.max_keys, limits.ttl_s)
        # the sample interval a station showed in a transaction that really charged
        self._interval: BoundedState[str, float] = BoundedState(limits.max_keys, limits.ttl_s)
        # when each connector last reported a plugged-in status (the latest status may be a late Available)
        self._vehicle_at: BoundedState[tuple[str, str], float] = BoundedState(limits.max_keys, limits.ttl_s)

    def state_size(self) -> int:
        return (
            len(self._tx)
            + len(self._status)
            + len(self._open)
            + len(self._reporting)
            + len(self._interval)
            + len(self._vehicle_at)
        )

    def process(self, event: Event) -> Iterable[Finding]:
        if type(event) is MeterSample:
            self._sample(event)
        elif isinstance(event, ConnectorStatus):
            self._connector_status(event)
        elif isinstance(event, TransactionStarted):
            self._started(event)
        elif isinstance(event, TransactionEnded):
            return self._ended(event)
        return ()

    def _connector_status(self, event: ConnectorStatus) -> None:
        unit = connector_key(event.connector)
        if unit is None:
            return
        at = event.at.timestamp()
        vehicle = event.status in VEHICLE_STATUSES
        self._status.put((event.station, unit), (event.status, at), event.ts)
        if vehicle:
            self._vehicle_at.put((event.station, unit), at, event.ts)
        tx = self._open.get((event.station, unit))
        life = None if tx is None else self._tx.get(event.station, tx)
        if life is None:
            return
        if vehicle:
            life.plugged = True
        elif (
            event.status == "Available"
            and life.available_at is None
            and life.start_at is not None
            and at > life.start_at
        ):
            life.available_at = at

    def _started(self, event: TransactionStarted) -> None:
        life = self._tx.touch(event.station, event.transaction_id, event.ts, event.connector)
        life.unit = connector_key(event.connector)
        life.start_at = event.at.timestamp()
        if event.meter_start_wh is not None:
            life.first_wh = event.meter_start_wh
        if life.unit is None:
            return
        self._open.put((event.station, life.unit), event.transaction_id, event.ts)
        vehicle_at = self._vehicle_at.get((event.station, life.unit))
        life.plug_lead = vehicle_at is not None and vehicle_at >= life.start_at - self.config.plug_lead_s
        last = self._status.get((event.station, life.unit))
        if last is not None:
            status, at = last
            if status in VEHICLE_STATUSES and at >= life.start_at - self.config.plug_lead_s:
                life.plugged = True
            elif status in OUT_OF_SERVICE:
                life.out_of_service = status

    def _sample(self, event: MeterSample) -> None:
        life = self._tx.for_sample(event.station, event.transaction_id, event.connector, event.ts)
        if life is None:
            return
        if event.context not in BOUNDARY_CONTEXTS:
            at = event.at.timestamp()
            last = life.last_running_at
            if last is not None and at - last >= MIN_GAP_S and (life.gap_s is None or at - last < life.gap_s):
                life.gap_s = at - last
            life.last_running_at, life.running_samples = at, life.running_samples + 1
        if life.rising and life.powered:
            return  # everything else a sample can show is known
        if event.power_w is not None and event.power_w >= self.config.min_power_w:
            life.powered = True
        if event.energy_wh is None:
            return
        if life.first_wh is None:
            life.first_wh = event.energy_wh
        elif (
            event.context not in BOUNDARY_CONTEXTS and event.energy_wh - life.first_wh >= self.config.rise_wh
        ):
            life.rising = True

    def _ended(self, event: TransactionEnded) -> list[Finding]:
        life = self._tx.pop(event.station, event.transaction_id, event.ts, event.connector)
        if life is None:
            return []  # started before the capture: what happened during it is unknown
        if life.unit is not None and self._open.get((event.station, life.unit)) == event.transaction_id:
            self._open.pop((event.station, life.unit))
        if life.rising or life.powered or life.plugged:
            self._reporting.put(event.station, True, event.ts)
            if life.gap_s is not None:
                self._interval.put(event.station, life.gap_s, event.ts)
            return []
        cfg = self.config
        energy = event.energy_wh
        if energy is None or energy < cfg.min_energy_wh:
            return []
        limit_kw, source = capacity_kw(self.context, event.station, event.connector, cfg.default_max_kw)
        duration = event.duration_s
        possible_wh = None
        if duration is not None:
            possible_wh = limit_kw * 1000.0 * max(duration, 0.0) / 3600.0 * (1.0 + cfg.tolerance)
        too_short = possible_wh is not None and energy > possible_wh
        reporting = self._reporting.get(event.station) is True
        # the station said Charging (a Charging status or 2.0.1 chargingState): that answers the "it reports
        # signs elsewhere" argument, not a duration too short for the energy or a connector out of service
        claimed = event.charging_seen
        # ...unless the station, which samples every interval while it charges, sent no sample at all during
        # a transaction that lasted several intervals: a claim with no meter behind it
        interval = self._interval.get(event.station)
        unsampled = (
            claimed
            and life.running_samples == 0
            and interval is not None
            and duration is not None
            and duration >= cfg.unsampled_intervals * interval + 60.0
        )
        habits = reporting and not event.queued and (not claimed or unsampled)
        # the connector said "no cable" while the transaction ran, long before it ended (an unplug just before
        # the stop is ordinary), and never said plugged: billing with the station's own word against it
        # (not when a plug-in was reported shortly before the start: an Available then may be the previous
        # car's unplug arriving late - seen on Perth, rapid back-to-back sessions)
        unplugged = (
            life.available_at is not None
            and not life.plug_lead
            and event.at.timestamp() - life.available_at >= cfg.unplugged_s
        )
        if not (too_short or life.out_of_service or habits or unplugged):
            return []
        signals = ["no_register_rise", "no_power", "no_plugged_status"]
        if life.out_of_service:
            signals.append(f"connector_{life.out_of_service.lower()}")
        if too_short:
            signals.append("too_short")
        if reporting:
            signals.append("station_reports_charging_elsewhere")
        if claimed:
            signals.append("charging_state_claimed")
        if unsampled:
            signals.append("no_sample_while_claimed")
        if unplugged:
            signals.append("connector_available_while_running")
        confidence = 0.95 if life.out_of_service else (0.9 if (too_short and reporting) or unplugged else 0.8)
        reason = (
            f"on a connector reported {life.out_of_service}"
            if life.out_of_service
            else "with no sign of charging"
        )
        return [
            self.finding(
                "session.phantom",
                ts=event.ts,
                incident=event.station,
                summary=f"{energy / 1000:.1f} kWh billed {reason}",
                confidence=confidence,
                station=event.station,
                transactions=(event.transaction_id,),
                token_ref=event.token_ref,
                evidence={
                    "energy_wh": round(energy, 1),
                    "duration_s": None if duration is None else round(duration, 1),
                    "samples": event.samples,
                    "signals": signals,
                    "possible_wh": None if possible_wh is None else round(possible_wh, 1),
                    "limit_kw": limit_kw,
                    "limit_source": source,
                    "offline": event.queued,
                    "connector": event.connector,
                },
            )
        ]
