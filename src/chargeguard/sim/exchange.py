"""One charging session as realistic OCPP 1.6J / 2.0.1 capture lines (the capture format of docs/formats.md).

``session_lines(plan, rng=..., ids=...)`` is the public entry point: importers of real session datasets and
the network simulator both turn a :class:`SessionPlan` into the frames a station and its central system would
have exchanged. Odd plans (negative or zero energy, an end before the start, an energy beyond the connector)
never raise: they produce the traffic they imply (a meterStop below meterStart, a StopTransaction stamped
before its start, ...).

Conventions of the generated traffic:

* 1.6: StatusNotification Preparing -> Authorize -> StartTransaction -> StatusNotification Charging ->
  MeterValues every ``sample_interval_s`` (Energy.Active.Import.Register in Wh, Power.Active.Import in W) ->
  (SuspendedEV when the car is full) -> StopTransaction with meterStop and reason -> StatusNotification
  Finishing, Available.
* 2.0.1: StatusNotification Occupied, Authorize and TransactionEvent Started/Updated/Ended with seqNo,
  triggerReason, chargingState, evse and meterValue; the transaction starts either at plug-in or at
  authorisation (both TxStartPoint settings occur in the field).
* Every CALL is answered by its CALLRESULT from the csms a few milliseconds later.
* A plan without a token is a free-vend / no-authorisation session: 2.0.1 sends idToken type
  NoAuthorization; 1.6 (whose StartTransaction requires an idTag) uses an idTag unique to that transaction,
  so it can never look like one card used twice.
* A plan whose ``auth_status`` is not Accepted and whose energy is zero is a refused attempt: only the
  Authorize exchange happens. With energy, the station charged anyway (the csms's answers say the status).
* Transport ``ts`` never goes backwards within a session; payload timestamps say what the plan says.
"""

from __future__ import annotations

import hashlib
import random
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from chargeguard.sim.profile import build_profile
from chargeguard.sim.timefmt import epoch, format_ts

Line = dict[str, Any]
Emit = tuple[float, Line]  # (transport time in epoch seconds, capture line whose "ts" is filled on output)

_MASK48 = (1 << 48) - 1
_STEP = 0x9E3779B97F4B  # odd: n -> base + n * _STEP is a bijection modulo 2**48 (ids look scattered, never repeat)

REASONS_16 = frozenset(
    {
        "EmergencyStop",
        "EVDisconnected",
        "HardReset",
        "Local",
        "Other",
        "PowerLoss",
        "Reboot",
        "Remote",
        "SoftReset",
        "UnlockCommand",
        "DeAuthorized",
    }
)
_REASON_201 = {
    "HardReset": "ImmediateReset",
    "SoftReset": "Reboot",
    "UnlockCommand": "Other",
}
REASONS_201 = frozenset(
    {
        "DeAuthorized",
        "EmergencyStop",
        "EnergyLimitReached",
        "EVDisconnected",
        "GroundFault",
        "ImmediateReset",
        "Local",
        "LocalOutOfCredit",
        "MasterPass",
        "Other",
        "OvercurrentFault",
        "PowerLoss",
        "PowerQuality",
        "Reboot",
        "Remote",
        "SOCLimitReached",
        "StoppedByEV",
        "TimeLimitReached",
        "Timeout",
    }
)
_TRIGGER_FOR_REASON = {
    "Local": "StopAuthorized",
    "EVDisconnected": "EVCommunicationLost",
    "Remote": "RemoteStop",
    "DeAuthorized": "Deauthorized",
    "ImmediateReset": "ResetCommand",
    "Reboot": "ResetCommand",
    "EnergyLimitReached": "EnergyLimitReached",
    "TimeLimitReached": "TimeLimitReached",
    "Other": "AbnormalCondition",
}
AUTH_16 = frozenset({"Accepted", "Blocked", "Expired", "Invalid", "ConcurrentTx"})
AUTH_201 = frozenset(
    {
        "Accepted",
        "Blocked",
        "ConcurrentTx",
        "Expired",
        "Invalid",
        "NoCredit",
        "NotAllowedTypeEVSE",
        "NotAtThisLocation",
        "NotAtThisTime",
        "Unknown",
    }
)


@dataclass(frozen=True, slots=True)
class SessionPlan:
    """What happened in one charging session; ``session_lines`` turns it into wire traffic."""

    station: str
    ocpp: str  # "1.6" or "2.0.1"
    connector_id: int
    evse_id: int
    token: str | None
    transaction_id: str
    start: datetime
    end: datetime
    energy_wh: float
    meter_start_wh: float
    sample_interval_s: float | None = 300.0
    auth_status: str = "Accepted"
    stop_reason: str = "Local"
    max_power_w: float | None = None  # profile shape: ramp up, plateau, taper


