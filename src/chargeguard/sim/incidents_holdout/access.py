"""Holdout incidents about station access, identity, posture, protocol and central-system commands."""

from __future__ import annotations

import re
from typing import Any

from chargeguard.sim.incidents_holdout.kit import Story, came, gone, status_payload, uid
from chargeguard.sim.injection import Injection, Scene
from chargeguard.sim.network import Station
from chargeguard.sim.station_traffic import boot
from chargeguard.sim.timefmt import format_ts


def _pick(scene: Scene, t: float, hours: float, version: str | None = None) -> Station | None:
    found = scene.idle_station(t, t + hours * 3600, None if version is None else lambda s: s.ocpp == version)
    return found[0] if found else None


def _addr(scene: Scene, cgnat: bool = False) -> str:
    r = scene.rng
    if cgnat:
        return (
            f"100.{r.randrange(64, 128)}.{r.randrange(256)}.{r.randrange(1, 255)}:{r.randrange(1024, 65535)}"
        )
    host = f"{r.choice((5, 37, 89, 176))}.{r.randrange(256)}.{r.randrange(256)}.{r.randrange(1, 255)}"
    return f"{host}:{r.randrange(1024, 65535)}"


def slow_guessing(scene: Scene, t: float, *, sources: int) -> Injection | None:
    """Refused upgrades for one identity, spread over minutes, from one or several source addresses."""
    station = _pick(scene, t, 1)
    if station is None:
        return None
    rng = scene.rng
    story = Story(scene)
    hosts = [_addr(scene) for _ in range(sources)]
    moment = t
    lines = []
    for i in range(rng.randrange(7, 13)):
        lines.append(
            story.line(
                station,
                moment,
                {
                    "ts": "",
                    "station": station.station_id,
                    "event": "auth_failed",
                    "remote": hosts[i % sources],
                    "detail": {"http_status": 401},
                },
            )
        )
        moment += rng.uniform(40, 75)
    story.key = lines[4]
    return story.done(
        "station.auth_failure",
        f"{len(lines)} refused upgrades over {(moment - t) / 60:.0f} min from {sources} address(es)",
    )


def cellular_twin(scene: Scene, t: float) -> Injection | None:
    """While the station is live on its fixed line, its identity also connects from a mobile (CGNAT) address."""
    station = _pick(scene, t, 2)
    if station is None:
        return None
    rng = scene.rng
    story = Story(scene)
    c = station.connectors[0]
    story.to_csms(station, t, "StatusNotification", status_payload(station, c, "Available", t), {})
    at = t + rng.uniform(20, 90)
    story.key = story.line(station, at, came(station, _addr(scene, cgnat=True), station.security_profile))
    for k in range(3):
        moment = at + 30 + k * 200
        story.to_csms(
            station, moment, "StatusNotification", status_payload(station, c, "Available", moment), {}
        )
    story.line(station, at + 900, gone(station))
    return story.done(
        "station.duplicate_connection", "identity connected twice: fixed line and a mobile address"
    )


def flapping(scene: Scene, t: float) -> Injection | None:
    """Two parties keep displacing each other over forty minutes: the address flips back three times."""
    station = _pick(scene, t, 2)
    if station is None:
        return None
    rng = scene.rng
    story = Story(scene)
    own = f"{station.remote}:{rng.randrange(1024, 65535)}"
    other = _addr(scene)
    moment = t
    connects = []
    for i in range(7):
        story.line(station, moment, gone(station))
        moment += rng.uniform(0.5, 3)
        connects.append(
            story.line(station, moment, came(station, other if i % 2 == 0 else own, station.security_profile))
        )
        moment += rng.uniform(240, 480)
    story.key = connects[3]
    return story.done(
        "station.duplicate_connection", "connections alternate between the station and another address"
    )


