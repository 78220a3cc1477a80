"""Tuning incidents about stations: auth failures, duplicate connections, identity, firmware, posture, clocks."""

from __future__ import annotations

from typing import Any

from chargeguard.sim.exchange import Emit, Line
from chargeguard.sim.incidents.common import csms_call, emits_of, inject, make_plan, station_call
from chargeguard.sim.injection import Injection, Scene
from chargeguard.sim.network import Station, new_token
from chargeguard.sim.station_traffic import boot, connection_line
from chargeguard.sim.timefmt import format_ts


def _one(scene: Scene, t: float, until: float, ocpp: str | None = None) -> Station | None:
    found = scene.idle_station(t, until, None if ocpp is None else (lambda s: s.ocpp == ocpp))
    return found[0] if found else None


def _ip(scene: Scene) -> str:
    r = scene.rng
    return f"{r.choice((45, 91, 185, 194))}.{r.randrange(256)}.{r.randrange(256)}.{r.randrange(1, 255)}"


def _auth_failed(station_id: str, remote: str, reason: str) -> Line:
    return {
        "ts": "",
        "station": station_id,
        "event": "auth_failed",
        "remote": remote,
        "detail": {"reason": reason},
    }


def password_guessing(scene: Scene, t: float) -> Injection | None:
    """Refused WebSocket upgrades for one station identity: someone guessing its Basic-auth password."""
    station = _one(scene, t, t + 3600)
    if station is None:
        return None
    rng = scene.rng
    remote = f"{_ip(scene)}:{rng.randrange(30000, 60000)}"
    emits: list[Emit] = []
    moment = t
    for _ in range(rng.randrange(8, 30)):
        emits.append((moment, _auth_failed(station.station_id, remote, "bad_password")))
        moment += rng.uniform(3, 40)
    return inject(
        "station.auth_failure",
        [(station, emits)],
        f"{len(emits)} refused upgrades for one identity",
        completing=emits[4][1],
    )


def identity_spraying(scene: Scene, t: float) -> Injection | None:
    """One host tries several real station identities with a guessed password (password spraying)."""
    found = scene.idle_station(t, t + 3600, count=4, at_least=3)
    if len(found) < 3:
        return None
    rng = scene.rng
    host = _ip(scene)
    emits_by: list[tuple[Station, list[Emit]]] = []
    moment = t
    for station in found:
        lines: list[Emit] = []
        for _ in range(rng.randrange(1, 3)):
            lines.append(
                (
                    moment,
                    _auth_failed(station.station_id, f"{host}:{rng.randrange(30000, 60000)}", "bad_password"),
                )
            )
            moment += rng.uniform(5, 60)
        emits_by.append((station, lines))
    third = emits_by[2][1][0][1]
    return inject(
        "station.auth_failure",
        emits_by,
        f"one host refused for {len(found)} station identities",
        completing=third,
    )


def _alive(scene: Scene, station: Station, t: float) -> list[Emit]:
    """A frame from the real station shortly before ``t`` (it is demonstrably connected)."""
    if station.ocpp == "1.6":
        payload: dict[str, Any] = {
            "connectorId": 0,
            "errorCode": "NoError",
            "status": "Available",
            "timestamp": format_ts(t),
        }
    else:
        c = station.connectors[0]
        payload = {
            "timestamp": format_ts(t),
            "connectorStatus": "Available",
            "evseId": c.evse_id,
            "connectorId": c.connector_id,
        }
    return station_call(scene, station, t, "StatusNotification", payload, {})


