"""The traffic of one charging session per protocol version (1.6J and 2.0.1), as lazily generated frames."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

from chargeguard.sim.profile import build_profile
from chargeguard.sim.timefmt import epoch, format_ts
from chargeguard.sim.wire import (
    AUTH_16,
    AUTH_201,
    REASON_TO_201,
    REASONS_16,
    REASONS_201,
    TRIGGER_FOR_REASON,
    Emit,
    MessageIds,
    SessionPlan,
    wire_transaction_id,
)


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
        # (inlined sim.wire.call: the same lines and the same draws from rng and ids, in the same order)
        rng, plan = self.rng, self.plan
        t = max(t_payload + 0.02 + rng.random() * 0.3, self.last_ts + 0.001)
        station, ocpp = plan.station, plan.ocpp
        message_id = self.ids.next(station, "station")
        request: Emit = (
            t,
            {"ts": "", "station": station, "ocpp": ocpp, "from": "station",
             "frame": [2, message_id, action, payload]},
        )  # fmt: skip
        if response is None:
            self.last_ts = t
            return [request]
        t_result = t + 0.005 + rng.random() * 0.075
        self.last_ts = t_result
        result = {
            "ts": "",
            "station": station,
            "ocpp": ocpp,
            "from": "csms",
            "frame": [3, message_id, response],
        }
        return [request, (t_result, result)]

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


class Session16(_SessionBase):
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


class Session201(_SessionBase):
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
        reason = REASON_TO_201.get(plan.stop_reason, plan.stop_reason)
        reason = reason if reason in REASONS_201 else "Other"
        trigger = TRIGGER_FOR_REASON.get(reason, "AbnormalCondition")
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
