"""Holdout incidents about cards, meters and sessions (different shapes and timings from the tuning set)."""

from __future__ import annotations

import math

from chargeguard.sim.incidents_holdout.kit import (
    Story,
    ending,
    energy_samples,
    periodic,
    power_samples,
    station_calls,
    status_payload,
    uid,
)
from chargeguard.sim.injection import Injection, Scene
from chargeguard.sim.network import Station


def _dist(a: Station, b: Station) -> float:
    dlat = math.radians(b.latitude - a.latitude)
    dlon = math.radians(b.longitude - a.longitude) * math.cos(math.radians((a.latitude + b.latitude) / 2))
    return 6371.0 * math.hypot(dlat, dlon)


def _pick(scene: Scene, t: float, hours: float, **kw: object) -> Station | None:
    found = scene.idle_station(t, t + hours * 3600, **kw)  # type: ignore[arg-type]
    return found[0] if found else None


def overnight_clone(scene: Scene, t: float) -> Injection | None:
    """A long overnight AC session; hours into it the same card starts charging in a neighbouring town."""
    driver = scene.driver(lambda d: d.busy_until < t - 7200)
    if driver is None:
        return None
    home = _pick(
        scene,
        t,
        10,
        accept=lambda s: s.city.code == driver.city.code and any(c.kind == "AC" for c in s.connectors),
    )
    if home is None:
        return None
    rng = scene.rng
    later = t + rng.uniform(3, 6) * 3600
    near = _pick(scene, later, 2, accept=lambda s: s.index != home.index and 15 < _dist(home, s) < 120)
    if near is None:
        return None
    story = Story(scene)
    ac = next(c for c in home.connectors if c.kind == "AC")
    first, _ = story.charge(home, ac, driver.token, t, rng.uniform(8, 10) * 60)
    second, emits = story.charge(near, scene.connector(near), driver.token, later, rng.uniform(20, 45))
    story.key = (
        station_calls(emits, "Authorize")
        or station_calls(emits, "StartTransaction")
        or station_calls(emits, "TransactionEvent")
    )[0]
    driver.busy_until = max(first.end.timestamp(), second.end.timestamp()) + 26 * 3600
    return story.done(
        "token.concurrent_use",
        f"card charging overnight at home also starts {_dist(home, near):.0f} km away hours later",
        also=("token.impossible_travel",),
    )


def authorize_hops(scene: Scene, t: float) -> Injection | None:
    """Only Authorize requests: the card is presented in one country, then ninety minutes later in another."""
    driver = scene.driver(lambda d: d.busy_until < t - 7200)
    if driver is None:
        return None
    a = _pick(scene, t, 1, accept=lambda s: s.city.code == driver.city.code)
    if a is None:
        return None
    rng = scene.rng
    later = t + rng.uniform(60, 120) * 60
    b = _pick(scene, later, 1, accept=lambda s: s.city.country != a.city.country)
    if b is None:
        return None
    story = Story(scene)
    for station, moment in ((a, t), (b, later)):
        if station.ocpp == "1.6":
            line = story.to_csms(
                station, moment, "Authorize", {"idTag": driver.token}, {"idTagInfo": {"status": "Accepted"}}
            )
        else:
            line = story.to_csms(
                station,
                moment,
                "Authorize",
                {"idToken": {"idToken": driver.token, "type": "ISO14443"}},
                {"idTokenInfo": {"status": "Accepted"}},
            )
    story.key = line
    driver.busy_until = later + 26 * 3600
    return story.done(
        "token.impossible_travel",
        f"card presented {_dist(a, b):.0f} km apart {(later - t) / 60:.0f} min apart, no charging",
    )


def deauthorised_keeps_charging(scene: Scene, t: float) -> Injection | None:
    """2.0.1: the csms answers a mid-session TransactionEvent with Invalid; the station keeps delivering energy.
    1.6 stations: the StartTransaction answer is ConcurrentTx-free Invalid after an accepted Authorize."""
    station = _pick(scene, t, 4)
    if station is None:
        return None
    rng = scene.rng
    story = Story(scene)
    connector = scene.connector(station)
    _, emits = story.charge(station, connector, uid(rng, "hex4"), t, rng.uniform(80, 150))
    samples = periodic(emits)
    if len(samples) < 6:
        return None
    cut = samples[2]
    key = "idTagInfo" if station.ocpp == "1.6" else "idTokenInfo"
    results = {ln["frame"][1]: ln for _, ln in emits if ln["frame"][0] == 3}
    if station.ocpp == "1.6":
        start = station_calls(emits, "StartTransaction")[0]
        results[start["frame"][1]]["frame"][2][key] = {"status": "Invalid"}
        story.key = samples[0]
    else:
        results[cut["frame"][1]]["frame"][2] = {key: {"status": "Invalid"}}
        story.key = samples[3]
    return story.done(
        "token.unauthorized_charging", "energy keeps flowing after the central system answered Invalid"
    )