def impostor(scene: Scene, t: float) -> Injection | None:
    """A second WebSocket for a connected identity from another address, which boots and heartbeats."""
    station = _one(scene, t, t + 3600)
    if station is None:
        return None
    rng = scene.rng
    emits = _alive(scene, station, t)
    at = t + rng.uniform(10, 60)
    impostor_ip = _ip(scene)
    connect = connection_line(station, "connect", remote=impostor_ip)
    emits.append((at, connect))
    hb = station_call(scene, station, at + 1.0, "Heartbeat", {}, {"currentTime": format_ts(at + 1.0)})
    emits += hb
    emits.append(
        (
            at + rng.uniform(120, 900),
            connection_line(station, "disconnect", remote=impostor_ip),
        )
    )
    return inject(
        "station.duplicate_connection",
        [(station, emits)],
        "second live connection for a connected identity from another address",
        completing=connect,
    )


def alternating(scene: Scene, t: float) -> Injection | None:
    """The real station and an impostor keep displacing each other: connections alternate A, B, A, B, ..."""
    station = _one(scene, t, t + 2 * 3600)
    if station is None:
        return None
    rng = scene.rng
    other = _ip(scene)
    emits: list[Emit] = []
    moment = t
    connects: list[Line] = []
    for i in range(rng.randrange(4, 8)):
        previous = None if i == 0 or (i - 1) % 2 == 1 else other
        emits.append((moment, connection_line(station, "disconnect", remote=previous)))
        moment += rng.uniform(1, 5)
        line = connection_line(station, "connect", remote=other if i % 2 == 0 else None)
        emits.append((moment, line))
        connects.append(line)
        moment += rng.uniform(60, 400)
    return inject(
        "station.duplicate_connection",
        [(station, emits)],
        f"connections alternate between two addresses ({len(connects)} connects)",
        completing=connects[3] if len(connects) > 3 else connects[-1],
    )


def identity_change(scene: Scene, t: float) -> Injection | None:
    """The identity reconnects and boots as another vendor/model/serial (a swapped or spoofed controller)."""
    station = _one(scene, t, t + 3600)
    if station is None:
        return None
    rng = scene.rng
    emits: list[Emit] = [(t, connection_line(station, "disconnect"))]
    real = (station.hardware, station.serial)
    from chargeguard.sim.network import HARDWARE

    others = [h for h, _ in HARDWARE if h.vendor != station.hardware.vendor]
    station.hardware = rng.choice(others)
    station.serial = f"{station.hardware.vendor[:3].upper()}{rng.randrange(10**8):08d}"
    index = station.firmware_index
    station.firmware_index = min(index, len(station.hardware.firmware) - 1)
    booted = boot(station, t + rng.uniform(30, 300), rng=rng, ids=scene.ids)
    emits += booted
    boot_line = next(line for _, line in booted if "frame" in line)
    end = booted[-1][0] + rng.uniform(600, 1800)
    emits.append((end, connection_line(station, "disconnect")))
    station.hardware, station.serial, station.firmware_index = real[0], real[1], index
    emits += boot(station, end + rng.uniform(20, 90), rng=rng, ids=scene.ids)
    return inject(
        "station.identity_change",
        [(station, emits)],
        "identity booted as a different vendor/model/serial, then the real station came back",
        completing=boot_line,
    )


def firmware_downgrade(scene: Scene, t: float, *, via_update: bool) -> Injection | None:
    """The station boots an older firmware than it ran: via an UpdateFirmware, or straight after a reboot."""
    found = scene.idle_station(t, t + 2 * 3600, lambda s: s.firmware_index > 0 and s.firmware_pinned is None)
    if not found:
        return None
    station = found[0]
    rng = scene.rng
    from chargeguard.sim.station_traffic import firmware_update, reboot

    current = station.firmware_index
    older = rng.randrange(0, current)
    if via_update:
        emits = firmware_update(station, t, rng=rng, ids=scene.ids, target_index=older)
    else:
        station.firmware_index = older
        emits = reboot(station, t, rng.uniform(40, 160), rng=rng, ids=scene.ids, remote_reset=False)
    boots = [
        line
        for _, line in emits
        if "frame" in line and line["frame"][0] == 2 and line["frame"][2] == "BootNotification"
    ]
    offline_from = next(x for x, line in emits if line.get("event") == "disconnect")
    offline_to = next(x for x, line in emits if line.get("event") == "connect")
    station.offline.append((offline_from + 0.5, offline_to))
    new = station.hardware.firmware[older]
    station.firmware_pinned = new  # no benign update may follow: it would read as another regression
    return inject(
        "station.firmware_downgrade",
        [(station, emits)],
        f"booted {new} after {station.hardware.firmware[current]} ({station.hardware.vendor} format)",
        completing=boots[-1],
    )


