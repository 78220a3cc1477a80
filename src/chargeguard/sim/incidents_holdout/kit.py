"""Holdout-set building blocks, written apart from the tuning set's helpers (nothing imported from it)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from chargeguard.sim.exchange import Emit, Line, SessionPlan, call, session_emits, wire_transaction_id
from chargeguard.sim.injection import Injection, Scene, Truth
from chargeguard.sim.network import Connector, Station
from chargeguard.sim.timefmt import format_ts, from_epoch


def uid(rng: random.Random, style: str = "hex7") -> str:
    """Card ids in the shapes the field uses: 7-byte hex, 4-byte hex, 10-digit decimal, or an eMAID-like id."""
    if style == "dec10":
        return f"{rng.randrange(10**9, 10**10)}"
    if style == "emaid":
        return (
            f"NO{''.join(rng.choice('ABCDEFGHJKLMNPRSTUVWXYZ') for _ in range(3))}C{rng.randrange(10**8):08d}"
        )
    if style == "hex4":
        return f"{rng.getrandbits(32):08X}"
    return f"04{rng.getrandbits(48):012X}"


@dataclass(slots=True)
class Story:
    """Collects one incident's lines per station and what it touched."""

    scene: Scene
    parts: dict[int, tuple[Station, list[Emit]]] = field(default_factory=dict)
    transactions: list[str] = field(default_factory=list)
    key: Line | None = None

    def add(self, station: Station, emits: list[Emit]) -> list[Emit]:
        self.parts.setdefault(station.index, (station, []))[1].extend(emits)
        return emits

    def line(self, station: Station, t: float, line: Line) -> Line:
        self.add(station, [(t, line)])
        return line

    def to_csms(
        self, station: Station, t: float, action: str, req: dict[str, Any], res: dict[str, Any] | None
    ) -> Line:
        out: list[Emit] = []
        call(
            out, t, station.station_id, station.ocpp, action, req, res, rng=self.scene.rng, ids=self.scene.ids
        )
        self.add(station, out)
        return out[0][1]

    def from_csms(
        self, station: Station, t: float, action: str, req: dict[str, Any], res: dict[str, Any] | None
    ) -> Line:
        out: list[Emit] = []
        call(
            out,
            t,
            station.station_id,
            station.ocpp,
            action,
            req,
            res,
            rng=self.scene.rng,
            ids=self.scene.ids,
            sender="csms",
        )
        self.add(station, out)
        return out[0][1]

    def charge(
        self, station: Station, connector: Connector, token: str | None, t: float, minutes: float, **kw: Any
    ) -> tuple[SessionPlan, list[Emit]]:
        """A session on ``connector`` (energy: ``kw['wh']`` or a modest share of the rating)."""
        rng = self.scene.rng
        wh = kw.pop("wh", None)
        if wh is None:
            wh = min(70_000.0, connector.max_kw * 1000.0 * minutes / 60.0 * rng.uniform(0.3, 0.6))
        start = kw.pop("meter_start", connector.register_wh)
        plan = SessionPlan(
            station=station.station_id,
            ocpp=station.ocpp,
            connector_id=connector.connector_id,
            evse_id=connector.evse_id,
            token=token,
            transaction_id=self.scene.sessions.new_transaction_id(station),
            start=from_epoch(t),
            end=from_epoch(t + minutes * 60.0),
            energy_wh=float(round(wh)),
            meter_start_wh=start,
            sample_interval_s=kw.pop("interval", self.scene.sessions.sample_interval_s),
            max_power_w=connector.max_kw * 1000.0,
            **kw,
        )
        if kw.get("auth_status", "Accepted") == "Accepted" or plan.energy_wh:
            connector.register_wh = max(connector.register_wh, start + plan.energy_wh)
        emits = list(session_emits(plan, rng=rng, ids=self.scene.ids, clock_offset_s=station.clock_at(t)))
        self.transactions.append(wire_transaction_id(plan))
        self.add(station, emits)
        return plan, emits

    def done(self, kind: str, note: str, *, also: tuple[str, ...] = (), subtle: bool = False) -> Injection:
        times = [t for _, emits in self.parts.values() for t, _ in emits]
        streams: list[tuple[Station | None, Iterator[Emit]]] = [
            (st, iter(sorted(emits, key=lambda e: e[0]))) for st, emits in self.parts.values()
        ]
        truth = Truth(
            kind=kind,
            stations=[st.station_id for st, _ in self.parts.values()],
            transactions=list(dict.fromkeys(self.transactions)),
            start=min(times),
            end=max(times),
            note=note,
            also_acceptable=also,
            subtle=subtle,
        )
        return Injection(truth=truth, streams=streams, completing=self.key)


def station_calls(emits: list[Emit], action: str) -> list[Line]:
    return [
        ln
        for _, ln in emits
        if ln.get("from") == "station" and ln["frame"][0] == 2 and ln["frame"][2] == action
    ]


def energy_samples(line: Line) -> list[dict[str, Any]]:
    payload = line["frame"][3]
    return [
        sv
        for mv in payload.get("meterValue", ())
        for sv in mv["sampledValue"]
        if sv.get("measurand") == "Energy.Active.Import.Register"
    ]


def power_samples(line: Line) -> list[dict[str, Any]]:
    payload = line["frame"][3]
    return [
        sv
        for mv in payload.get("meterValue", ())
        for sv in mv["sampledValue"]
        if sv.get("measurand") == "Power.Active.Import"
    ]


def periodic(emits: list[Emit]) -> list[Line]:
    """The periodic meter-value CALLs of a session (1.6 MeterValues, 2.0.1 TransactionEvent Updated with samples)."""
    out = []
    for _, ln in emits:
        if ln.get("from") != "station" or ln["frame"][0] != 2:
            continue
        action, p = ln["frame"][2], ln["frame"][3]
        if action == "MeterValues" or (
            action == "TransactionEvent" and p["eventType"] == "Updated" and p.get("meterValue")
        ):
            out.append(ln)
    return out


def ending(emits: list[Emit]) -> Line:
    for _, ln in emits:
        if (
            ln.get("from") == "station"
            and ln["frame"][0] == 2
            and (
                ln["frame"][2] == "StopTransaction"
                or (ln["frame"][2] == "TransactionEvent" and ln["frame"][3]["eventType"] == "Ended")
            )
        ):
            return ln
    raise LookupError("session without an end")


def status_payload(station: Station, connector: Connector, status: str, t: float) -> dict[str, Any]:
    if station.ocpp == "1.6":
        return {
            "connectorId": connector.connector_id,
            "errorCode": "NoError",
            "status": status,
            "timestamp": format_ts(t),
        }
    return {
        "timestamp": format_ts(t),
        "connectorStatus": status,
        "evseId": connector.evse_id,
        "connectorId": connector.connector_id,
    }


def gone(station: Station) -> Line:
    return {"ts": "", "station": station.station_id, "event": "disconnect", "detail": {}}


def came(station: Station, remote: str, profile: int) -> Line:
    return {
        "ts": "",
        "station": station.station_id,
        "event": "connect",
        "remote": remote,
        "security_profile": profile,
        "detail": {},
    }
