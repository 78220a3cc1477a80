"""Tuning incidents about tokens: cloned cards, impossible travel, unauthorised charging, enumeration, sharing."""

from __future__ import annotations

import math

from chargeguard.inventory import EARTH_RADIUS_KM
from chargeguard.sim.exchange import Emit
from chargeguard.sim.incidents.common import (
    emits_of,
    first_energy_line,
    inject,
    make_plan,
    register_of,
    station_call,
    token_seen_line,
)
from chargeguard.sim.injection import Injection, Scene
from chargeguard.sim.network import Driver, Station, new_token

AWAY_S = 26 * 3600.0  # after a far sighting the card rests longer than any travel detector's horizon


def _km(a: Station, b: Station) -> float:
    lat1, lon1, lat2, lon2 = map(math.radians, (a.latitude, a.longitude, b.latitude, b.longitude))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def free_driver(scene: Scene, t: float) -> Driver | None:
    """A driver whose card is not in use around ``t``."""
    return scene.driver(lambda d: d.busy_until < t - 3600)


def cloned_card(scene: Scene, t: float, *, far: bool) -> Injection | None:
    """A driver's card and its clone charge at the same time: at the same site/city, or in another region."""
    driver = free_driver(scene, t)
    if driver is None:
        return None
    home = scene.idle_station(t, t + 4 * 3600, lambda s: s.city.code == driver.city.code)
    if not home:
        return None
    rng = scene.rng
    second_at = t + rng.uniform(10, 90) * 60

    def other(s: Station) -> bool:
        return s.index != home[0].index and (
            s.city.region != home[0].city.region if far else s.city.code == home[0].city.code
        )

    away = scene.idle_station(second_at, second_at + 3 * 3600, other)
    if not away:
        return None
    first = make_plan(
        scene,
        home[0],
        scene.connector(home[0]),
        driver.token,
        t,
        rng.uniform(150, 240),
    )
    clone = make_plan(
        scene,
        away[0],
        scene.connector(away[0]),
        driver.token,
        second_at,
        rng.uniform(25, 90),
    )
    a, b = emits_of(scene, home[0], first), emits_of(scene, away[0], clone)
    where = f"{away[0].city.name}, {_km(home[0], away[0]):.0f} km away" if far else "the same city"
    rest = AWAY_S if far else 3600.0
    driver.busy_until = max(first.end.timestamp(), clone.end.timestamp()) + rest
    return inject(
        "token.concurrent_use",
        [(home[0], a), (away[0], b)],
        f"cloned card: a second transaction on the driver's card starts in {where} while the first is open",
        plans=(first, clone),
        completing=token_seen_line(b),
        also=("token.impossible_travel",) if far else (),
    )


def travel(
    scene: Scene,
    t: float,
    *,
    gap_min: tuple[float, float],
    min_km: float,
    max_km: float,
    overlap: bool = False,
) -> Injection | None:
    """One card, two sessions too far apart for the time between them.

    Without ``overlap`` the second session starts ``gap_min`` minutes after the first ended; with it, the
    second starts ``gap_min`` minutes after the first started, while the first is still charging (a clone used
    in another town: the evidence is complete at the second start, against the first session's last sample).
    """
    driver = free_driver(scene, t)
    if driver is None:
        return None
    rng = scene.rng
    first_station = scene.idle_station(t, t + 4 * 3600, lambda s: s.city.code == driver.city.code)
    if not first_station:
        return None
    if overlap:
        minutes = rng.uniform(120, 200)
        second_at = t + rng.uniform(*gap_min) * 60
    else:
        minutes = rng.uniform(20, 50)
        second_at = t + minutes * 60 + rng.uniform(*gap_min) * 60
    target = scene.idle_station(
        second_at, second_at + 2 * 3600, lambda s: min_km <= _km(first_station[0], s) <= max_km
    )
    if not target:
        scene.tainted.pop(first_station[0].index, None)
        return None
    p1 = make_plan(
        scene,
        first_station[0],
        scene.connector(first_station[0]),
        driver.token,
        t,
        minutes,
    )
    p2 = make_plan(
        scene,
        target[0],
        scene.connector(target[0]),
        driver.token,
        second_at,
        rng.uniform(20, 60),
    )
    a, b = emits_of(scene, first_station[0], p1), emits_of(scene, target[0], p2)
    km = _km(first_station[0], target[0])
    driver.busy_until = max(p1.end.timestamp(), p2.end.timestamp()) + AWAY_S
    if overlap:
        note = (
            f"card used {km:.0f} km away {(second_at - t) / 60:.0f} min after its session started, "
            "while that session is still charging"
        )
    else:
        gap_h = (second_at - p1.end.timestamp()) / 3600
        note = (
            f"card used {km:.0f} km apart {gap_h * 60:.0f} min after its previous session ended "
            f"({km / max(gap_h, 1e-3):.0f} km/h)"
        )
    return inject(
        "token.impossible_travel",
        [(first_station[0], a), (target[0], b)],
        note,
        plans=(p1, p2),
        completing=token_seen_line(b),
        also=("token.concurrent_use",) if overlap else (),
    )