def security_profile_lowered(scene: Scene, t: float) -> Injection | None:
    """The central system (or someone holding its session) lowers SecurityProfile; the station reconnects lower."""
    found = scene.idle_station(t, t + 3600, lambda s: s.ocpp == "1.6" and s.security_profile >= 2)
    if not found:
        return None
    station = found[0]
    lower = station.security_profile - 1
    emits = csms_call(
        scene,
        station,
        t,
        "ChangeConfiguration",
        {"key": "SecurityProfile", "value": str(lower)},
        {"status": "Accepted"},
    )
    return inject(
        "station.security_downgrade",
        [(station, emits)],
        f"SecurityProfile lowered from {station.security_profile} to {lower} over OCPP",
        completing=emits[0][1],
    )


def reconnect_lower(scene: Scene, t: float) -> Injection | None:
    """The identity reconnects at a lower security profile (TLS stripped) than it always used."""
    found = scene.idle_station(t, t + 3600, lambda s: s.security_profile >= 2)
    if not found:
        return None
    station = found[0]
    rng = scene.rng
    emits: list[Emit] = [(t, connection_line(station, "disconnect"))]
    connect = connection_line(station, "connect", profile=station.security_profile - 1)
    emits.append((t + rng.uniform(5, 60), connect))
    hb_at = t + 90
    emits += station_call(scene, station, hb_at, "Heartbeat", {}, {"currentTime": format_ts(hb_at)})
    end = hb_at + rng.uniform(300, 1200)
    emits.append((end, connection_line(station, "disconnect")))
    emits.append((end + 10, connection_line(station, "connect")))
    return inject(
        "station.security_downgrade",
        [(station, emits)],
        f"reconnected at security profile {station.security_profile - 1} "
        f"instead of {station.security_profile}",
        completing=connect,
    )


def risky_auth_setting(scene: Scene, t: float) -> Injection | None:
    """Authorization posture weakened: 1.6 AllowOfflineTxForUnknownId / LocalAuthorizeOffline, or the 2.0.1
    AuthCtrlr / TxCtrlr variables set to risky values."""
    station = _one(scene, t, t + 3600)
    if station is None:
        return None
    rng = scene.rng
    if station.ocpp == "1.6":
        key, value = rng.choice(
            (
                ("AllowOfflineTxForUnknownId", "true"),
                ("StopTransactionOnInvalidId", "false"),
                ("AuthorizeRemoteTxRequests", "false"),
            )
        )
        emits = csms_call(
            scene, station, t, "ChangeConfiguration", {"key": key, "value": value}, {"status": "Accepted"}
        )
    else:
        component, variable, value = rng.choice(
            (
                ("AuthCtrlr", "OfflineTxForUnknownIdEnabled", "true"),
                ("TxCtrlr", "StopTxOnInvalidId", "false"),
                ("TxCtrlr", "MaxEnergyOnInvalidId", "50000"),
            )
        )
        comp, var = {"name": component}, {"name": variable}
        emits = csms_call(
            scene,
            station,
            t,
            "SetVariables",
            {"setVariableData": [{"attributeValue": value, "component": comp, "variable": var}]},
            {"setVariableResult": [{"attributeStatus": "Accepted", "component": comp, "variable": var}]},
        )
        key = f"{component}.{variable}"
    return inject(
        "station.security_downgrade", [(station, emits)], f"{key} set to {value}", completing=emits[0][1]
    )