def decimal_sweep(scene: Scene, t: float, *, count: int, hours: float) -> Injection | None:
    """Decimal card numbers tried in steps on alternating connectors (a reader brute-forced through the plug)."""
    station = _pick(scene, t, hours + 1, quiet_s=27 * 3600.0)
    if station is None:
        return None
    rng = scene.rng
    story = Story(scene)
    base = rng.randrange(10**9, 9 * 10**9)
    step = rng.choice((1, 7, 13))
    moment = t
    calls = []
    for i in range(count):
        token = str(base + i * step)
        if station.ocpp == "1.6":
            calls.append(
                story.to_csms(
                    station, moment, "Authorize", {"idTag": token}, {"idTagInfo": {"status": "Invalid"}}
                )
            )
        else:
            calls.append(
                story.to_csms(
                    station,
                    moment,
                    "Authorize",
                    {"idToken": {"idToken": token, "type": "Central"}},
                    {"idTokenInfo": {"status": rng.choice(("Unknown", "Invalid"))}},
                )
            )
        moment += rng.expovariate(count / (hours * 3600))
    story.key = calls[9] if hours <= 1 else calls[min(29, count - 1)]
    return story.done(
        "token.enumeration", f"{count} decimal card numbers in steps of {step} over {hours:g} h"
    )


def sustained_dc_overpower(scene: Scene, t: float) -> Injection | None:
    """A 50 kW DC connector reports 2-3x its rating, consistently in power and energy, for 20 minutes."""
    station = _pick(
        scene, t, 2, accept=lambda s: any(c.kind == "DC" and c.max_kw <= 60 for c in s.connectors)
    )
    if station is None:
        return None
    rng = scene.rng
    connector = next(c for c in station.connectors if c.kind == "DC" and c.max_kw <= 60)
    story = Story(scene)
    minutes = rng.uniform(18, 25)
    _, emits = story.charge(
        station,
        connector,
        uid(rng),
        t,
        minutes,
        interval=60.0,
        wh=connector.max_kw * 1000 * minutes / 60 * rng.uniform(2.0, 3.0) * 0.8,
    )
    story.key = periodic(emits)[0] if periodic(emits) else ending(emits)
    return story.done(
        "meter.exceeds_capacity", f"DC {connector.max_kw:g} kW connector sustains 2-3x its rating"
    )


def kwh_units_overstated(scene: Scene, t: float) -> Injection | None:
    """2.0.1 station reporting the register in kWh (unitOfMeasure kWh) at values implying triple the AC rating."""
    station = _pick(
        scene, t, 3, accept=lambda s: s.ocpp == "2.0.1" and any(c.kind == "AC" for c in s.connectors)
    )
    if station is None:
        return None
    rng = scene.rng
    connector = next(c for c in station.connectors if c.kind == "AC")
    story = Story(scene)
    minutes = rng.uniform(60, 100)
    _, emits = story.charge(
        station,
        connector,
        uid(rng),
        t,
        minutes,
        wh=connector.max_kw * 1000 * minutes / 60 * rng.uniform(2.6, 3.4),
    )
    for _, ln in emits:
        if ln.get("from") == "station" and ln["frame"][0] == 2 and ln["frame"][2] == "TransactionEvent":
            for sv in energy_samples(ln):
                sv["value"] = round(sv["value"] / 1000.0, 3)
                sv["unitOfMeasure"] = {"unit": "kWh"}
            for sv in power_samples(ln):
                sv["value"] = round(sv["value"] / 1000.0, 2)
                sv["unitOfMeasure"] = {"unit": "kW"}
    story.key = periodic(emits)[0] if periodic(emits) else ending(emits)
    return story.done(
        "meter.exceeds_capacity",
        "register in kWh implying about three times the AC rating",
        also=("meter.inconsistent",),
    )