def swapped_board(scene: Scene, t: float, *, serial_only: bool) -> Injection | None:
    """The identity boots with a different serial (same vendor and model), or a different model of the vendor."""
    station = _pick(scene, t, 2)
    if station is None:
        return None
    rng = scene.rng
    story = Story(scene)
    story.line(station, t, gone(station))
    keep = (station.serial, station.hardware)
    from dataclasses import replace

    station.serial = f"{station.serial[:3]}{rng.randrange(10**8):08d}"
    if not serial_only:
        station.hardware = replace(station.hardware, model=f"{station.hardware.model[:14]}-X")
    emits = story.add(
        station, boot(station, t + rng.uniform(60, 240), rng=rng, ids=scene.ids, reason="Unknown")
    )
    story.key = next(ln for _, ln in emits if "frame" in ln)
    station.serial, station.hardware = keep
    later = emits[-1][0] + rng.uniform(1200, 2400)
    story.line(station, later, gone(station))
    story.add(station, boot(station, later + 30, rng=rng, ids=scene.ids))
    what = "serial" if serial_only else "model and serial"
    return story.done(
        "station.identity_change", f"identity booted with another {what}, later the original again"
    )


def _bumped(version: str, step: int) -> str:
    """``version`` with its second number raised by ``step``, in the vendor's own format (prefixes, build tags)."""
    parts = re.split(r"(\d+)", version)
    numbers = [i for i, part in enumerate(parts) if part.isdigit()]
    where = numbers[1] if len(numbers) > 1 else numbers[0]
    parts[where] = str(int(parts[where]) + step)
    return "".join(parts)


def downgrade_in_format(scene: Scene, t: float) -> Injection | None:
    """An upgrade to a release whose minor number has two digits, then a boot of an older one (single digit
    minor, in the same vendor format): a lexicographic compare would call it newer."""
    station = _pick(scene, t, 3)
    if station is None:
        return None
    rng = scene.rng
    current = station.firmware
    high, low = _bumped(current, rng.randrange(10, 14)), _bumped(current, rng.randrange(1, 4))
    story = Story(scene)
    for version, at in ((high, t), (low, t + rng.uniform(1, 2) * 3600)):
        story.line(station, at, gone(station))
        station.firmware_pinned = version
        emits = story.add(station, boot(station, at + rng.uniform(30, 120), rng=rng, ids=scene.ids))
        station.offline.append((at + 0.5, emits[0][0]))
    story.key = next(ln for _, ln in emits if "frame" in ln)
    return story.done("station.firmware_downgrade", f"runs {high}, later boots {low}")


def posture(scene: Scene, t: float, *, which: str) -> Injection | None:
    """Security posture lowered: 2.0.1 AuthCtrlr variables, 1.6 LocalAuthorizeOffline, or a lower network profile."""
    station = _pick(scene, t, 1, "2.0.1" if which in ("auth201", "netprofile") else "1.6")
    if station is None:
        return None
    rng = scene.rng
    story = Story(scene)
    if which == "auth201":
        component, variable, value = rng.choice(
            (
                ("AuthCtrlr", "LocalPreAuthorize", "true"),
                ("AuthCtrlr", "AuthorizeRemoteStart", "false"),
                ("AuthCtrlr", "DisableRemoteAuthorization", "true"),
            )
        )
        data = [{"attributeValue": value, "component": {"name": component}, "variable": {"name": variable}}]
        result = [
            {"attributeStatus": "Accepted", "component": {"name": component}, "variable": {"name": variable}}
        ]
        story.key = story.from_csms(
            station, t, "SetVariables", {"setVariableData": data}, {"setVariableResult": result}
        )
        note = f"{component}.{variable} set to {value}"
    elif which == "offline16":
        story.key = story.from_csms(
            station,
            t,
            "ChangeConfiguration",
            {"key": "LocalAuthorizeOffline", "value": "true"},
            {"status": "Accepted"},
        )
        note = "LocalAuthorizeOffline set to true"
    else:
        url = f"wss://csms.operator.example/ocpp/{station.station_id}"
        payload = {
            "configurationSlot": 1,
            "connectionData": {
                "ocppVersion": "OCPP20",
                "ocppTransport": "JSON",
                "ocppCsmsUrl": url,
                "messageTimeout": 60,
                "securityProfile": max(0, station.security_profile - 2),
                "ocppInterface": "Wireless0",
            },
        }
        story.key = story.from_csms(station, t, "SetNetworkProfile", payload, {"status": "Accepted"})
        note = "SetNetworkProfile keeps the URL but lowers the security profile"
    return story.done("station.security_downgrade", note)