def charges_despite(scene: Scene, t: float, *, status: str, skip_authorize: bool) -> Injection | None:
    """Energy flows on a card the central system rejected (Blocked/Expired/Invalid), with or without Authorize."""
    found = scene.idle_station(t, t + 3 * 3600)
    if not found:
        return None
    station = found[0]
    connector = scene.connector(station)
    rng = scene.rng
    token = new_token(rng)
    plan = make_plan(
        scene,
        station,
        connector,
        token,
        t,
        rng.uniform(30, 120),
        auth_status=status,
    )
    emits = emits_of(scene, station, plan)
    if skip_authorize:
        emits = [e for e in emits if not ("frame" in e[1] and e[1]["frame"][1] in _authorize_ids(emits))]
    how = "authorised from the local cache, " if skip_authorize else ""
    return inject(
        "token.unauthorized_charging",
        [(station, emits)],
        f"{how}card answered {status} by the central system, yet the station delivers energy",
        plans=(plan,),
        completing=first_energy_line(emits, plan.meter_start_wh),
    )


def deauthorised_mid_session(scene: Scene, t: float, *, with_id_token: bool) -> Injection | None:
    """2.0.1: the central system answers a TransactionEvent mid-session with idTokenInfo Invalid, Blocked,
    Expired or NoCredit (the card was revoked while charging), yet the station keeps charging (its
    StopTxOnInvalidId is false or it ignores the answer). ``with_id_token``: the request repeats the idToken
    (stations that send it on every event); otherwise only the answer names the verdict."""
    found = scene.idle_station(t, t + 4 * 3600, lambda s: s.ocpp != "1.6")
    if not found:
        return None
    station = found[0]
    connector = scene.connector(station)
    rng = scene.rng
    token = new_token(rng)
    minutes = rng.uniform(90, 180)
    energy = rng.uniform(0.45, 0.7) * connector.max_kw * 1000.0 * minutes / 60.0
    plan = make_plan(scene, station, connector, token, t, minutes, min(energy, 80_000.0))
    emits = emits_of(scene, station, plan)
    periodic = [
        line
        for _, line in emits
        if "frame" in line
        and line["frame"][0] == 2
        and line["frame"][2] == "TransactionEvent"
        and line["frame"][3].get("triggerReason") == "MeterValuePeriodic"
    ]
    if len(periodic) < 6:
        return None  # too short to be refused mid-session with energy still to come
    # refused while charging: at least 1 kWh must still flow after the answer (a session whose car is full
    # early idles at a flat register, and a refusal then is not charging on a refused card)
    final = max((r for _, line in emits if (r := register_of(line)) is not None), default=None)
    candidates = [
        line
        for line in periodic[1 : len(periodic) // 2]
        if (r := register_of(line)) is not None and final is not None and r + 1000.0 < final
    ]
    if not candidates:
        return None
    refused_call = candidates[rng.randrange(0, min(len(candidates), max(1, len(periodic) // 3)))]
    status = rng.choice(("Invalid", "Blocked", "Expired", "NoCredit"))
    msg_id = refused_call["frame"][1]
    if with_id_token:
        refused_call["frame"][3]["idToken"] = {"idToken": token, "type": "ISO14443"}
    for _, line in emits:
        frame = line.get("frame")
        if frame is not None and frame[0] == 3 and frame[1] == msg_id:
            frame[2] = {"idTokenInfo": {"status": status}}
    refused_at = register_of(refused_call)
    assert refused_at is not None
    after = emits[[line is refused_call for _, line in emits].index(True) :]
    return inject(
        "token.unauthorized_charging",
        [(station, emits)],
        f"card answered {status} in the middle of its transaction"
        + (" (the event repeated the idToken)" if with_id_token else "")
        + ", yet the station keeps charging",
        plans=(plan,),
        completing=first_energy_line(after, refused_at + 1000.0),
    )


def _authorize_ids(emits: list[Emit]) -> set[str]:
    return {
        line["frame"][1]
        for _, line in emits
        if "frame" in line and line["frame"][0] == 2 and line["frame"][2] == "Authorize"
    }


def offline_unknown(scene: Scene, t: float) -> Injection | None:
    """While offline, the station lets an unknown card charge (AllowOfflineTxForUnknownId); the replayed
    transaction is answered Invalid on reconnect."""
    found = scene.idle_station(t, t + 4 * 3600)
    if not found:
        return None
    station = found[0]
    rng = scene.rng
    connector = scene.connector(station)
    offline_for = rng.uniform(1.5, 3.0) * 3600
    station.offline.append((t - 60, t + offline_for))
    plan = make_plan(
        scene,
        station,
        connector,
        new_token(rng),
        t,
        rng.uniform(40, 80),
        auth_status="Invalid",
    )
    emits = emits_of(scene, station, plan)
    lines: list[Emit] = [
        (t - 60, _connection(station, "disconnect")),
        (t + offline_for, _connection(station, "connect")),
    ]
    return inject(
        "token.unauthorized_charging",
        [(station, emits), (station, lines)],
        "offline transaction of an unknown card, replayed on reconnect and answered Invalid",
        plans=(plan,),
        completing=first_energy_line(emits, plan.meter_start_wh),
    )


def _connection(station: Station, event: str) -> dict[str, object]:
    from chargeguard.sim.station_traffic import connection_line

    return connection_line(station, event)


def enumeration(
    scene: Scene, t: float, *, count: int, spread_s: float, sequential: bool, nth: int
) -> Injection | None:
    """Many distinct cards rejected at one station: a burst, or slowly; random or sequential UIDs."""
    found = scene.idle_station(t, t + spread_s + 600, quiet_s=26 * 3600.0)
    if not found:
        return None
    station = found[0]
    rng = scene.rng
    base = rng.randrange(0x04000000000000, 0x04FFFFFFFFFFFF)
    emits: list[Emit] = []
    moment = t
    for i in range(count):
        token = f"{base + i:014X}" if sequential else new_token(rng)
        payload = (
            {"idTag": token} if station.ocpp == "1.6" else {"idToken": {"idToken": token, "type": "ISO14443"}}
        )
        status = rng.choice(("Invalid", "Invalid", "Blocked")) if station.ocpp == "1.6" else "Unknown"
        key = "idTagInfo" if station.ocpp == "1.6" else "idTokenInfo"
        emits.extend(station_call(scene, station, moment, "Authorize", payload, {key: {"status": status}}))
        moment += spread_s / count * rng.uniform(0.5, 1.5)
    completing = [line for _, line in emits if line["from"] == "station"][nth - 1]
    how = "sequential" if sequential else "random"
    return inject(
        "token.enumeration",
        [(station, emits)],
        f"{count} distinct {how} card ids rejected at one station over {spread_s / 60:.0f} min",
        completing=completing,
    )


def token_sharing(scene: Scene, t: float) -> Injection | None:
    """Subtle: one card used by two households - sessions alternate between two distant home areas, never
    overlapping and never implausibly fast."""
    driver = free_driver(scene, t)
    if driver is None:
        return None
    rng = scene.rng
    here = scene.idle_station(t, t + 16 * 3600, lambda s: s.city.code == driver.city.code)
    if not here:
        return None
    there = scene.idle_station(
        t, t + 16 * 3600, lambda s: s.city.region == driver.city.region and s.city.code != driver.city.code
    )
    if not there:
        there = scene.idle_station(
            t, t + 16 * 3600, lambda s: s.index != here[0].index and 5 < _km(here[0], s) < 80
        )
    if not there:
        return None
    parts: list[tuple[Station, list[Emit]]] = []
    plans = []
    moment = t
    for i in range(4):
        station = here[0] if i % 2 == 0 else there[0]
        minutes = rng.uniform(40, 90)
        plan = make_plan(
            scene,
            station,
            scene.connector(station),
            driver.token,
            moment,
            minutes,
        )
        plans.append(plan)
        parts.append((station, emits_of(scene, station, plan)))
        moment += minutes * 60 + rng.uniform(3, 4) * 3600
    driver.busy_until = max(driver.busy_until, moment + 3600)
    return inject(
        "anomaly.token",
        parts,
        "one card shared between two households in different areas, alternating",
        plans=plans,
        subtle=True,
    )
