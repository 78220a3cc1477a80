"""Tuning incidents about central-system commands and protocol abuse: URLs, bursts, fleet pushes, local lists,
malformed traffic and floods."""

from __future__ import annotations

from typing import Any

from chargeguard.sim.exchange import Emit, Line
from chargeguard.sim.incidents.common import csms_call, inject, station_call
from chargeguard.sim.injection import Injection, Scene
from chargeguard.sim.network import Station, new_token
from chargeguard.sim.station_traffic import connection_line
from chargeguard.sim.timefmt import format_ts


def _one(scene: Scene, t: float, until: float) -> Station | None:
    found = scene.idle_station(t, until)
    return found[0] if found else None


def untrusted_url(scene: Scene, t: float, *, diagnostics: bool) -> Injection | None:
    """UpdateFirmware, GetDiagnostics or GetLog pointing at a host outside the operator's, or with credentials."""
    station = _one(scene, t, t + 1800)
    if station is None:
        return None
    rng = scene.rng
    host = rng.choice(("203.0.113.66", "files.fw-mirror.example", "update.charge-fix.example"))
    scheme = rng.choice(("http", "ftp", "https"))
    creds = "admin:Passw0rd@" if scheme == "ftp" or rng.random() < 0.3 else ""
    url = f"{scheme}://{creds}{host}/{'upload' if diagnostics else 'fw/latest.bin'}"
    if diagnostics:
        if station.ocpp == "1.6":
            emits = csms_call(
                scene, station, t, "GetDiagnostics", {"location": url}, {"fileName": "diag.zip"}
            )
        else:
            emits = csms_call(
                scene,
                station,
                t,
                "GetLog",
                {
                    "log": {"remoteLocation": url},
                    "logType": "DiagnosticsLog",
                    "requestId": rng.randrange(1, 10**6),
                },
                {"status": "Accepted", "filename": "diag.zip"},
            )
        what = "GetDiagnostics" if station.ocpp == "1.6" else "GetLog"
    else:
        if station.ocpp == "1.6":
            emits = csms_call(
                scene, station, t, "UpdateFirmware", {"location": url, "retrieveDate": format_ts(t + 60)}, {}
            )
        else:
            emits = csms_call(
                scene,
                station,
                t,
                "UpdateFirmware",
                {
                    "requestId": rng.randrange(1, 10**6),
                    "firmware": {"location": url, "retrieveDateTime": format_ts(t + 60)},
                },
                {"status": "Accepted"},
            )
        what = "UpdateFirmware"
    note = (
        f"{what} to {scheme}:// host outside the operator's{' with credentials in the URL' if creds else ''}"
    )
    return inject("command.untrusted_url", [(station, emits)], note, completing=emits[0][1])


def burst(scene: Scene, t: float, *, action: str) -> Injection | None:
    """Many remote starts (or unlocks) to one station within minutes."""
    station = _one(scene, t, t + 1800)
    if station is None:
        return None
    rng = scene.rng
    emits: list[Emit] = []
    moment = t
    c = scene.connector(station)
    for _ in range(rng.randrange(6, 14)):
        if action == "start":
            if station.ocpp == "1.6":
                name, payload = (
                    "RemoteStartTransaction",
                    {"connectorId": c.connector_id, "idTag": new_token(rng)},
                )
            else:
                name = "RequestStartTransaction"
                payload = {
                    "idToken": {"idToken": new_token(rng), "type": "ISO14443"},
                    "remoteStartId": rng.randrange(1, 10**6),
                    "evseId": c.evse_id,
                }
            response: dict[str, Any] = {"status": "Rejected"}
        else:
            name = "UnlockConnector"
            if station.ocpp == "1.6":
                payload, response = {"connectorId": c.connector_id}, {"status": "Unlocked"}
            else:
                payload, response = (
                    {"evseId": c.evse_id, "connectorId": c.connector_id},
                    {"status": "Unlocked"},
                )
        emits += csms_call(scene, station, moment, name, payload, response)
        moment += rng.uniform(5, 30)
    calls = [line for _, line in emits if line["from"] == "csms"]
    return inject(
        "command.burst",
        [(station, emits)],
        f"{len(calls)} {calls[0]['frame'][2]} to one station in minutes",
        completing=calls[4],
    )