def tamper_at_night(scene: Scene, t: float) -> Injection | None:
    """Serious security events in 2.0.1 or 1.6 naming, sometimes two in a row."""
    station = _pick(scene, t, 1)
    if station is None:
        return None
    rng = scene.rng
    story = Story(scene)
    names = [
        "AttemptedReplayAttacks",
        "InvalidTLSVersion",
        "TamperDetectionActivated",
        "InvalidFirmwareSigningCertificate",
    ]
    first = rng.choice(names)
    story.key = story.to_csms(
        station, t, "SecurityEventNotification", {"type": first, "timestamp": format_ts(t)}, {}
    )
    if rng.random() < 0.5:
        story.to_csms(
            station,
            t + 40,
            "SecurityEventNotification",
            {"type": rng.choice(names), "timestamp": format_ts(t + 40), "techInfo": "door sensor"},
            {},
        )
    return story.done("station.security_event", f"{first} reported")


def wrong_clock(scene: Scene, t: float, *, offset_s: float, note: str) -> Injection | None:
    """Hours of status and session traffic stamped ``offset_s`` off true time."""
    station = _pick(scene, t, 5)
    if station is None:
        return None
    rng = scene.rng
    story = Story(scene)
    station.clock_shifts.append((t - 1, t + 4 * 3600, offset_s))
    c = scene.connector(station)
    lines = []
    for k in range(4):
        moment = t + k * 600
        lines.append(
            story.to_csms(
                station,
                moment,
                "StatusNotification",
                status_payload(station, c, "Available", moment + offset_s),
                {},
            )
        )
    story.charge(station, c, uid(rng), t + 2700, rng.uniform(40, 90))
    story.key = lines[2]
    return story.done("station.clock_skew", note)


def odd_frames(scene: Scene, t: float, *, shape: str) -> Injection | None:
    """Zone-less timestamps, an unknown message type, or csms results for ids never sent."""
    station = _pick(scene, t, 1)
    if station is None:
        return None
    rng = scene.rng
    story = Story(scene)
    sid, ocpp = station.station_id, station.ocpp
    c = station.connectors[0]
    moment = t
    lines = []
    for _ in range(rng.randrange(4, 12)):
        if shape == "zoneless":
            payload = status_payload(station, c, "Available", moment)
            payload["timestamp"] = payload["timestamp"].rstrip("Z")
            lines.append(story.to_csms(station, moment, "StatusNotification", payload, {}))
        elif shape == "msgtype":
            lines.append(
                story.line(
                    station,
                    moment,
                    {
                        "ts": "",
                        "station": sid,
                        "ocpp": ocpp,
                        "from": "station",
                        "frame": [7, scene.ids.next(sid, "station"), "Heartbeat", {}],
                    },
                )
            )
        else:
            lines.append(
                story.line(
                    station,
                    moment,
                    {
                        "ts": "",
                        "station": sid,
                        "ocpp": ocpp,
                        "from": "csms",
                        "frame": [3, f"{rng.getrandbits(64):016x}", {"status": "Accepted"}],
                    },
                )
            )
        moment += rng.uniform(20, 120)
    story.key = lines[0]
    return story.done(
        "ocpp.malformed",
        {
            "zoneless": "timestamps without a zone",
            "msgtype": "unknown message type 7",
            "orphans": "csms results for ids never sent",
        }[shape],
    )