def jump_back(scene: Scene, t: float) -> Injection | None:
    """Mid-session, the register jumps back once by 1-3 kWh and counts on from there."""
    station = _pick(scene, t, 4)
    if station is None:
        return None
    rng = scene.rng
    story = Story(scene)
    connector = scene.connector(station)
    _, emits = story.charge(station, connector, uid(rng), t, rng.uniform(90, 150))
    samples = periodic(emits)
    if len(samples) < 5:
        return None
    drop = rng.uniform(1000, 3000)
    at = len(samples) // 2
    for ln in samples[at:]:
        for sv in energy_samples(ln):
            sv["value"] = (
                str(round(float(sv["value"]) - drop))
                if isinstance(sv["value"], str)
                else round(sv["value"] - drop)
            )
    end = ending(emits)
    for sv in energy_samples(end):
        sv["value"] = round(sv["value"] - drop)
    if "meterStop" in end["frame"][3]:
        end["frame"][3]["meterStop"] = round(end["frame"][3]["meterStop"] - drop)
    connector.register_wh -= drop
    story.key = samples[at]
    return story.done("meter.rollback", f"register jumps back {drop / 1000:.1f} kWh once, mid-session")


def ended_below_last(scene: Scene, t: float) -> Injection | None:
    """The final register (stop) is a few hundred Wh below the last periodic sample."""
    station = _pick(scene, t, 3)
    if station is None:
        return None
    rng = scene.rng
    story = Story(scene)
    connector = scene.connector(station)
    _, emits = story.charge(station, connector, uid(rng), t, rng.uniform(45, 90))
    end = ending(emits)
    lower = rng.uniform(300, 900)
    for sv in energy_samples(end):
        sv["value"] = round(sv["value"] - lower)
    if "meterStop" in end["frame"][3]:
        end["frame"][3]["meterStop"] = round(end["frame"][3]["meterStop"] - lower)
    connector.register_wh -= lower
    story.key = end
    return story.done(
        "meter.rollback", f"stop register {lower:.0f} Wh below the last sample", also=("meter.inconsistent",)
    )


def start_understated(scene: Scene, t: float) -> Injection | None:
    """The transaction's start register is reported lower than the meter really stood: more energy billed."""
    station = _pick(scene, t, 3)
    if station is None:
        return None
    rng = scene.rng
    story = Story(scene)
    connector = scene.connector(station)
    _, emits = story.charge(station, connector, uid(rng), t, rng.uniform(60, 120), interval=120.0)
    under = rng.uniform(3000, 9000)
    first = emits_start = next(
        ln
        for _, ln in emits
        if ln.get("from") == "station"
        and ln["frame"][0] == 2
        and (
            ln["frame"][2] == "StartTransaction"
            or (ln["frame"][2] == "TransactionEvent" and ln["frame"][3]["eventType"] == "Started")
        )
    )
    if "meterStart" in first["frame"][3]:
        first["frame"][3]["meterStart"] = round(first["frame"][3]["meterStart"] - under)
    for sv in energy_samples(emits_start):
        sv["value"] = round(sv["value"] - under)
    story.key = periodic(emits)[0] if periodic(emits) else ending(emits)
    return story.done(
        "meter.inconsistent",
        f"start register {under / 1000:.1f} kWh below the meter",
        also=("meter.exceeds_capacity", "meter.rollback"),
    )


def same_evse_twice(scene: Scene, t: float) -> Injection | None:
    """A second transaction starts on an EVSE/connector whose first transaction has not ended (tokens differ)."""
    station = _pick(scene, t, 4)
    if station is None:
        return None
    rng = scene.rng
    story = Story(scene)
    connector = scene.connector(station)
    register = connector.register_wh
    first, _ = story.charge(station, connector, uid(rng), t, rng.uniform(100, 160))
    connector.register_wh = register
    _, b = story.charge(
        station,
        connector,
        uid(rng, "emaid"),
        t + rng.uniform(25, 60) * 60,
        rng.uniform(15, 30),
        wh=0.0,
        meter_start=register + first.energy_wh / 3,
    )
    connector.register_wh = register + first.energy_wh
    story.key = next(
        ln
        for _, ln in b
        if ln.get("from") == "station"
        and ln["frame"][0] == 2
        and ln["frame"][2] in ("StartTransaction", "TransactionEvent")
    )
    return story.done("session.overlap", "second transaction on a busy connector", also=("meter.rollback",))


def seconds_long_billing(scene: Scene, t: float) -> Injection | None:
    """A start and a stop seconds apart billing kilowatt-hours, with no status change and no samples."""
    station = _pick(scene, t, 1)
    if station is None:
        return None
    rng = scene.rng
    story = Story(scene)
    connector = scene.connector(station)
    _, emits = story.charge(
        station, connector, uid(rng), t, rng.uniform(0.3, 0.7), interval=None, wh=rng.uniform(2000, 6000)
    )
    drop = {
        ln["frame"][1] for _, ln in emits if ln["frame"][0] == 2 and ln["frame"][2] == "StatusNotification"
    }
    story.parts[station.index] = (
        station,
        [e for e in story.parts[station.index][1] if e[1]["frame"][1] not in drop],
    )
    story.key = ending(emits)
    return story.done(
        "session.phantom",
        "kWh billed by a transaction seconds long, without plug-in or samples",
        also=("meter.exceeds_capacity",),
    )