def fleet_push(scene: Scene, t: float, *, availability: bool) -> Injection | None:
    """The same command pushed to many stations within a minute or two (a compromised or runaway CSMS)."""
    rng = scene.rng
    wanted = rng.randrange(12, 26)
    # One CSMS API call fans out to the stations of one protocol version: the same profile object for all.
    version = rng.choice(("1.6", "2.0.1"))
    same = [s for s in scene.network.stations if s.ocpp == version]
    if len(same) < 2 * wanted:
        version = max(("1.6", "2.0.1"), key=lambda v: sum(s.ocpp == v for s in scene.network.stations))
    found = scene.idle_station(t, t + 1800, lambda s: s.ocpp == version, count=wanted, at_least=10)
    if len(found) < 10:
        return None
    start_schedule = format_ts(t - t % 60)
    parts: list[tuple[Station, list[Emit]]] = []
    moment = t
    firsts: list[tuple[float, Line]] = []
    for station in found:
        if availability:
            payload: dict[str, Any] = (
                {"connectorId": 0, "type": "Inoperative"}
                if station.ocpp == "1.6"
                else {"operationalStatus": "Inoperative"}
            )
            emits = csms_call(scene, station, moment, "ChangeAvailability", payload, {"status": "Accepted"})
        else:
            profile: dict[str, Any] = {
                "id": 666,
                "stackLevel": 9,
                "chargingProfilePurpose": "TxDefaultProfile",
                "chargingProfileKind": "Absolute",
                "chargingSchedule": {
                    "chargingRateUnit": "A",
                    "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 0.0}],
                },
            }
            if station.ocpp == "1.6":
                profile["chargingProfileId"] = profile.pop("id")
                profile["chargingSchedule"]["startSchedule"] = start_schedule
                payload = {"connectorId": 0, "csChargingProfiles": profile}
            else:
                schedule = profile.pop("chargingSchedule")
                schedule["id"] = 1
                schedule["startSchedule"] = start_schedule
                profile["chargingSchedule"] = [schedule]
                payload = {"evseId": 0, "chargingProfile": profile}
            emits = csms_call(scene, station, moment, "SetChargingProfile", payload, {"status": "Accepted"})
        firsts.append(emits[0])
        parts.append((station, emits))
        moment += rng.uniform(0.5, 6)
    what = "ChangeAvailability Inoperative" if availability else "zero-limit charging profile"
    return inject(
        "command.fleet_synchronised",
        parts,
        f"{what} pushed to {len(found)} stations within minutes",
        completing=firsts[9][1],
    )


def stale_list(scene: Scene, t: float, *, elsewhere: bool) -> Injection | None:
    """A card the central system rejected is re-granted by a SendLocalList (same station, or another)."""
    found = scene.idle_station(t, t + 3 * 3600, count=2 if elsewhere else 1)
    if not found:
        return None
    rng = scene.rng
    first, target = found[0], found[-1]
    token = new_token(rng)
    status = rng.choice(("Blocked", "Expired", "Blocked"))
    if first.ocpp == "1.6":
        status = status if status in ("Blocked", "Expired") else "Invalid"
        rejected = station_call(
            scene, first, t, "Authorize", {"idTag": token}, {"idTagInfo": {"status": status}}
        )
    else:
        rejected = station_call(
            scene,
            first,
            t,
            "Authorize",
            {"idToken": {"idToken": token, "type": "ISO14443"}},
            {"idTokenInfo": {"status": status}},
        )
    at = t + rng.uniform(20, 120) * 60
    others = [d.token for d in rng.sample(scene.network.drivers, min(5, len(scene.network.drivers)))]
    entries = [*others[:2], token, *others[2:]]
    full = rng.random() < 0.5
    if target.ocpp == "1.6":
        payload: dict[str, Any] = {
            "listVersion": rng.randrange(2, 500),
            "updateType": "Full" if full else "Differential",
            "localAuthorizationList": [{"idTag": e, "idTagInfo": {"status": "Accepted"}} for e in entries],
        }
    else:
        payload = {
            "versionNumber": rng.randrange(2, 500),
            "updateType": "Full" if full else "Differential",
            "localAuthorizationList": [
                {"idToken": {"idToken": e, "type": "ISO14443"}, "idTokenInfo": {"status": "Accepted"}}
                for e in entries
            ],
        }
    pushed = csms_call(scene, target, at, "SendLocalList", payload, {"status": "Accepted"})
    parts = [(first, rejected)] if elsewhere else []
    parts.append((target, pushed if elsewhere else rejected + pushed))
    where = "another station's" if elsewhere else "the same station's"
    return inject(
        "command.stale_local_list",
        parts,
        f"card answered {status}, then put on {where} local list",
        completing=pushed[0][1],
        stations=[target.station_id] if not elsewhere else None,
    )


