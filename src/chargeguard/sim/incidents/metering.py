"""Tuning incidents about meters and sessions: capacity, rollbacks, inconsistency, overlap, phantoms, drift."""

from __future__ import annotations

from typing import Any

from chargeguard.sim.exchange import Emit, Line
from chargeguard.sim.incidents.common import (
    csms_call,
    emits_of,
    first_energy_line,
    first_line,
    inject,
    make_plan,
    register_of,
    without_action,
)
from chargeguard.sim.injection import Injection, Scene
from chargeguard.sim.network import Station, new_token

ENERGY = "Energy.Active.Import.Register"
POWER = "Power.Active.Import"


def _samples(line: Line) -> list[dict[str, Any]]:
    frame = line.get("frame")
    if frame is None or frame[0] != 2:
        return []
    return [sv for mv in frame[3].get("meterValue", ()) for sv in mv["sampledValue"]]


def _set(sv: dict[str, Any], value: float, ocpp: str) -> None:
    sv["value"] = (
        str(round(value))
        if ocpp == "1.6" and sv.get("measurand") == ENERGY
        else (f"{value:.1f}" if ocpp == "1.6" else round(value, 1))
    )


def _stop_line(emits: list[Emit]) -> Line:
    return first_line(
        emits,
        lambda ln: (
            "frame" in ln
            and ln["frame"][0] == 2
            and (
                ln["frame"][2] == "StopTransaction"
                or (ln["frame"][2] == "TransactionEvent" and ln["frame"][3]["eventType"] == "Ended")
            )
        ),
    )


def _set_stop(line: Line, value: float) -> None:
    payload = line["frame"][3]
    if "meterStop" in payload:
        payload["meterStop"] = round(value)
    for sv in _samples(line):
        if sv.get("measurand") == ENERGY:
            sv["value"] = round(value)


def _station(
    scene: Scene, t: float, until: float, kind: str | None = None, max_kw: float | None = None
) -> Station | None:
    def accept(s: Station) -> bool:
        return any(
            (kind is None or c.kind == kind) and (max_kw is None or c.max_kw <= max_kw) for c in s.connectors
        )

    found = scene.idle_station(t, until, accept)
    return found[0] if found else None


def beyond_rating(scene: Scene, t: float) -> Injection | None:
    """An AC connector reports energy at two to four times what it can deliver."""
    station = _station(scene, t, t + 3 * 3600, "AC")
    if station is None:
        return None
    rng = scene.rng
    connector = scene.connector(station, "AC")
    minutes = rng.uniform(45, 120)
    energy = connector.max_kw * 1000 * minutes / 60 * rng.uniform(2.0, 4.0)
    plan = make_plan(
        scene,
        station,
        connector,
        new_token(rng),
        t,
        minutes,
        energy,
    )
    emits = emits_of(scene, station, plan)
    return inject(
        "meter.exceeds_capacity",
        [(station, emits)],
        f"{connector.kind} {connector.max_kw:g} kW connector reports {energy / 1000:.1f} kWh "
        f"in {minutes:.0f} min",
        plans=(plan,),
        completing=first_energy_line(emits, plan.meter_start_wh),
        also=("meter.inconsistent",),
    )