class MessageIds:
    """Deterministic OCPP-J message ids, unique per (station, direction) for the life of the generator.

    ``style`` "uuid" gives UUID-shaped ids, "counter" decimal counters (as many 1.6 firmwares send),
    "mixed" picks one of the two per station, deterministically. Ids depend only on the seed, the station
    and the direction.
    """

    __slots__ = ("_seed", "_state", "_style")

    def __init__(self, seed: int | str = 0, *, style: str = "uuid") -> None:
        if style not in ("uuid", "counter", "mixed"):
            raise ValueError(f"unknown message id style {style!r}")
        self._seed = str(seed)
        self._style = style
        self._state: dict[tuple[str, str], list[Any]] = {}

    def next(self, station: str, direction: str) -> str:
        """The next id this station (or the csms towards it) uses in ``direction`` ("station" or "csms")."""
        state = self._state.get((station, direction))
        if state is None:
            state = self._start(station, direction)
        state[1] += 1
        if state[2]:
            return str(state[0] + state[1])
        # A random UUID-shaped prefix per (station, direction) and a 48-bit counter: unique and cheap.
        return f"{state[3]}{(state[0] + state[1] * _STEP) & _MASK48:012x}"

    def _start(self, station: str, direction: str) -> list[Any]:
        digest = hashlib.blake2b(f"{self._seed}|{station}|{direction}".encode(), digest_size=17).digest()
        h = digest[:10].hex()
        counter_style = self._style == "counter" or (self._style == "mixed" and digest[16] < 77)
        base = int.from_bytes(digest[10:16], "big")
        state: list[Any] = [base % 900_000 if counter_style else base, 0, counter_style,
                            f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-"]  # fmt: skip
        self._state[(station, direction)] = state
        return state


def wire_transaction_id(plan: SessionPlan) -> str:
    """The transaction id as it appears on the wire: 1.6 needs an integer, 2.0.1 takes a string of <= 36."""
    if plan.ocpp == "1.6":
        text = plan.transaction_id.strip()
        if text.isdigit() and len(text) <= 9:
            return str(int(text))
        return str(zlib.crc32(text.encode()) % 2_000_000_000 + 1)
    return plan.transaction_id[:36]


def call(
    out: list[Emit],
    t: float,
    station: str,
    ocpp: str,
    action: str,
    payload: dict[str, Any],
    response: dict[str, Any] | None,
    *,
    rng: random.Random,
    ids: MessageIds,
    sender: str = "station",
) -> float:
    """Append a CALL sent at ``t`` and, unless ``response`` is None, its CALLRESULT a few ms later."""
    message_id = ids.next(station, sender)
    out.append(
        (
            t,
            {
                "ts": "",
                "station": station,
                "ocpp": ocpp,
                "from": sender,
                "frame": [2, message_id, action, payload],
            },
        )
    )
    if response is not None:
        answerer = "csms" if sender == "station" else "station"
        t_result = t + 0.005 + rng.random() * 0.075
        out.append(
            (
                t_result,
                {
                    "ts": "",
                    "station": station,
                    "ocpp": ocpp,
                    "from": answerer,
                    "frame": [3, message_id, response],
                },
            )
        )
    return t


def finish(emits: list[Emit]) -> list[Line]:
    """Sort by transport time (stable) and fill each line's ``ts``."""
    emits.sort(key=_first)
    lines = []
    for t, line in emits:
        line["ts"] = format_ts(t)
        lines.append(line)
    return lines


def _first(item: Emit) -> float:
    return item[0]


def session_lines(plan: SessionPlan, *, rng: random.Random, ids: MessageIds) -> list[Line]:
    """The capture lines of ``plan`` in ts order (see the module docstring for the shape of the traffic)."""
    return finish(list(session_emits(plan, rng=rng, ids=ids)))


def session_emits(
    plan: SessionPlan, *, rng: random.Random, ids: MessageIds, clock_offset_s: float = 0.0
) -> Iterator[Emit]:
    """Lazily, the ``(t, line)`` pairs of :func:`session_lines` in ``t`` order (lines' "ts" not yet filled).

    Payload clocks run ``clock_offset_s`` ahead of true time.
    """
    if plan.ocpp == "1.6":
        return _Session16(plan, rng, ids, clock_offset_s).run()
    return _Session201(plan, rng, ids, clock_offset_s).run()


class _SessionBase:
    """Shared timing of both versions: plug-in, authorisation, samples, stop, unplug."""

    def __init__(self, plan: SessionPlan, rng: random.Random, ids: MessageIds, clock_offset_s: float) -> None:
        self.plan = plan
        self.rng = rng
        self.ids = ids
        self.offset = clock_offset_s
        self.start = epoch(plan.start)
        self.end = epoch(plan.end)
        self.duration = self.end - self.start
        self.profile = build_profile(
            plan.energy_wh, self.duration, plan.max_power_w, acceptance=0.8 + 0.17 * rng.random()
        )
        self.meter_start = round(plan.meter_start_wh)
        self.meter_stop = round(plan.meter_start_wh + plan.energy_wh)
        self.tx = wire_transaction_id(plan)
        self.plug = self.start - 5.0 - rng.random() * 40.0
        self.authorize = self.start - 1.0 - rng.random() * 3.0
        self.unplug = max(self.end, self.start) + 3.0 + rng.random() * 240.0
        self.last_ts = self.plug
        self.refused = plan.auth_status != "Accepted" and plan.energy_wh == 0.0

    def stamp(self, t: float) -> str:
        """Payload timestamp for true time ``t`` on the station's clock."""
        return format_ts(t + self.offset)

    def send(
        self, t_payload: float, action: str, payload: dict[str, Any], response: dict[str, Any] | None
    ) -> list[Emit]:
        # Transport never runs backwards within a session, whatever the plan's payload times say, and the
        # station waits for each answer before its next CALL (one CALL in flight, as OCPP-J requires).
        t = max(t_payload + 0.02 + self.rng.random() * 0.3, self.last_ts + 0.001)
        out: list[Emit] = []
        call(out, t, self.plan.station, self.plan.ocpp, action, payload, response, rng=self.rng, ids=self.ids)
        self.last_ts = out[-1][0]
        return out

    def register_at(self, t: float) -> int:
        return round(self.plan.meter_start_wh + self.profile.energy_at(t - self.start))

    def sample_times(self) -> list[float]:
        interval = self.plan.sample_interval_s
        if not interval or interval <= 0 or self.duration <= 0:
            return []
        count = int(self.duration // interval)
        times = [self.start + k * interval for k in range(1, count + 1)]
        if times and times[-1] >= self.end:
            times.pop()
        return times

    def suspended_at(self) -> float | None:
        """When the car stopped drawing power before the session ended (a full battery), if it did."""
        active = self.profile.active_s
        if 0.0 < active < self.duration - 60.0:
            return self.start + active
        return None


class _Session16(_SessionBase):
    def status(self, t: float, status: str) -> list[Emit]:
        payload = {
            "connectorId": self.plan.connector_id,
            "errorCode": "NoError",
            "status": status,
            "timestamp": self.stamp(t),
        }
        return self.send(t, "StatusNotification", payload, {})

    def run(self) -> Iterator[Emit]:
        plan = self.plan
        id_tag = plan.token if plan.token is not None else f"NOAUTH{self.tx}"[:20]
        status = plan.auth_status if plan.auth_status in AUTH_16 else "Invalid"
        yield from self.status(self.plug, "Preparing")
        if plan.token is not None:
            yield from self.send(
                self.authorize, "Authorize", {"idTag": id_tag}, {"idTagInfo": {"status": status}}
            )
        if self.refused:
            yield from self.status(self.authorize + 20.0 + self.rng.random() * 60.0, "Available")
            return
        start_payload = {
            "connectorId": plan.connector_id,
            "idTag": id_tag,
            "meterStart": self.meter_start,
            "timestamp": self.stamp(self.start),
        }
        yield from self.send(
            self.start,
            "StartTransaction",
            start_payload,
            {"transactionId": int(self.tx), "idTagInfo": {"status": status}},
        )
        yield from self.status(self.start + 0.5 + self.rng.random(), "Charging")
        suspended = self.suspended_at()
        for t in self.sample_times():
            if suspended is not None and t >= suspended:
                yield from self.status(suspended, "SuspendedEV")
                suspended = None
            sampled = [
                {
                    "value": str(self.register_at(t)),
                    "context": "Sample.Periodic",
                    "measurand": "Energy.Active.Import.Register",
                    "location": "Outlet",
                    "unit": "Wh",
                },
                {
                    "value": f"{self.profile.power_at(t - self.start):.1f}",
                    "context": "Sample.Periodic",
                    "measurand": "Power.Active.Import",
                    "location": "Outlet",
                    "unit": "W",
                },
            ]
            payload = {
                "connectorId": plan.connector_id,
                "transactionId": int(self.tx),
                "meterValue": [{"timestamp": self.stamp(t), "sampledValue": sampled}],
            }
            yield from self.send(t, "MeterValues", payload, {})
        reason = plan.stop_reason if plan.stop_reason in REASONS_16 else "Other"
        stop_payload: dict[str, Any] = {
            "meterStop": self.meter_stop,
            "timestamp": self.stamp(self.end),
            "transactionId": int(self.tx),
            "reason": reason,
        }
        if reason == "Local":
            stop_payload["idTag"] = id_tag
        yield from self.send(self.end, "StopTransaction", stop_payload, {"idTagInfo": {"status": status}})
        yield from self.status(self.end + 0.5 + self.rng.random(), "Finishing")
        yield from self.status(self.unplug, "Available")


class _Session201(_SessionBase):
    def status(self, t: float, status: str) -> list[Emit]:
        payload = {
            "timestamp": self.stamp(t),
            "connectorStatus": status,
            "evseId": self.plan.evse_id,
            "connectorId": self.plan.connector_id,
        }
        return self.send(t, "StatusNotification", payload, {})

    def run(self) -> Iterator[Emit]:
        plan = self.plan
        status = plan.auth_status if plan.auth_status in AUTH_201 else "Invalid"
        if plan.token is None:
            id_token = {"idToken": "", "type": "NoAuthorization"}
        else:
            id_token = {"idToken": plan.token, "type": "ISO14443"}
        token_info = {"idTokenInfo": {"status": status}}
        yield from self.status(self.plug, "Occupied")
        start_at_plug = self.rng.random() < 0.5
        self.seq = 0
        if start_at_plug and not self.refused:
            yield from self.event(
                "Started", self.plug, "CablePluggedIn", "EVConnected", energy="Transaction.Begin"
            )
        if plan.token is not None:
            yield from self.send(self.authorize, "Authorize", {"idToken": id_token}, token_info)
        if self.refused:
            yield from self.status(self.authorize + 20.0 + self.rng.random() * 60.0, "Available")
            return
        if start_at_plug:
            yield from self.event(
                "Updated", self.start, "Authorized", "Charging", id_token=id_token, response=token_info
            )
        else:
            yield from self.event(
                "Started",
                self.start,
                "Authorized",
                "EVConnected",
                id_token=id_token,
                response=token_info,
                energy="Transaction.Begin",
            )
            yield from self.event(
                "Updated", self.start + 0.5 + self.rng.random(), "ChargingStateChanged", "Charging"
            )
        suspended = self.suspended_at()
        for t in self.sample_times():
            if suspended is not None and t >= suspended:
                yield from self.event("Updated", suspended, "ChargingStateChanged", "SuspendedEV")
                suspended = None
            yield from self.event(
                "Updated", t, "MeterValuePeriodic", None, energy="Sample.Periodic", power=True
            )
        reason = _REASON_201.get(plan.stop_reason, plan.stop_reason)
        reason = reason if reason in REASONS_201 else "Other"
        trigger = _TRIGGER_FOR_REASON.get(reason, "AbnormalCondition")
        state = "Idle" if reason == "EVDisconnected" else "EVConnected"
        yield from self.event(
            "Ended",
            self.end,
            trigger,
            state,
            id_token=id_token if reason == "Local" else None,
            response=token_info if reason == "Local" else None,
            energy="Transaction.End",
            stopped_reason=reason,
        )
        yield from self.status(self.unplug, "Available")

    def event(
        self,
        event_type: str,
        t: float,
        trigger: str,
        charging_state: str | None,
        *,
        id_token: dict[str, str] | None = None,
        response: dict[str, Any] | None = None,
        energy: str | None = None,
        power: bool = False,
        stopped_reason: str | None = None,
    ) -> list[Emit]:
        info: dict[str, Any] = {"transactionId": self.tx}
        if charging_state is not None:
            info["chargingState"] = charging_state
        if stopped_reason is not None:
            info["stoppedReason"] = stopped_reason
        payload: dict[str, Any] = {
            "eventType": event_type,
            "timestamp": self.stamp(t),
            "triggerReason": trigger,
            "seqNo": self.seq,
            "transactionInfo": info,
        }
        self.seq += 1
        if event_type == "Started":
            payload["evse"] = {"id": self.plan.evse_id, "connectorId": self.plan.connector_id}
        if id_token is not None:
            payload["idToken"] = id_token
        if energy is not None:
            register = self.meter_stop if event_type == "Ended" else self.register_at(t)
            sampled: list[dict[str, Any]] = [
                {
                    "value": register,
                    "context": energy,
                    "measurand": "Energy.Active.Import.Register",
                    "unitOfMeasure": {"unit": "Wh"},
                }
            ]
            if power:
                sampled.append(
                    {
                        "value": round(self.profile.power_at(t - self.start), 1),
                        "context": energy,
                        "measurand": "Power.Active.Import",
                        "unitOfMeasure": {"unit": "W"},
                    }
                )
            payload["meterValue"] = [{"timestamp": self.stamp(t), "sampledValue": sampled}]
        return self.send(t, "TransactionEvent", payload, response if response is not None else {})
