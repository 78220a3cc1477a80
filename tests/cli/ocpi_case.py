"""A capture and OCPI files (CDRs, sessions, tariffs, tokens, locations) built so that each billing kind fires once.

Stations EVSE-A and EVSE-B are OCPP 1.6 charge stations named by their OCPI EVSE uid (the default mapping); EVSE-C
exists only on the OCPI side. What each record is for:

* tx on EVSE-A 08:00 billed by C1 and again by C1-AGAIN (90 s later start, same energy) -> cdr.duplicate
* tx on EVSE-A 12:00 (10 kWh) billed by C2 with 15 kWh -> cdr.energy_mismatch
* CDR000003 on EVSE-A 16:00 with no transaction behind it -> cdr.orphan (a 9-character id: its key must survive
  the redaction net, which blanks eMAID shapes such as BE*BEC*CDR000003)
* tx on EVSE-B 14:00 (6 kWh, 1.50 EUR at the published tariff T1) billed 4.00 by C4 -> cdr.price_mismatch
* tx on EVSE-B 09:00 (8 kWh) never billed -> session.unbilled; also meter.exceeds_capacity, because the Location
  rates EVSE-B at 3.68 kW (proof that Locations serve as the inventory)
* C5 from FR*EVL, a CPO without an agreement -> cdr.party_mismatch (settings: agreements BE*BEC/DE*TNM)
* tx on EVSE-B 18:00 on token BLOCKED, which the eMSP invalidated the day before -> C6: token.unauthorized_charging
  from OCPI, blamed on the CPO
* OCPI Session S7 on EVSE-C billed by C7 (session_id) -> nothing; Session S8 never billed -> session.unbilled
* a heartbeat 40 h later moves event time past the unbilled grace period
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from chargeguard.sim.exchange import MessageIds, SessionPlan, session_emits
from chargeguard.sim.timefmt import epoch, format_ts

T0 = datetime(2026, 3, 2, tzinfo=UTC)
HOUR = timedelta(hours=1)
TOKEN = "04A1B2C3D4E5F6"
BLOCKED = "04BB0C4ED00D99"
OTHER = "04C0FFEE00AA11"
CONTRACT = "DE-TNM-C12345678-X"
RAW_TOKENS = (TOKEN, BLOCKED, OTHER, CONTRACT)
SETTINGS_TOML = '[detectors.cdr-party-mismatch]\nagreements = ["BE*BEC/DE*TNM"]\n'


def _iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def capture_lines() -> list[dict[str, Any]]:
    ids = MessageIds(5)
    rng = random.Random(5)
    emits: list[tuple[float, dict[str, Any]]] = []
    meters = {"EVSE-A": 1_000_000.0, "EVSE-B": 2_000_000.0}
    for station in meters:
        t = epoch(T0 + timedelta(hours=7))
        emits.append((t, {"station": station, "event": "connect", "remote": "192.0.2.10:4000", "detail": {}}))
    plans = [
        ("EVSE-A", TOKEN, 8, 60, 20.0),
        ("EVSE-B", OTHER, 9, 45, 8.0),
        ("EVSE-A", TOKEN, 12, 60, 10.0),
        ("EVSE-B", TOKEN, 14, 30, 6.0),
        ("EVSE-B", BLOCKED, 18, 30, 5.0),
    ]
    for number, (station, token, hour, minutes, kwh) in enumerate(plans, start=1):
        start = T0 + timedelta(hours=hour)
        plan = SessionPlan(
            station=station, ocpp="1.6", connector_id=1, evse_id=1, token=token, transaction_id=str(100 + number),
            start=start, end=start + timedelta(minutes=minutes), energy_wh=kwh * 1000,
            meter_start_wh=meters[station], sample_interval_s=300.0,
        )  # fmt: skip
        meters[station] += kwh * 1000
        emits.extend(session_emits(plan, rng=rng, ids=ids))
    late = epoch(T0 + timedelta(hours=40))
    emits.append(
        (late, {"station": "EVSE-A", "ocpp": "1.6", "from": "station", "frame": [2, "hb1", "Heartbeat", {}]})
    )
    emits.append((late + 0.05, {"station": "EVSE-A", "ocpp": "1.6", "from": "csms",
                                "frame": [3, "hb1", {"currentTime": _iso(T0 + timedelta(hours=40))}]}))  # fmt: skip
    lines = []
    for t, line in sorted(emits, key=lambda e: e[0]):
        lines.append({"ts": format_ts(t), **{k: v for k, v in line.items() if k != "ts"}})
    return lines


def a_cdr(
    cdr_id: str,
    evse: str,
    start: datetime,
    minutes: float,
    kwh: float,
    cost: float,
    *,
    token: str = TOKEN,
    party: tuple[str, str] = ("BE", "BEC"),
    **extra: Any,
) -> dict[str, Any]:
    end = start + timedelta(minutes=minutes)
    return {
        "country_code": party[0], "party_id": party[1], "id": cdr_id,
        "start_date_time": _iso(start), "end_date_time": _iso(end),
        "cdr_token": {"country_code": "DE", "party_id": "TNM", "uid": token, "type": "RFID", "contract_id": CONTRACT},
        "auth_method": "WHITELIST",
        "cdr_location": {"id": "LOC1", "address": "Rue 1", "city": "Gent", "country": "BEL",
                         "coordinates": {"latitude": "51.05", "longitude": "3.72"}, "evse_uid": evse,
                         "evse_id": f"BE*BEC*E{evse}", "connector_id": "1", "connector_standard": "IEC_62196_T2",
                         "connector_format": "SOCKET", "connector_power_type": "AC_3_PHASE"},
        "currency": "EUR",
        "charging_periods": [{"start_date_time": _iso(start), "tariff_id": "T1",
                              "dimensions": [{"type": "ENERGY", "volume": kwh}]}],
        "total_cost": {"excl_vat": cost},
        "total_energy": kwh, "total_time": minutes / 60,
        "last_updated": _iso(end + timedelta(minutes=5)),
        **extra,
    }  # fmt: skip


def a_session(session_id: str, evse: str, start: datetime, minutes: float, kwh: float) -> dict[str, Any]:
    end = start + timedelta(minutes=minutes)
    return {
        "country_code": "BE", "party_id": "BEC", "id": session_id, "start_date_time": _iso(start),
        "end_date_time": _iso(end), "kwh": kwh,
        "cdr_token": {"country_code": "DE", "party_id": "TNM", "uid": OTHER, "type": "RFID", "contract_id": CONTRACT},
        "auth_method": "WHITELIST", "location_id": "LOC1", "evse_uid": evse, "connector_id": "1",
        "currency": "EUR", "status": "COMPLETED", "last_updated": _iso(end + timedelta(minutes=1)),
    }  # fmt: skip


def _evse(uid: str, watts: int) -> dict[str, Any]:
    return {
        "uid": uid, "evse_id": f"BE*BEC*E{uid}", "status": "AVAILABLE", "last_updated": "2026-01-01T00:00:00Z",
        "connectors": [{"id": "1", "standard": "IEC_62196_T2", "format": "SOCKET", "power_type": "AC_3_PHASE",
                        "max_voltage": 230, "max_amperage": 32, "max_electric_power": watts,
                        "last_updated": "2026-01-01T00:00:00Z"}],
    }  # fmt: skip


LOCATION: dict[str, Any] = {
    "country_code": "BE", "party_id": "BEC", "id": "LOC1", "publish": True, "address": "Rue 1", "city": "Gent",
    "country": "BEL", "coordinates": {"latitude": "51.05", "longitude": "3.72"}, "time_zone": "Europe/Brussels",
    "evses": [_evse("EVSE-A", 22080), _evse("EVSE-B", 3680), _evse("EVSE-C", 22080)],
    "last_updated": "2026-01-01T00:00:00Z",
}  # fmt: skip
TARIFF: dict[str, Any] = {
    "country_code": "BE", "party_id": "BEC", "id": "T1", "currency": "EUR", "last_updated": "2026-01-01T00:00:00Z",
    "elements": [{"price_components": [{"type": "ENERGY", "price": 0.25, "step_size": 1}]}],
}  # fmt: skip


def a_token(uid: str, *, valid: bool, updated: datetime, **extra: Any) -> dict[str, Any]:
    return {
        "country_code": "DE", "party_id": "TNM", "uid": uid, "type": "RFID", "contract_id": CONTRACT,
        "visual_number": f"VIS-{uid}", "issuer": "TNM", "valid": valid, "whitelist": "ALLOWED",
        "last_updated": _iso(updated), **extra,
    }  # fmt: skip


def cdrs() -> list[dict[str, Any]]:
    h = timedelta(hours=1)
    return [
        a_cdr("C1", "EVSE-A", T0 + 8 * h, 60, 20.0, 5.0),
        a_cdr("C1-AGAIN", "EVSE-A", T0 + 8 * h + timedelta(seconds=90), 60, 20.0, 5.0),
        a_cdr("C2", "EVSE-A", T0 + 12 * h, 60, 15.0, 3.75),
        a_cdr("CDR000003", "EVSE-A", T0 + 16 * h, 60, 12.0, 3.0),
        a_cdr("C4", "EVSE-B", T0 + 14 * h, 30, 6.0, 4.0),
        a_cdr("C5", "EVSE-X", T0 + 10 * h, 30, 4.0, 1.0, party=("FR", "EVL")),
        a_cdr("C6", "EVSE-B", T0 + 18 * h, 30, 5.0, 1.25, token=BLOCKED),
        a_cdr("C7", "EVSE-C", T0 + 11 * h, 40, 7.0, 1.75, token=OTHER, session_id="S7"),
    ]


@dataclass(frozen=True)
class Case:
    capture: Path
    cdrs: Path
    sessions: Path
    tariffs: Path
    tokens: Path
    locations: Path
    settings: Path

    def args(self) -> list[str]:
        return [
            str(self.capture), "--cdrs", str(self.cdrs), "--sessions", str(self.sessions),
            "--tariffs", str(self.tariffs), "--tokens", str(self.tokens), "--locations", str(self.locations),
            "--config", str(self.settings),
        ]  # fmt: skip


def write_case(directory: Path, *, extra_cdr_lines: Sequence[bytes] = ()) -> Case:
    directory.mkdir(parents=True, exist_ok=True)
    capture = directory / "capture.jsonl"
    capture.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in capture_lines()))
    cdr_file = directory / "cdrs.jsonl"
    cdr_file.write_bytes(b"\n".join([*(orjson.dumps(c) for c in cdrs()), *extra_cdr_lines]) + b"\n")
    sessions = directory / "sessions.json"
    sessions.write_bytes(orjson.dumps([a_session("S7", "EVSE-C", T0 + timedelta(hours=11), 40, 7.0),
                                       a_session("S8", "EVSE-C", T0 + timedelta(hours=13), 50, 9.0)]))  # fmt: skip
    tariffs = directory / "tariffs.json"
    tariffs.write_bytes(
        orjson.dumps({"data": [TARIFF], "status_code": 1000, "timestamp": "2026-03-01T00:00:00Z"})
    )
    tokens = directory / "tokens.jsonl"
    tokens.write_bytes(
        b"\n".join(
            orjson.dumps(t)
            for t in (
                a_token(TOKEN, valid=True, updated=T0 - timedelta(days=3)),
                a_token(BLOCKED, valid=True, updated=T0 - timedelta(days=3)),
                a_token(BLOCKED, valid=False, updated=T0 - timedelta(days=1), received_at=_iso(T0 - 20 * HOUR)),
            )
        )
        + b"\n"
    )  # fmt: skip
    locations = directory / "locations.json"
    locations.write_bytes(orjson.dumps([LOCATION]))
    settings = directory / "settings.toml"
    settings.write_text(SETTINGS_TOML)
    return Case(capture, cdr_file, sessions, tariffs, tokens, locations, settings)