def power_spike(scene: Scene, t: float) -> Injection | None:
    """A DC session whose power samples jump to several times the connector's rating for a while."""
    station = _station(scene, t, t + 3 * 3600, "DC")
    if station is None:
        return None
    rng = scene.rng
    connector = scene.connector(station, "DC")
    minutes = rng.uniform(30, 60)
    plan = make_plan(
        scene, station, connector, new_token(rng), t, minutes, connector.max_kw * 1000 * minutes / 60 * 0.5
    )
    emits = emits_of(scene, station, plan)
    samples = [ln for _, ln in emits if any(sv.get("measurand") == POWER for sv in _samples(ln))]
    if len(samples) < 3:
        return None
    spike = samples[len(samples) // 3]
    for sv in _samples(spike):
        if sv.get("measurand") == POWER:
            _set(sv, connector.max_kw * 1000 * rng.uniform(2.5, 4.0), station.ocpp)
    return inject(
        "meter.exceeds_capacity",
        [(station, emits)],
        f"power sample far above the {connector.max_kw:g} kW rating of the connector",
        plans=(plan,),
        completing=spike,
    )


def stop_only(scene: Scene, t: float) -> Injection | None:
    """Start and stop only, no samples: a meterStop implying far more energy than the connector could give."""
    station = _station(scene, t, t + 3 * 3600, "AC")
    if station is None:
        return None
    rng = scene.rng
    connector = scene.connector(station, "AC")
    minutes = rng.uniform(10, 25)
    energy = connector.max_kw * 1000 * minutes / 60 * rng.uniform(3, 6)
    plan = make_plan(scene, station, connector, new_token(rng), t, minutes, energy, sample_interval_s=None)
    emits = emits_of(scene, station, plan)
    return inject(
        "meter.exceeds_capacity",
        [(station, emits)],
        f"no meter samples; meterStop implies {energy / 1000:.1f} kWh in {minutes:.0f} min",
        plans=(plan,),
        completing=_stop_line(emits),
        also=("session.phantom",),
    )


def rollback_between(scene: Scene, t: float, *, to_zero: bool) -> Injection | None:
    """The next transaction on a connector starts below where the previous one stopped (or near zero)."""
    station = _station(scene, t, t + 6 * 3600)
    if station is None:
        return None
    rng = scene.rng
    connector = scene.connector(station)
    first = make_plan(scene, station, connector, new_token(rng), t, rng.uniform(30, 90))
    drop = connector.register_wh - rng.uniform(0, 80) if to_zero else rng.uniform(2_000, 40_000)
    connector.register_wh = max(0.0, connector.register_wh - drop)
    second_at = first.end.timestamp() + rng.uniform(20, 120) * 60
    second = make_plan(scene, station, connector, new_token(rng), second_at, rng.uniform(30, 90))
    a, b = emits_of(scene, station, first), emits_of(scene, station, second)
    stop = first.meter_start_wh + first.energy_wh
    completing = first_line(b, lambda ln: (register_of(ln) or stop + 1) < stop - 10)
    what = "restarts near zero" if to_zero else f"drops by {drop / 1000:.1f} kWh"
    return inject(
        "meter.rollback",
        [(station, a + b)],
        f"connector register {what} between two transactions",
        plans=(first, second),
        completing=completing,
    )


def slow_rollback(scene: Scene, t: float) -> Injection | None:
    """Within one transaction the register creeps backwards a few tens of Wh per sample."""
    station = _station(scene, t, t + 5 * 3600)
    if station is None:
        return None
    rng = scene.rng
    connector = scene.connector(station)
    minutes = rng.uniform(120, 200)
    plan = make_plan(scene, station, connector, new_token(rng), t, minutes)
    emits = emits_of(scene, station, plan)
    samples = [
        ln
        for _, ln in emits
        if ln["frame"][0] == 2
        and any(sv.get("measurand") == ENERGY for sv in _samples(ln))
        and ln["frame"][2] != "StopTransaction"
        and not (ln["frame"][2] == "TransactionEvent" and ln["frame"][3]["eventType"] in ("Started", "Ended"))
    ]
    if len(samples) < 6:
        return None
    half = len(samples) // 2
    peak = register_of(samples[half - 1]) or plan.meter_start_wh
    step = rng.uniform(20, 60)
    value = peak
    for line in samples[half:]:
        value -= step
        for sv in _samples(line):
            if sv.get("measurand") == ENERGY:
                _set(sv, value, station.ocpp)
    _set_stop(_stop_line(emits), value - step)
    connector.register_wh = value - step
    return inject(
        "meter.rollback",
        [(station, emits)],
        f"register runs backwards {step:.0f} Wh per sample in the second half of the transaction",
        plans=(plan,),
        completing=samples[half],
    )


def stop_below_samples(scene: Scene, t: float) -> Injection | None:
    """The register at the stop (1.6 meterStop, 2.0.1 Ended reading) is below the last sample of the same
    transaction, yet above its start: the meter was set back while the car charged, hiding part of the energy
    from the bill. Its next transaction carries on from the lowered register."""
    station = _station(scene, t, t + 4 * 3600)
    if station is None:
        return None
    rng = scene.rng
    connector = scene.connector(station)
    minutes = rng.uniform(60, 150)
    energy = min(70_000.0, rng.uniform(0.4, 0.7) * connector.max_kw * 1000 * minutes / 60)
    plan = make_plan(scene, station, connector, new_token(rng), t, minutes, energy)
    emits = emits_of(scene, station, plan)
    stop = _stop_line(emits)
    readings = [v for _, ln in emits if ln is not stop and (v := register_of(ln)) is not None]
    if len(readings) < 4:
        return None
    peak = max(readings)
    cut = min(rng.uniform(500, 5_000), 0.5 * (peak - plan.meter_start_wh))
    if cut < 200:
        return None
    _set_stop(stop, peak - cut)
    connector.register_wh = peak - cut
    return inject(
        "meter.rollback",
        [(station, emits)],
        f"register at the stop {cut / 1000:.1f} kWh below the transaction's last sample",
        plans=(plan,),
        completing=stop,
        also=("meter.inconsistent",),
    )


def inflated_stop(
    scene: Scene, t: float, *, ratio: tuple[float, float], interval_s: float
) -> Injection | None:
    """The transaction's stop reports more energy than its own samples showed (billing inflated)."""
    station = _station(scene, t, t + 4 * 3600)
    if station is None:
        return None
    rng = scene.rng
    connector = scene.connector(station)
    plan = make_plan(
        scene,
        station,
        connector,
        new_token(rng),
        t,
        rng.uniform(40, 120),
        sample_interval_s=interval_s,
    )
    emits = emits_of(scene, station, plan)
    stop = _stop_line(emits)
    factor = rng.uniform(*ratio)
    billed = plan.meter_start_wh + plan.energy_wh * factor
    _set_stop(stop, billed)
    connector.register_wh = billed
    return inject(
        "meter.inconsistent",
        [(station, emits)],
        f"stop reports {factor:.2f}x the energy its sampled register showed",
        plans=(plan,),
        completing=stop,
        also=("meter.exceeds_capacity",),
    )


def overlap(scene: Scene, t: float, *, remote: bool) -> Injection | None:
    """A second transaction opens on a connector whose transaction is still running (ghost, or remote start)."""
    station = _station(scene, t, t + 4 * 3600)
    if station is None:
        return None
    rng = scene.rng
    connector = scene.connector(station)
    minutes = rng.uniform(90, 180)
    first = make_plan(scene, station, connector, new_token(rng), t, minutes, advance=False)
    second_at = t + rng.uniform(0.2, 0.5) * minutes * 60
    ghost_token = new_token(rng)
    second = make_plan(
        scene,
        station,
        connector,
        ghost_token,
        second_at,
        rng.uniform(10, 30),
        0.0,
        advance=False,
        meter_start_wh=first.meter_start_wh + first.energy_wh * 0.3,
    )
    connector.register_wh = first.meter_start_wh + first.energy_wh
    a, b = emits_of(scene, station, first), emits_of(scene, station, second)
    b = without_action(b, "StatusNotification")
    if remote:
        key = "idTag" if station.ocpp == "1.6" else "idToken"
        value: Any = ghost_token if station.ocpp == "1.6" else {"idToken": ghost_token, "type": "ISO14443"}
        action = "RemoteStartTransaction" if station.ocpp == "1.6" else "RequestStartTransaction"
        payload = (
            {"connectorId": connector.connector_id, key: value}
            if station.ocpp == "1.6"
            else {"idToken": value, "remoteStartId": rng.randrange(1, 10**6), "evseId": connector.evse_id}
        )
        b = csms_call(scene, station, second_at - 30, action, payload, {"status": "Accepted"}) + b
    completing = first_line(
        b,
        lambda ln: (
            "frame" in ln
            and ln["frame"][0] == 2
            and ln["frame"][2] in ("StartTransaction", "TransactionEvent")
        ),
    )
    how = "after a remote start " if remote else ""
    return inject(
        "session.overlap",
        [(station, a + b)],
        f"a second transaction opens {how}on connector {connector.wire_id(station.ocpp)} while one runs",
        plans=(first, second),
        completing=completing,
        also=("meter.rollback",),
    )


def phantom_claiming_charging(scene: Scene, t: float) -> Injection | None:
    """2.0.1: a fabricated transaction of plausible length and energy whose TransactionEvents say Charging, but
    no cable was plugged (no Occupied status) and the meter sent nothing while it ran."""
    found = scene.idle_station(t, t + 4 * 3600, lambda s: s.ocpp != "1.6")
    if not found:
        return None
    station = found[0]
    rng = scene.rng
    connector = scene.connector(station)
    minutes = rng.uniform(40, 120)
    energy = min(60_000.0, rng.uniform(0.3, 0.6) * connector.max_kw * 1000 * minutes / 60)
    plan = make_plan(scene, station, connector, new_token(rng), t, minutes, energy, sample_interval_s=None)
    emits = without_action(emits_of(scene, station, plan), "StatusNotification")
    return inject(
        "session.phantom",
        [(station, emits)],
        f"{energy / 1000:.1f} kWh billed over {minutes:.0f} min; the transaction says Charging, yet no plug-in "
        "and no meter sample while it ran",
        plans=(plan,),
        completing=_stop_line(emits),
    )


def phantom(scene: Scene, t: float, *, unavailable: bool) -> Injection | None:
    """Energy billed without charging: no plug-in, no samples; the connector says Available or Unavailable."""
    station = _station(scene, t, t + 3 * 3600)
    if station is None:
        return None
    rng = scene.rng
    connector = scene.connector(station)
    minutes = rng.uniform(60, 150) if unavailable else rng.uniform(2, 8)
    energy = (
        min(60_000.0, rng.uniform(0.2, 0.5) * connector.max_kw * 1000 * minutes / 60)
        if unavailable
        else rng.uniform(8_000, 20_000)
    )
    plan = make_plan(scene, station, connector, new_token(rng), t, minutes, energy, sample_interval_s=None)
    emits = without_action(emits_of(scene, station, plan), "StatusNotification")
    if unavailable:
        status = (
            {
                "connectorId": connector.connector_id,
                "errorCode": "NoError",
                "status": "Unavailable",
                "timestamp": "",
            }
            if station.ocpp == "1.6"
            else {
                "timestamp": "",
                "connectorStatus": "Unavailable",
                "evseId": connector.evse_id,
                "connectorId": connector.connector_id,
            }
        )
        from chargeguard.sim.incidents.common import station_call
        from chargeguard.sim.timefmt import format_ts

        status["timestamp"] = format_ts(t - 600)
        emits = station_call(scene, station, t - 600, "StatusNotification", status, {}) + emits
    stop = _stop_line(emits)
    also = () if unavailable else ("meter.exceeds_capacity",)
    where = "on a connector reported Unavailable" if unavailable else f"in {minutes:.0f} min with no plug-in"
    return inject(
        "session.phantom",
        [(station, emits)],
        f"{energy / 1000:.1f} kWh billed {where}, no meter samples",
        plans=(plan,),
        completing=stop,
        also=also,
    )


def drift(scene: Scene, t: float) -> Injection | None:
    """Subtle: a meter that over-counts a little more each session; power samples stay true."""
    station = _station(scene, t, t + 20 * 3600)
    if station is None:
        return None
    rng = scene.rng
    connector = scene.connector(station)
    parts: list[tuple[Station, list[Emit]]] = []
    plans = []
    moment = t
    for i in range(5):
        factor = 1.02 + 0.015 * i
        minutes = rng.uniform(60, 150)
        true_wh = rng.uniform(0.3, 0.6) * connector.max_kw * 1000 * minutes / 60
        plan = make_plan(scene, station, connector, new_token(rng), moment, minutes, true_wh * factor)
        emits = emits_of(scene, station, plan)
        for _, line in emits:
            for sv in _samples(line):
                if sv.get("measurand") == POWER:
                    _set(sv, float(sv["value"]) / factor, station.ocpp)
        plans.append(plan)
        parts.append((station, emits))
        moment = plan.end.timestamp() + rng.uniform(0.5, 2.5) * 3600
    return inject(
        "anomaly.station",
        parts,
        "meter over-counts 2% rising to 8% over five sessions (power samples true)",
        plans=plans,
        subtle=True,
    )


def odd_energy(scene: Scene, t: float) -> Injection | None:
    """Subtle: an AC post starts reporting DC-like sessions - large energies at its full rating, back to back."""
    station = _station(scene, t, t + 20 * 3600, "AC")
    if station is None:
        return None
    rng = scene.rng
    connector = scene.connector(station, "AC")
    parts: list[tuple[Station, list[Emit]]] = []
    plans = []
    moment = t
    for _ in range(4):
        minutes = rng.uniform(150, 240)
        plan = make_plan(
            scene,
            station,
            connector,
            new_token(rng),
            moment,
            minutes,
            connector.max_kw * 1000 * minutes / 60 * rng.uniform(0.78, 0.86),
        )
        plans.append(plan)
        parts.append((station, emits_of(scene, station, plan)))
        moment = plan.end.timestamp() + rng.uniform(10, 40) * 60
    return inject(
        "anomaly.session",
        parts,
        f"AC {connector.max_kw:g} kW post reports back-to-back sessions at its full rating",
        plans=plans,
        subtle=True,
        also=("anomaly.station",),
    )