def network_profile(scene: Scene, t: float) -> Injection | None:
    """2.0.1 SetNetworkProfile pointing the station at another CSMS URL at a lower security profile."""
    station = _one(scene, t, t + 3600, "2.0.1")
    if station is None:
        return None
    rng = scene.rng
    host = rng.choice(("ocpp.chargehub-backup.example", "45.153.20.7", "csms.evil.example"))
    payload = {
        "configurationSlot": rng.randrange(2, 4),
        "connectionData": {
            "ocppVersion": "OCPP20",
            "ocppTransport": "JSON",
            "ocppCsmsUrl": f"ws://{host}/ocpp/{station.station_id}",
            "messageTimeout": 30,
            "securityProfile": 1,
            "ocppInterface": "Wired0",
        },
    }
    emits = csms_call(scene, station, t, "SetNetworkProfile", payload, {"status": "Accepted"})
    return inject(
        "station.security_downgrade",
        [(station, emits)],
        "SetNetworkProfile to an unknown CSMS over plain ws:// at profile 1",
        completing=emits[0][1],
    )


def security_event(scene: Scene, t: float) -> Injection | None:
    """The station reports a serious security event (tamper, invalid firmware signature, ...)."""
    station = _one(scene, t, t + 3600)
    if station is None:
        return None
    rng = scene.rng
    kind = rng.choice(
        (
            "TamperDetectionActivated",
            "InvalidFirmwareSignature",
            "InvalidCentralSystemCertificate",
            "InvalidChargePointCertificate",
            "SettingSystemTime",
            "MemoryExhaustion",
        )
    )
    if station.ocpp == "2.0.1" and kind in (
        "InvalidCentralSystemCertificate",
        "InvalidChargePointCertificate",
    ):
        kind = "InvalidCsmsCertificate" if "Central" in kind else "InvalidChargingStationCertificate"
    payload: dict[str, Any] = {"type": kind, "timestamp": format_ts(t)}
    if rng.random() < 0.5:
        payload["techInfo"] = "enclosure switch opened" if kind.startswith("Tamper") else "see station log"
    emits = station_call(scene, station, t, "SecurityEventNotification", payload, {})
    return inject("station.security_event", [(station, emits)], f"{kind} reported", completing=emits[0][1])


def clock_skew(
    scene: Scene, t: float, *, offset_s: float, what: str, reboot: bool = False
) -> Injection | None:
    """The station's clock is wrong: its payload timestamps run ``offset_s`` off for hours.

    ``reboot``: the clock goes wrong across a restart (disconnect, connect, BootNotification with the wrong
    clock), so its first readings arrive in the reconnect burst where queued messages are expected.
    """
    station = _one(scene, t, t + 6 * 3600)
    if station is None:
        return None
    rng = scene.rng
    station.clock_shifts.insert(0, (t - 1, t + 5 * 3600, offset_s))  # wins over a benign drift window
    connector = scene.connector(station)
    plan = make_plan(scene, station, connector, new_token(rng), t + 300, rng.uniform(60, 180))
    emits = emits_of(scene, station, plan)
    settled = t  # readings in the reconnect burst after a reboot look like a replayed queue
    if reboot:
        emits = [
            (t - 40, connection_line(station, "disconnect")),
            *boot(station, t, rng=rng, ids=scene.ids, reason="PowerUp"),
            *emits,
        ]
        settled = t + 120.0
    stamped = [
        line
        for x, line in emits
        if x > settled
        and "frame" in line
        and line["frame"][0] == 2
        and line["from"] == "station"
        and ("timestamp" in line["frame"][3] or "meterValue" in line["frame"][3])
    ]
    return inject(
        "station.clock_skew",
        [(station, emits)],
        f"station clock {what}",
        plans=(plan,),
        completing=stamped[2] if len(stamped) > 2 else stamped[-1],
    )