def storm(scene: Scene, t: float, *, shape: str) -> Injection | None:
    """A StatusNotification storm, a reconnect every 30 s for an hour, or the csms hammering one station."""
    station = _pick(scene, t, 2)
    if station is None:
        return None
    rng = scene.rng
    story = Story(scene)
    c = station.connectors[0]
    counted = []
    moment = t
    if shape == "status":
        for k in range(int(rng.uniform(1500, 2500))):
            status = "Available" if k % 2 else "Unavailable"
            counted.append(
                story.to_csms(
                    station, moment, "StatusNotification", status_payload(station, c, status, moment), {}
                )
            )
            moment += rng.uniform(0.03, 0.07)
        floor, bucket = 600, 60.0
    elif shape == "reconnect":
        for _ in range(120):
            counted.append(
                story.line(
                    station,
                    moment,
                    came(station, f"{station.remote}:{rng.randrange(1024, 65535)}", station.security_profile),
                )
            )
            story.line(station, moment + 20, gone(station))
            moment += 30
        floor, bucket = 10, 600.0
    else:
        key = "GetConfiguration" if station.ocpp == "1.6" else "GetVariables"
        for _ in range(int(rng.uniform(2000, 3000))):
            req: dict[str, Any] = (
                {}
                if station.ocpp == "1.6"
                else {
                    "getVariableData": [
                        {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}
                    ]
                }
            )
            res: dict[str, Any] = (
                {"configurationKey": []}
                if station.ocpp == "1.6"
                else {
                    "getVariableResult": [
                        {
                            "attributeStatus": "Accepted",
                            "attributeValue": "300",
                            "component": {"name": "OCPPCommCtrlr"},
                            "variable": {"name": "HeartbeatInterval"},
                        }
                    ]
                }
            )
            counted.append(story.from_csms(station, moment, key, req, res))
            moment += rng.uniform(0.02, 0.06)
        floor, bucket = 600, 60.0
    per: dict[int, int] = {}
    times = {id(ln): x for _, emits in story.parts.values() for x, ln in emits}
    for ln in counted:
        b = int(times[id(ln)] // bucket)
        per[b] = per.get(b, 0) + 1
        if per[b] == floor:
            story.key = ln
            break
    return story.done("ocpp.flood", f"{len(counted)} {shape} events in {(moment - t) / 60:.0f} min")


def url_commands(scene: Scene, t: float, *, shape: str) -> Injection | None:
    """Firmware from an IP literal over http (1.6 SignedUpdateFirmware-free path), or GetLog with userinfo."""
    station = _pick(scene, t, 1, "2.0.1" if shape == "getlog" else None)
    if station is None:
        return None
    rng = scene.rng
    story = Story(scene)
    ip = f"{rng.randrange(11, 223)}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
    if shape == "getlog":
        url = f"https://diag:{uid(rng, 'hex4')}@{ip}/logs/"
        story.key = story.from_csms(
            station,
            t,
            "GetLog",
            {"log": {"remoteLocation": url}, "logType": "SecurityLog", "requestId": rng.randrange(1, 9999)},
            {"status": "Accepted"},
        )
        note = "GetLog uploading the security log to an IP literal with credentials"
    elif station.ocpp == "1.6":
        story.key = story.from_csms(
            station,
            t,
            "UpdateFirmware",
            {"location": f"http://{ip}:8080/fw.bin", "retrieveDate": format_ts(t), "retries": 3},
            {},
        )
        note = "UpdateFirmware from an http IP literal"
    else:
        story.key = story.from_csms(
            station,
            t,
            "UpdateFirmware",
            {
                "requestId": rng.randrange(1, 9999),
                "firmware": {"location": f"http://{ip}:8080/fw.bin", "retrieveDateTime": format_ts(t)},
            },
            {"status": "Accepted"},
        )
        note = "UpdateFirmware from an http IP literal"
    return story.done("command.untrusted_url", note)


def command_flurry(scene: Scene, t: float, *, action: str) -> Injection | None:
    """Reset or ChangeAvailability sent to one station again and again within minutes."""
    station = _pick(scene, t, 1)
    if station is None:
        return None
    rng = scene.rng
    story = Story(scene)
    moment = t
    sent = []
    for k in range(rng.randrange(6, 10)):
        if action == "Reset":
            req: dict[str, Any] = {"type": "Hard"} if station.ocpp == "1.6" else {"type": "Immediate"}
            res: dict[str, Any] = {"status": "Rejected"}
        else:
            kind = "Inoperative" if k % 2 == 0 else "Operative"
            req = {"connectorId": 0, "type": kind} if station.ocpp == "1.6" else {"operationalStatus": kind}
            res = {"status": "Accepted"}
        sent.append(story.from_csms(station, moment, action, req, res))
        moment += rng.uniform(10, 40)
    story.key = sent[4]
    return story.done("command.burst", f"{len(sent)} {action} to one station within minutes")


def fleet_command(scene: Scene, t: float, *, action: str) -> Injection | None:
    """The same Reset or configuration change sent to a dozen or more stations within ninety seconds."""
    rng = scene.rng
    version = "1.6" if action == "ChangeConfiguration" else rng.choice(("1.6", "2.0.1"))
    found = scene.idle_station(
        t, t + 3600, lambda s: s.ocpp == version, count=rng.randrange(12, 20), at_least=10
    )
    if not found:
        return None
    story = Story(scene)
    moment = t
    sent = []
    for station in found:
        if action == "Reset":
            req: dict[str, Any] = {"type": "Hard"} if version == "1.6" else {"type": "Immediate"}
        else:
            req = {"key": "MeterValuesSampledData", "value": ""}
        sent.append(story.from_csms(station, moment, action, req, {"status": "Accepted"}))
        moment += rng.uniform(1, 7)
    story.key = sent[9]
    return story.done(
        "command.fleet_synchronised", f"{action} pushed to {len(found)} stations in {moment - t:.0f} s"
    )


def relisted(scene: Scene, t: float, *, big: bool) -> Injection | None:
    """Cards refused (Blocked) when presented, later granted by a SendLocalList (full or differential)."""
    station = _pick(scene, t, 4)
    if station is None:
        return None
    rng = scene.rng
    story = Story(scene)
    bad = [uid(rng) for _ in range(2 if big else 1)]
    moment = t
    for token in bad:
        story.charge(
            station,
            scene.connector(station),
            token,
            moment,
            rng.uniform(10, 20),
            auth_status="Blocked",
            wh=0.0,
        )
        moment += 1800
    good = [
        d.token for d in rng.sample(scene.network.drivers, min(len(scene.network.drivers), 40 if big else 3))
    ]
    entries = good[: len(good) // 2] + bad + good[len(good) // 2 :]
    at = moment + rng.uniform(600, 3600)
    if station.ocpp == "1.6":
        payload: dict[str, Any] = {
            "listVersion": rng.randrange(10, 90),
            "updateType": "Full" if big else "Differential",
            "localAuthorizationList": [{"idTag": e, "idTagInfo": {"status": "Accepted"}} for e in entries],
        }
    else:
        payload = {
            "versionNumber": rng.randrange(10, 90),
            "updateType": "Full" if big else "Differential",
            "localAuthorizationList": [
                {"idToken": {"idToken": e, "type": "ISO14443"}, "idTokenInfo": {"status": "Accepted"}}
                for e in entries
            ],
        }
    story.key = story.from_csms(station, at, "SendLocalList", payload, {"status": "Accepted"})
    story.transactions.clear()
    return story.done(
        "command.stale_local_list", f"{len(bad)} rejected card(s) granted in a {len(entries)}-entry list"
    )