def malformed(scene: Scene, t: float, *, shape: str) -> Injection | None:
    """Broken OCPP-J from one station: schema violations, reused ids and orphan results, or unknown actions."""
    station = _one(scene, t, t + 1800)
    if station is None:
        return None
    rng = scene.rng
    sid, ocpp = station.station_id, station.ocpp
    emits: list[Emit] = []
    moment = t
    count = rng.randrange(3, 30)
    used = scene.ids.next(sid, "station")
    for i in range(count):
        if shape == "schema":
            payload: Any = {
                "connectorId": 1,
                "meterValue": [
                    {
                        "timestamp": format_ts(moment)[:19].replace("T", " "),
                        "sampledValue": [{"value": rng.randrange(10**6)}],
                    }
                ],
            }
            if ocpp == "2.0.1":
                payload = {"evseId": "one", "meterValue": payload["meterValue"]}
            frame: list[Any] = [2, scene.ids.next(sid, "station"), "MeterValues", payload]
        elif shape == "ids":
            frame = [2, used, "Heartbeat", {}] if i % 2 == 0 else [3, f"orphan-{rng.getrandbits(40):x}", {}]
        else:
            frame = [
                2,
                scene.ids.next(sid, "station"),
                rng.choice(
                    (
                        "GetSecrets",
                        "ReadMemory",
                        "DebugShell",
                        "../../v201/schemas/Authorize",
                        "ExecuteCommand",
                    )
                ),
                {},
            ]
        emits.append((moment, {"ts": "", "station": sid, "ocpp": ocpp, "from": "station", "frame": frame}))
        moment += rng.uniform(2, 30)
    completing = emits[1][1] if shape == "ids" else emits[0][1]
    what = {
        "schema": "schema-violating MeterValues",
        "ids": "reused message ids and orphan results",
        "actions": "unknown action names",
    }[shape]
    return inject("ocpp.malformed", [(station, emits)], f"{count} frames: {what}", completing=completing)


def flood(scene: Scene, t: float, *, shape: str) -> Injection | None:
    """A message flood, a reconnect storm or a boot loop from one station."""
    station = _one(scene, t, t + 3600)
    if station is None:
        return None
    rng = scene.rng
    emits: list[Emit] = []
    moment = t
    if shape == "messages":
        rate = rng.uniform(15, 40)  # frames per second
        for _ in range(int(rate * rng.uniform(60, 150))):
            emits += station_call(scene, station, moment, "Heartbeat", {}, {"currentTime": format_ts(moment)})
            moment += 1.0 / rate
        per_bucket, bucket_s, floor = "frames", 60.0, 600
    elif shape == "reconnects":
        for _ in range(rng.randrange(25, 60)):
            emits.append((moment, connection_line(station, "connect")))
            emits.append((moment + 2, connection_line(station, "disconnect")))
            moment += rng.uniform(5, 20)
        emits.append((moment, connection_line(station, "connect")))  # the station is back for good
        per_bucket, bucket_s, floor = "connects", 600.0, 10
    else:
        from chargeguard.sim.station_traffic import boot

        for _ in range(rng.randrange(8, 16)):
            emits.append((moment, connection_line(station, "disconnect")))
            emits += boot(station, moment + rng.uniform(5, 15), rng=rng, ids=scene.ids)
            moment = emits[-1][0] + rng.uniform(10, 50)
        per_bucket, bucket_s, floor = "boots", 600.0, 5
    counted = [(x, line) for x, line in emits if _counts(line, per_bucket)]
    completing = _crossing(counted, bucket_s, floor)
    return inject(
        "ocpp.flood",
        [(station, emits)],
        f"{len(counted)} {per_bucket} in {(moment - t) / 60:.0f} min",
        completing=completing,
        # every boot of a loop also reports StartupOfTheDevice: a burst of them is a fair security-event alert
        also=("station.security_event",) if per_bucket == "boots" else (),
    )


def _counts(line: Line, what: str) -> bool:
    if what == "connects":
        return line.get("event") == "connect"
    if what == "boots":
        return "frame" in line and line["frame"][0] == 2 and line["frame"][2] == "BootNotification"
    return line.get("from") == "station"


def _crossing(counted: list[Emit], bucket_s: float, floor: int) -> Line:
    """The line that brings its (aligned) bucket to ``floor``: where a rate rule can first see the flood."""
    buckets: dict[int, int] = {}
    for x, line in counted:
        b = int(x // bucket_s)
        buckets[b] = buckets.get(b, 0) + 1
        if buckets[b] == floor:
            return line
    return counted[-1][1]
