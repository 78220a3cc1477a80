"""Station-level traffic that is not a charging session: boot, heartbeats, reboots, firmware updates, config.

Every function returns a stream: an iterator of ``(t, line)`` in non-decreasing ``t``. The transport wrapper
:func:`through_transport` applies a station's offline windows to any stream of that station: while offline a
station drops heartbeats, status and authorisation traffic, and queues its transaction messages, replaying them
on reconnect (2.0.1 marks replayed TransactionEvents ``offline: true``).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

from chargeguard.sim.exchange import Emit, Line, MessageIds, call
from chargeguard.sim.network import Station
from chargeguard.sim.timefmt import format_ts

QUEUED_ACTIONS = frozenset({"StartTransaction", "StopTransaction", "MeterValues", "TransactionEvent"})
REPLAY_COMPRESSION = 1e-3  # an hour offline replays in 3.6 s


def connection_line(
    station: Station, event: str, *, remote: str | None = None, profile: int | None = None
) -> Line:
    """A connect or disconnect line; both name the remote end, so a reader can tell which connection closed."""
    line: Line = {"ts": "", "station": station.station_id, "event": event}
    line["remote"] = f"{remote or station.remote}:{40000 + station.index % 20000}"
    if event == "connect":
        line["security_profile"] = station.security_profile if profile is None else profile
    line["detail"] = {}
    return line


def boot(
    station: Station, t: float, *, rng: random.Random, ids: MessageIds, reason: str = "PowerUp"
) -> list[Emit]:
    """Connect, BootNotification (accepted) and a StatusNotification per connector."""
    out: list[Emit] = [(t, connection_line(station, "connect"))]
    hw = station.hardware
    sid, ocpp = station.station_id, station.ocpp
    t += 0.2 + rng.random() * 0.5
    response = {"currentTime": format_ts(t), "interval": int(station.heartbeat_s), "status": "Accepted"}
    if ocpp == "1.6":
        payload: dict[str, Any] = {
            "chargePointVendor": hw.vendor,
            "chargePointModel": hw.model,
            "chargePointSerialNumber": station.serial,
            "firmwareVersion": station.firmware,
        }
    else:
        payload = {
            "reason": reason,
            "chargingStation": {
                "model": hw.model,
                "vendorName": hw.vendor,
                "serialNumber": station.serial,
                "firmwareVersion": station.firmware,
            },
        }
    call(out, t, sid, ocpp, "BootNotification", payload, response, rng=rng, ids=ids)
    if ocpp == "2.0.1" or station.security_profile >= 2:
        # Stations implementing OCPP security (2.0.1, 1.6 security whitepaper) report each start-up (routine).
        t += 0.1 + rng.random() * 0.3
        event = {"type": "StartupOfTheDevice", "timestamp": format_ts(t + station.clock_at(t))}
        call(out, t, sid, ocpp, "SecurityEventNotification", event, {}, rng=rng, ids=ids)
    for connector in station.connectors:
        t += 0.1 + rng.random() * 0.3
        if ocpp == "1.6":
            status: dict[str, Any] = {
                "connectorId": connector.connector_id,
                "errorCode": "NoError",
                "status": "Available",
                "timestamp": format_ts(t + station.clock_at(t)),
            }
        else:
            status = {
                "timestamp": format_ts(t + station.clock_at(t)),
                "connectorStatus": "Available",
                "evseId": connector.evse_id,
                "connectorId": connector.connector_id,
            }
        call(out, t, sid, ocpp, "StatusNotification", status, {}, rng=rng, ids=ids)
    return out


def heartbeats(
    station: Station, t: float, until: float, *, rng: random.Random, ids: MessageIds
) -> Iterator[Emit]:
    """A Heartbeat every interval (with a little jitter) from ``t`` until ``until``, none while offline."""
    sid, ocpp = station.station_id, station.ocpp
    interval = station.heartbeat_s
    t += rng.random() * interval
    while t < until:
        if station.offline and station.offline_at(t) is not None:
            t += interval
            continue
        message_id = ids.next(sid, "station")
        yield (
            t,
            {
                "ts": "",
                "station": sid,
                "ocpp": ocpp,
                "from": "station",
                "frame": [2, message_id, "Heartbeat", {}],
            },
        )
        t_result = t + 0.005 + rng.random() * 0.06
        yield (
            t_result,
            {
                "ts": "",
                "station": sid,
                "ocpp": ocpp,
                "from": "csms",
                "frame": [3, message_id, {"currentTime": format_ts(t_result)}],
            },
        )
        t += interval * (0.995 + rng.random() * 0.01)


def reboot(
    station: Station,
    t: float,
    down_s: float,
    *,
    rng: random.Random,
    ids: MessageIds,
    remote_reset: bool = True,
) -> list[Emit]:
    """An operator Reset (or a spontaneous power cycle): disconnect, down ``down_s``, boot again."""
    out: list[Emit] = []
    sid, ocpp = station.station_id, station.ocpp
    if remote_reset:
        payload = {"type": "Soft"} if ocpp == "1.6" else {"type": "OnIdle"}
        call(out, t, sid, ocpp, "Reset", payload, {"status": "Accepted"}, rng=rng, ids=ids, sender="csms")
    out.append((t + 2.0, connection_line(station, "disconnect")))
    reason = ("RemoteReset" if remote_reset else "PowerUp") if ocpp == "2.0.1" else "PowerUp"
    out.extend(boot(station, t + 2.0 + down_s, rng=rng, ids=ids, reason=reason))
    return out


def firmware_update(
    station: Station,
    t: float,
    *,
    rng: random.Random,
    ids: MessageIds,
    fail: bool = False,
    target_index: int | None = None,
    location: str | None = None,
) -> list[Emit]:
    """UpdateFirmware from the csms, the station's FirmwareStatusNotifications, a reboot into the new version.

    The station's firmware index changes when the list is built (the update is scheduled while it is idle).
    """
    out: list[Emit] = []
    sid, ocpp = station.station_id, station.ocpp
    hw = station.hardware
    index = station.firmware_index + 1 if target_index is None else target_index
    version = hw.firmware[min(index, len(hw.firmware) - 1)]
    url = location or f"https://{hw.fw_host}/releases/{hw.model.replace(' ', '_')}/{version}.bin"
    request_id = rng.randrange(1, 1_000_000)
    retrieve = format_ts(t + 60.0)
    if ocpp == "1.6":
        call(
            out,
            t,
            sid,
            ocpp,
            "UpdateFirmware",
            {"location": url, "retrieveDate": retrieve},
            {},
            rng=rng,
            ids=ids,
            sender="csms",
        )
    else:
        call(
            out,
            t,
            sid,
            ocpp,
            "UpdateFirmware",
            {"requestId": request_id, "firmware": {"location": url, "retrieveDateTime": retrieve}},
            {"status": "Accepted"},
            rng=rng,
            ids=ids,
            sender="csms",
        )
    steps = ["Downloading", "Downloaded"]
    if ocpp == "2.0.1":
        steps += ["SignatureVerified"]
    steps += ["InstallationFailed"] if fail else ["Installing"]
    t += 60.0 + rng.random() * 5
    for status in steps:
        payload: dict[str, Any] = {"status": status}
        if ocpp == "2.0.1":
            payload["requestId"] = request_id
        call(out, t, sid, ocpp, "FirmwareStatusNotification", payload, {}, rng=rng, ids=ids)
        t += 20.0 + rng.random() * (200.0 if status == "Downloading" else 20.0)
    if fail:
        return out
    station.firmware_index = min(index, len(hw.firmware) - 1)
    out.append((t, connection_line(station, "disconnect")))
    t += 60.0 + rng.random() * 90.0
    out.extend(boot(station, t, rng=rng, ids=ids, reason="FirmwareUpdate"))
    t = out[-1][0] + 1.0
    payload = {"status": "Installed"}
    if ocpp == "2.0.1":
        payload["requestId"] = request_id
    call(out, t, sid, ocpp, "FirmwareStatusNotification", payload, {}, rng=rng, ids=ids)
    return out


def configure(
    station: Station,
    t: float,
    key: str,
    value: str,
    *,
    rng: random.Random,
    ids: MessageIds,
    component: str = "OCPPCommCtrlr",
    variable: str | None = None,
    status: str = "Accepted",
) -> list[Emit]:
    """A ChangeConfiguration (1.6) or SetVariables (2.0.1) from the csms, answered by the station."""
    out: list[Emit] = []
    sid, ocpp = station.station_id, station.ocpp
    if ocpp == "1.6":
        call(
            out,
            t,
            sid,
            ocpp,
            "ChangeConfiguration",
            {"key": key, "value": value},
            {"status": status},
            rng=rng,
            ids=ids,
            sender="csms",
        )
    else:
        comp, var = {"name": component}, {"name": variable or key}
        request = {"setVariableData": [{"attributeValue": value, "component": comp, "variable": var}]}
        response = {"setVariableResult": [{"attributeStatus": status, "component": comp, "variable": var}]}
        call(out, t, sid, ocpp, "SetVariables", request, response, rng=rng, ids=ids, sender="csms")
    return out


def through_transport(station: Station, stream: Iterator[Emit]) -> Iterator[Emit]:
    """``stream`` as the transport carries it, given the station's offline windows (see the module docstring)."""
    last = float("-inf")
    dropped: set[str] = set()
    for item in stream:
        t, line = item
        if station.offline:
            window = station.offline_at(t)
            if window is not None and "frame" in line:
                frame = line["frame"]
                if frame[0] == 2:
                    if line["from"] == "csms" or frame[2] not in QUEUED_ACTIONS:
                        dropped.add(frame[1])
                        continue
                    if frame[2] == "TransactionEvent":
                        frame[3]["offline"] = True
                elif frame[1] in dropped:
                    dropped.discard(frame[1])
                    continue
                t = window[1] + 1.0 + (t - window[0]) * REPLAY_COMPRESSION
                item = (t, line)
        if t <= last:
            t = last + 0.001
            item = (t, line)
        last = t
        yield item
