"""A small scripted network - benign traffic plus one instance of each headline attack - for the demo and the golden
tests. (The full simulator with labelled incident variants lives in ``chargeguard.sim``.)

Twelve stations in Dundee, Perth and Edinburgh (1.6J and 2.0.1), a day of ordinary sessions, heartbeats and boots,
then: a cloned card used in two cities at once, a blocked card that charges anyway, token enumeration at one
station, a meter rolled back mid-session, an AC connector billing DC energy, a SaiFlow-style connection hijack,
a security downgrade and risky offline setting, a firmware downgrade, a firmware URL with credentials on a bare IP,
a tamper security event, and a burst of malformed frames. ``EXPECTED`` names the kinds each attack must raise.

Every token here is a made-up RFID UID; the benign ones are listed in ``BENIGN_TOKENS`` so tests can scan all output
for them (canaries).
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from chargeguard.sim.exchange import MessageIds, SessionPlan, session_emits
from chargeguard.sim.timefmt import epoch, format_ts, format_ts_s

Line = dict[str, Any]

DAY = datetime(2026, 3, 2, tzinfo=UTC)

# station, lat, lon, max_kw, version, connector type, location
STATIONS: tuple[tuple[str, float, float, float, str, str, str], ...] = (
    ("DUN-01", 56.4620, -2.9707, 22.0, "1.6", "AC", "dundee-centre"),
    ("DUN-02", 56.4625, -2.9712, 22.0, "1.6", "AC", "dundee-centre"),
    ("DUN-03", 56.4580, -2.9820, 50.0, "2.0.1", "DC", "dundee-west"),
    ("DUN-04", 56.4700, -2.9500, 7.4, "1.6", "AC", "dundee-east"),
    ("PER-01", 56.3960, -3.4370, 22.0, "2.0.1", "AC", "perth"),
    ("PER-02", 56.3965, -3.4380, 50.0, "1.6", "DC", "perth"),
    ("PER-03", 56.4010, -3.4500, 7.4, "2.0.1", "AC", "perth-north"),
    ("EDI-01", 55.9533, -3.1883, 22.0, "1.6", "AC", "edinburgh"),
    ("EDI-02", 55.9540, -3.1890, 150.0, "2.0.1", "DC", "edinburgh"),
    ("EDI-03", 55.9450, -3.2000, 22.0, "2.0.1", "AC", "edinburgh-west"),
    ("EDI-04", 55.9600, -3.1700, 7.4, "1.6", "AC", "edinburgh-north"),
    ("EDI-05", 55.9300, -3.2100, 50.0, "1.6", "DC", "edinburgh-south"),
)

BENIGN_TOKENS = tuple(f"04{i:02X}7A1C9E{i * 7 % 256:02X}80" for i in range(1, 31))
CLONED = "04E1A2B3C4D580"
BLOCKED = "04B10C4ED00D80"

EXPECTED: dict[str, tuple[str, ...]] = {
    "cloned card in two cities": ("token.concurrent_use", "token.impossible_travel"),
    "blocked card charging": ("token.unauthorized_charging",),
    "token enumeration": ("token.enumeration",),
    "meter rollback": ("meter.rollback",),
    "AC connector billing DC energy": ("meter.exceeds_capacity",),
    "connection hijack": ("station.duplicate_connection",),
    "security downgrade": ("station.security_downgrade",),
    "firmware downgrade": ("station.firmware_downgrade",),
    "firmware URL with credentials": ("command.untrusted_url",),
    "tamper detected": ("station.security_event",),
    "malformed frames": ("ocpp.malformed",),
}


class _Builder:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.ids = MessageIds(seed)
        self.emits: list[tuple[float, Line]] = []
        self.tx = 1000
        self.meters: dict[tuple[str, int], float] = {}

    def line(self, t: float, station: str, ocpp: str, sender: str, frame: list[Any]) -> None:
        self.emits.append((t, {"ts": "", "station": station, "ocpp": ocpp, "from": sender, "frame": frame}))

    def conn(self, t: float, station: str, event: str, remote: str, profile: int = 2) -> None:
        self.emits.append(
            (
                t,
                {
                    "ts": "",
                    "station": station,
                    "event": event,
                    "remote": remote,
                    "security_profile": profile,
                    "detail": {},
                },
            )
        )

    def call(
        self,
        t: float,
        station: str,
        ocpp: str,
        action: str,
        payload: dict[str, Any],
        answer: dict[str, Any] | None,
        sender: str = "station",
    ) -> None:
        mid = self.ids.next(station, sender)
        self.line(t, station, ocpp, sender, [2, mid, action, payload])
        if answer is not None:
            self.line(t + 0.03, station, ocpp, "csms" if sender == "station" else "station", [3, mid, answer])

    def boot(self, t: float, station: str, ocpp: str, firmware: str, remote: str) -> None:
        self.conn(t, station, "connect", remote)
        if ocpp == "1.6":
            payload: dict[str, Any] = {
                "chargePointVendor": "Alfen",
                "chargePointModel": "Eve-Pro",
                "chargePointSerialNumber": f"SN-{station}",
                "firmwareVersion": firmware,
            }
        else:
            payload = {
                "reason": "PowerUp",
                "chargingStation": {
                    "vendorName": "Alfen",
                    "model": "Eve-Pro",
                    "serialNumber": f"SN-{station}",
                    "firmwareVersion": firmware,
                },
            }
        self.call(
            t + 1,
            station,
            ocpp,
            "BootNotification",
            payload,
            {"status": "Accepted", "currentTime": format_ts_s(t + 1), "interval": 900},
        )

    def session(
        self,
        station: str,
        ocpp: str,
        token: str | None,
        start: datetime,
        minutes: float,
        kwh: float,
        *,
        status: str = "Accepted",
        max_kw: float | None = None,
    ) -> str:
        self.tx += 1
        key = (station, 1)
        meter = self.meters.get(key, 1_250_000.0)
        plan = SessionPlan(
            station=station,
            ocpp=ocpp,
            connector_id=1,
            evse_id=1,
            token=token,
            transaction_id=str(self.tx),
            start=start,
            end=start + timedelta(minutes=minutes),
            energy_wh=kwh * 1000,
            meter_start_wh=meter,
            sample_interval_s=300.0,
            auth_status=status,
            max_power_w=max_kw * 1000 if max_kw else None,
        )
        self.meters[key] = meter + max(0.0, kwh * 1000)
        self.emits.extend(session_emits(plan, rng=self.rng, ids=self.ids))
        return str(self.tx)


def build(seed: int = 7, *, attacks: bool = True) -> tuple[list[Line], list[dict[str, Any]]]:
    """Return (capture lines in ts order with ``ts`` filled, inventory rows); ``attacks=False`` gives only the
    benign traffic (the golden benign capture every detector must stay silent on)."""
    b = _Builder(seed)
    t0 = epoch(DAY)
    versions = {s[0]: s[4] for s in STATIONS}
    for index, (station, *_rest) in enumerate(STATIONS):
        b.boot(t0 + 60 + index, station, versions[station], "2.4.1", f"198.51.100.{10 + index}:4{index:04d}")
        for hour in range(1, 24):
            payload: dict[str, Any] = {}
            b.call(
                t0 + hour * 3600 + index * 13,
                station,
                versions[station],
                "Heartbeat",
                payload,
                {"currentTime": format_ts_s(t0 + hour * 3600 + index * 13)},
            )
    # sessions (benign and attack), generated in time order per station so meter registers stay continuous
    plans: list[tuple[datetime, str, str | None, float, float, str, float | None]] = []
    power = {s[0]: s[3] for s in STATIONS}
    for i, token in enumerate(BENIGN_TOKENS):
        station = STATIONS[i % len(STATIONS)][0]
        slot = i // len(STATIONS)  # drivers sharing a home station use it at different times of day
        for base_hour, spacing in ((6.0, 3.0), (16.0, 2.5)):
            start = DAY + timedelta(hours=base_hour + slot * spacing, minutes=b.rng.randint(0, 25))
            minutes = 40 + b.rng.random() * 60
            kwh = min(power[station] * 0.8, 11.0) * minutes / 60 * (0.6 + 0.3 * b.rng.random())
            plans.append((start, station, token, minutes, kwh, "Accepted", None))
    if attacks:
        # 1. cloned card: Dundee and Edinburgh at the same time (about 60 km apart)
        plans.append((DAY + timedelta(hours=14, minutes=10), "DUN-01", CLONED, 60, 9.0, "Accepted", None))
        plans.append((DAY + timedelta(hours=14, minutes=30), "EDI-01", CLONED, 50, 8.0, "Accepted", None))
        # 2. blocked card: the CSMS says Blocked, the station charges anyway
        plans.append((DAY + timedelta(hours=14, minutes=10), "PER-02", BLOCKED, 40, 18.0, "Blocked", None))
        # 5. an AC 7.4 kW connector billing 40 kWh in one hour
        plans.append(
            (DAY + timedelta(hours=23, minutes=10), "DUN-04", BENIGN_TOKENS[4], 60, 40.0, "Accepted", 40.0)
        )
    rollback_tx = ""
    rollback_at = rollback_wh = 0.0
    for start, station, card, minutes, kwh, status, max_kw in sorted(plans, key=lambda p: (p[0], p[1])):
        version = versions[station]
        tx_id = b.session(station, version, card, start, minutes, kwh, status=status, max_kw=max_kw)
        if station == "DUN-02" and start.hour == 16 and not rollback_tx and version == "1.6":
            rollback_tx = tx_id
            rollback_at = epoch(start) + minutes * 30  # mid-session
            rollback_wh = b.meters[(station, 1)] - kwh * 1000 - 5000  # 5 kWh below the session's start
    if attacks:
        # 3. enumeration: 14 distinct made-up UIDs rejected within 12 minutes
        te = t0 + 14 * 3600
        for n in range(14):
            guess = f"04{0x10 + n:02X}{0xC0FFEE + n:06X}80"
            b.call(
                te + n * 50,
                "EDI-04",
                "1.6",
                "Authorize",
                {"idTag": guess},
                {"idTagInfo": {"status": "Invalid"}},
            )
        # 4. meter rollback inside a 1.6 session on DUN-02: the register drops back by 5 kWh mid-session
        if rollback_tx:
            b.call(
                rollback_at,
                "DUN-02",
                "1.6",
                "MeterValues",
                {
                    "connectorId": 1,
                    "transactionId": int(rollback_tx),
                    "meterValue": [
                        {
                            "timestamp": format_ts_s(rollback_at),
                            "sampledValue": [
                                {
                                    "value": str(int(rollback_wh)),
                                    "measurand": "Energy.Active.Import.Register",
                                    "unit": "Wh",
                                    "context": "Sample.Periodic",
                                }
                            ],
                        }
                    ],
                },
                {},
            )
        # 6. SaiFlow hijack: a second connection for PER-01 from another address while the first is open, alternating
        th = t0 + 16 * 3600
        for k in range(3):
            b.conn(th + k * 120, "PER-01", "connect", f"203.0.113.66:5{k:04d}")
            b.conn(th + k * 120 + 60, "PER-01", "connect", f"198.51.100.14:4{k:04d}")
        # 7. security downgrade on EDI-05 (1.6) and EDI-03 (2.0.1)
        b.call(
            t0 + 17 * 3600,
            "EDI-05",
            "1.6",
            "ChangeConfiguration",
            {"key": "SecurityProfile", "value": "0"},
            {"status": "Rejected"},
            sender="csms",
        )
        b.call(
            t0 + 17 * 3600 + 30,
            "EDI-05",
            "1.6",
            "ChangeConfiguration",
            {"key": "AllowOfflineTxForUnknownId", "value": "true"},
            {"status": "Accepted"},
            sender="csms",
        )
        b.call(
            t0 + 17 * 3600 + 90,
            "EDI-03",
            "2.0.1",
            "SetVariables",
            {
                "setVariableData": [
                    {
                        "attributeValue": "true",
                        "component": {"name": "AuthCtrlr"},
                        "variable": {"name": "OfflineTxForUnknownIdEnabled"},
                    }
                ]
            },
            {
                "setVariableResult": [
                    {
                        "attributeStatus": "Accepted",
                        "component": {"name": "AuthCtrlr"},
                        "variable": {"name": "OfflineTxForUnknownIdEnabled"},
                    }
                ]
            },
            sender="csms",
        )
        # 8. firmware downgrade on EDI-02 after a reboot
        b.boot(t0 + 18 * 3600, "EDI-02", "2.0.1", "2.1.0", "198.51.100.18:40008")
        # 9. firmware update from a bare IP over plain HTTP with credentials in the URL
        b.call(
            t0 + 18 * 3600 + 600,
            "PER-03",
            "2.0.1",
            "UpdateFirmware",
            {
                "requestId": 7,
                "firmware": {
                    "location": "http://updater:s3cr3t@192.0.2.45/fw/eve-2.9.bin",
                    "retrieveDateTime": format_ts_s(t0 + 18 * 3600 + 600),
                },
            },
            {"status": "Accepted"},
            sender="csms",
        )
        # 10. tamper detection on DUN-03
        b.call(
            t0 + 19 * 3600,
            "DUN-03",
            "2.0.1",
            "SecurityEventNotification",
            {"type": "TamperDetectionActivated", "timestamp": format_ts_s(t0 + 19 * 3600)},
            {},
        )
        # 11. malformed frames from PER-02: bad shapes, unknown actions, schema violations
        tm = t0 + 21 * 3600
        bad_frames: list[Any] = [
            [2, "x1", "../../v201/schemas/Reset", {}],
            [2, "x2", "Authorize", {"idTag": "0123456789ABCDEF0123456789"}],
            [7, "x3"],
            [3, "never-asked", {}],
            [
                2,
                "x4",
                "StatusNotification",
                {"connectorId": "one", "status": "Charging", "errorCode": "NoError"},
            ],
            "not even a list",
        ]
        for n, frame in enumerate(bad_frames * 2):
            b.line(tm + n * 5, "PER-02", "1.6", "station", frame)
    lines = []
    for t, line in sorted(b.emits, key=lambda e: e[0]):
        line["ts"] = format_ts(t)
        lines.append(line)
    inventory = [
        {
            "station": s,
            "latitude": lat,
            "longitude": lon,
            "max_kw": kw,
            "connectors": 1,
            "location_id": loc,
            "country": "GB",
            "connector_id": "1",
            "connector_type": ctype,
        }
        for s, lat, lon, kw, _v, ctype, loc in STATIONS
    ]
    return lines, inventory
