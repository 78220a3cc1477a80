"""Helpers of the tuning incident set: sessions with chosen energies, finding the lines that complete evidence."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from chargeguard.sim.exchange import Emit, Line, SessionPlan, call, session_emits, wire_transaction_id
from chargeguard.sim.injection import Injection, Scene, Truth
from chargeguard.sim.network import Connector, Station
from chargeguard.sim.timefmt import from_epoch

ENERGY_ACTIONS = ("MeterValues", "TransactionEvent", "StopTransaction")


def make_plan(
    scene: Scene,
    station: Station,
    connector: Connector,
    token: str | None,
    start: float,
    minutes: float,
    energy_wh: float | None = None,
    *,
    advance: bool = True,
    **overrides: Any,
) -> SessionPlan:
    """A plan on ``connector`` from its current register; ``advance`` moves the register to the plan's end.

    Without ``energy_wh`` the energy is a plausible one for the connector and duration (25-65 % of its rating,
    at most 80 kWh), so that only what the incident is about is abnormal.
    """
    if energy_wh is None:
        energy_wh = min(80_000.0, scene.rng.uniform(0.25, 0.65) * connector.max_kw * 1000.0 * minutes / 60.0)
    values: dict[str, Any] = {
        "station": station.station_id,
        "ocpp": station.ocpp,
        "connector_id": connector.connector_id,
        "evse_id": connector.evse_id,
        "token": token,
        "transaction_id": scene.sessions.new_transaction_id(station),
        "start": from_epoch(start),
        "end": from_epoch(start + minutes * 60.0),
        "energy_wh": float(round(energy_wh)),
        "meter_start_wh": connector.register_wh,
        "sample_interval_s": scene.sessions.sample_interval_s,
        "max_power_w": connector.max_kw * 1000.0,
    }
    values.update(overrides)
    plan = SessionPlan(**values)
    if advance:
        connector.register_wh = plan.meter_start_wh + plan.energy_wh
    return plan


def emits_of(scene: Scene, station: Station, plan: SessionPlan) -> list[Emit]:
    start = plan.start.timestamp()
    return list(session_emits(plan, rng=scene.rng, ids=scene.ids, clock_offset_s=station.clock_at(start)))


def without_action(emits: list[Emit], action: str) -> list[Emit]:
    """``emits`` minus the CALLs of ``action`` and their results."""
    dropped = {line["frame"][1] for _, line in emits
               if "frame" in line and line["frame"][0] == 2 and line["frame"][2] == action}  # fmt: skip
    return [e for e in emits if "frame" not in e[1] or e[1]["frame"][1] not in dropped]


def calls(emits: Iterable[Emit], action: str) -> list[Line]:
    return [
        line for _, line in emits if "frame" in line and line["frame"][0] == 2 and line["frame"][2] == action
    ]


def token_bound_line(emits: list[Emit]) -> Line:
    """The line that ties the token to the transaction: StartTransaction, or the TransactionEvent with idToken."""
    for _, line in emits:
        frame = line.get("frame")
        if frame is None or frame[0] != 2:
            continue
        if frame[2] == "StartTransaction" or (frame[2] == "TransactionEvent" and "idToken" in frame[3]):
            return line
    return emits[-1][1]


def token_seen_line(emits: list[Emit]) -> Line:
    """The first station CALL that shows the card: Authorize when the station asks, else the transaction."""
    for _, line in emits:
        frame = line.get("frame")
        if frame is not None and frame[0] == 2 and frame[2] == "Authorize":
            return line
    return token_bound_line(emits)


def register_of(line: Line) -> float | None:
    """The energy register a station CALL reports (Wh), if any."""
    frame = line.get("frame")
    if frame is None or frame[0] != 2:
        return None
    payload = frame[3]
    if frame[2] == "StopTransaction":
        return float(payload["meterStop"])
    if frame[2] == "StartTransaction":
        return float(payload["meterStart"])
    for mv in payload.get("meterValue", ()):
        for sv in mv["sampledValue"]:
            if sv.get("measurand", "Energy.Active.Import.Register") == "Energy.Active.Import.Register":
                return float(sv["value"])
    return None


def first_line(emits: list[Emit], test: Callable[[Line], bool]) -> Line:
    for _, line in emits:
        if test(line):
            return line
    return emits[-1][1]


def first_energy_line(emits: list[Emit], meter_start: float) -> Line:
    """The first CALL whose register shows energy delivered beyond ``meter_start``."""

    def delivered(line: Line) -> bool:
        value = register_of(line)
        return value is not None and value > meter_start

    return first_line(emits, delivered)


def last_call(emits: list[Emit], action: str) -> Line:
    found = calls(emits, action)
    return found[-1] if found else emits[-1][1]


def csms_call(
    scene: Scene,
    station: Station,
    t: float,
    action: str,
    payload: dict[str, Any],
    response: dict[str, Any] | None,
) -> list[Emit]:
    out: list[Emit] = []
    call(
        out,
        t,
        station.station_id,
        station.ocpp,
        action,
        payload,
        response,
        rng=scene.rng,
        ids=scene.ids,
        sender="csms",
    )
    return out


def station_call(
    scene: Scene,
    station: Station,
    t: float,
    action: str,
    payload: dict[str, Any],
    response: dict[str, Any] | None,
) -> list[Emit]:
    out: list[Emit] = []
    call(out, t, station.station_id, station.ocpp, action, payload, response, rng=scene.rng, ids=scene.ids)
    return out


def inject(
    kind: str,
    parts: list[tuple[Station, list[Emit]]],
    note: str,
    *,
    plans: Iterable[SessionPlan] = (),
    completing: Line | None = None,
    also: tuple[str, ...] = (),
    subtle: bool = False,
    stations: list[str] | None = None,
) -> Injection:
    """The injection of ``parts`` (each station's emits, sorted here) with its truth record."""
    times = [t for _, emits in parts for t, _ in emits]
    names = stations if stations is not None else list(dict.fromkeys(st.station_id for st, _ in parts))
    truth = Truth(
        kind=kind,
        stations=names,
        transactions=[wire_transaction_id(p) for p in plans],
        start=min(times),
        end=max(times),
        note=note,
        also_acceptable=also,
        subtle=subtle,
    )
    streams: list[tuple[Station | None, Iterator[Emit]]] = [
        (st, iter(sorted(emits, key=_t))) for st, emits in parts
    ]
    return Injection(truth=truth, streams=streams, completing=completing)


def _t(item: Emit) -> float:
    return item[0]