def billed_while_available(scene: Scene, t: float) -> Injection | None:
    """The connector keeps reporting Available while a sample-less transaction bills energy over an hour."""
    station = _pick(scene, t, 3)
    if station is None:
        return None
    rng = scene.rng
    story = Story(scene)
    connector = scene.connector(station)
    minutes = rng.uniform(50, 90)
    _, emits = story.charge(station, connector, uid(rng), t, minutes, interval=None)
    drop = {
        ln["frame"][1] for _, ln in emits if ln["frame"][0] == 2 and ln["frame"][2] == "StatusNotification"
    }
    kept = [e for e in story.parts[station.index][1] if e[1]["frame"][1] not in drop]
    story.parts[station.index] = (station, kept)
    for k in range(3):
        moment = t + (k + 0.5) * minutes * 60 / 3
        story.to_csms(
            station, moment, "StatusNotification", status_payload(station, connector, "Available", moment), {}
        )
    story.key = ending(emits)
    return story.done("session.phantom", "energy billed while the connector reported Available throughout")


def area_sharing(scene: Scene, t: float) -> Injection | None:
    """Subtle: one card, two users - weekday commuter sessions and evening sessions across town, all plausible."""
    driver = scene.driver(lambda d: d.busy_until < t - 7200)
    if driver is None:
        return None
    a = _pick(scene, t, 14, accept=lambda s: s.city.code == driver.city.code)
    if a is None:
        return None
    b = _pick(scene, t, 14, accept=lambda s: s.city.code == driver.city.code and s.index != a.index)
    if b is None:
        return None
    rng = scene.rng
    story = Story(scene)
    moment = t
    for i in range(5):
        station = a if i % 2 == 0 else b
        plan, _ = story.charge(station, scene.connector(station), driver.token, moment, rng.uniform(30, 70))
        moment = plan.end.timestamp() + rng.uniform(1.5, 3) * 3600
    driver.busy_until = moment + 3600
    return story.done(
        "anomaly.token", "card used by two people on alternating schedules in one town", subtle=True
    )


def creeping_meter(scene: Scene, t: float) -> Injection | None:
    """Subtle: 2.0.1-or-1.6 meter whose energy runs 1-6 % ahead of what its power samples integrate to."""
    station = _pick(scene, t, 18)
    if station is None:
        return None
    rng = scene.rng
    story = Story(scene)
    connector = scene.connector(station)
    moment = t
    for k in range(4):
        minutes = rng.uniform(50, 120)
        ratio = 1.01 + 0.017 * k
        wh = connector.max_kw * 1000 * minutes / 60 * rng.uniform(0.3, 0.55)
        plan, emits = story.charge(station, connector, uid(rng), moment, minutes, wh=wh * ratio)
        for ln in periodic(emits):
            for sv in power_samples(ln):
                value = float(sv["value"]) / ratio
                sv["value"] = f"{value:.1f}" if isinstance(sv["value"], str) else round(value, 1)
        moment = plan.end.timestamp() + rng.uniform(1, 3) * 3600
    return story.done(
        "anomaly.station", "register creeps ahead of integrated power, 1 % rising to 6 %", subtle=True
    )


def dc_like_on_ac(scene: Scene, t: float) -> Injection | None:
    """Subtle: an AC connector whose sessions suddenly all run at the edge of its rating for hours."""
    station = _pick(scene, t, 16, accept=lambda s: any(c.kind == "AC" for c in s.connectors))
    if station is None:
        return None
    rng = scene.rng
    story = Story(scene)
    connector = next(c for c in station.connectors if c.kind == "AC")
    moment = t
    for _ in range(3):
        minutes = rng.uniform(200, 280)
        plan, _ = story.charge(
            station,
            connector,
            uid(rng, "hex4"),
            moment,
            minutes,
            wh=connector.max_kw * 1000 * minutes / 60 * rng.uniform(0.8, 0.86),
        )
        moment = plan.end.timestamp() + rng.uniform(5, 20) * 60
    return story.done(
        "anomaly.session",
        "AC connector running at the edge of its rating session after session",
        subtle=True,
        also=("anomaly.station",),
    )
