"""Generate a pair of partner CDR files (CPO's and eMSP's view) with known disputes, for tests and bench/.

The CPO file holds ``n`` CDRs. The eMSP file holds the same charging, with planted differences whose counts are
returned as ground truth: CDRs the eMSP never received (``missing_at_emsp``), CDRs only the eMSP has
(``only_at_emsp``), CDRs the eMSP stored under another id (matched by token, EVSE, start and energy:
``renamed``), price disputes (``price``), energy disputes (``energy``), a currency conflict (``currency``), and
bad records on the CPO side: malformed JSON, negative energy and duplicate ids (``bad_*``). Tokens are raw-looking
card numbers, as partners would send them; the reconciler pseudonymises them on read. Every CDR is priced by
``tariff()``, so the tariff engine backs the CPO on every planted price dispute.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO

import msgspec
import orjson

from chargeguard.sources.ocpi.models import Tariff

_T0 = datetime(2026, 3, 1, tzinfo=UTC)
_CPOS = ("NL*ABC", "BE*BEC", "DE*ALL")
_EMSPS = ("DE*TNM", "NL*EMS", "FR*MSP")


@dataclass(slots=True)
class Truth:
    cpo_records: int = 0
    emsp_records: int = 0
    matched_by_id: int = 0
    renamed: int = 0
    price: int = 0
    energy: int = 0
    currency: int = 0
    missing_at_emsp: int = 0
    only_at_emsp: int = 0
    bad_json: int = 0
    bad_energy: int = 0
    bad_duplicate: int = 0
    stake_by_currency: dict[str, float] = field(default_factory=dict)


def _cdr(i: int, rng: random.Random, tokens: int) -> dict[str, object]:
    cpo = _CPOS[i % len(_CPOS)]
    emsp = _EMSPS[(i // 7) % len(_EMSPS)]
    cc, pid = cpo.split("*")
    tcc, tpid = emsp.split("*")
    start = _T0 + timedelta(seconds=i * 37 + rng.randrange(0, 30))
    minutes = rng.randrange(10, 240)
    kwh = round(rng.uniform(1, 60), 3)
    cost = round(0.5 + kwh * 0.35, 2)
    uid = f"04{(i * 7919) % tokens:012X}"
    return {
        "country_code": cc,
        "party_id": pid,
        "id": f"CDR{i:09d}",
        "start_date_time": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "end_date_time": (start + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "cdr_token": {
            "country_code": tcc,
            "party_id": tpid,
            "uid": uid,
            "type": "RFID",
            "contract_id": f"{tcc}{tpid}C{uid}",
        },
        "auth_method": "WHITELIST",
        "cdr_location": {
            "id": f"LOC{i % 5000}",
            "address": "Street 1",
            "city": "City",
            "country": "NLD",
            "coordinates": {"latitude": "52.0", "longitude": "4.0"},
            "evse_uid": f"EVSE{i % 20000}",
            "evse_id": f"{cc}*{pid}*E{i % 20000}",
            "connector_id": "1",
            "connector_standard": "IEC_62196_T2",
            "connector_format": "SOCKET",
            "connector_power_type": "AC_3_PHASE",
        },
        "currency": "EUR",
        "charging_periods": [
            {
                "start_date_time": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "dimensions": [{"type": "ENERGY", "volume": kwh}],
            }
        ],
        "total_cost": {"excl_vat": cost, "incl_vat": round(cost * 1.21, 2)},
        "total_energy": kwh,
        "total_time": round(minutes / 60, 3),
        "last_updated": (start + timedelta(minutes=minutes + 1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def tariff() -> Tariff:
    """The tariff every generated CDR is priced by: 0.50 per session plus 0.35 per kWh (excl. VAT), id ``T``."""
    return msgspec.convert(
        {
            "country_code": "NL",
            "party_id": "ABC",
            "id": "T",
            "currency": "EUR",
            "last_updated": "2026-01-01T00:00:00Z",
            "elements": [
                {
                    "price_components": [
                        {"type": "FLAT", "price": 0.5, "step_size": 1},
                        {"type": "ENERGY", "price": 0.35, "step_size": 1},
                    ]
                }
            ],
        },
        Tariff,
    )


def _write(out: IO[bytes], record: dict[str, object]) -> None:
    out.write(orjson.dumps(record))
    out.write(b"\n")


def generate(cpo_path: Path, emsp_path: Path, n: int, *, seed: int = 7, dispute_rate: float = 0.01) -> Truth:
    """Write the two files; every planted category gets about ``dispute_rate * n`` records (at least 1)."""
    rng = random.Random(seed)
    truth = Truth()
    k = max(1, int(n * dispute_rate))
    tokens = max(10, n // 10)
    stake = truth.stake_by_currency
    with cpo_path.open("wb") as cpo, emsp_path.open("wb") as emsp:
        for i in range(n):
            record = _cdr(i, rng, tokens)
            _write(cpo, record)
            truth.cpo_records += 1
            cost = float(record["total_cost"]["excl_vat"])  # type: ignore[index]
            slot = i % (n // k if n >= k else 1)
            bucket = i // max(1, n // k)
            category = (
                ("missing", "renamed", "price", "energy", "currency")[bucket % 5] if slot == 0 else "same"
            )
            if category == "missing":
                truth.missing_at_emsp += 1
                stake["EUR"] = stake.get("EUR", 0.0) + cost
                continue
            other = orjson.loads(orjson.dumps(record))
            if category == "renamed":
                other["id"] = f"EMSP-{i:09d}"
                other["start_date_time"] = (
                    datetime.fromisoformat(str(record["start_date_time"])) + timedelta(seconds=45)
                ).strftime("%Y-%m-%dT%H:%M:%SZ")
                truth.renamed += 1
            elif category == "price":
                lower = round(cost * 0.7, 2)
                other["total_cost"] = {"excl_vat": lower}
                stake["EUR"] = stake.get("EUR", 0.0) + round(cost - lower, 2)
                truth.price += 1
            elif category == "energy":
                other["total_energy"] = round(float(record["total_energy"]) * 0.8, 3)  # type: ignore[arg-type]
                truth.energy += 1
            elif category == "currency":
                other["currency"] = "USD"
                truth.currency += 1
            if category in ("same", "price", "energy", "currency"):
                truth.matched_by_id += 1
            _write(emsp, other)
            truth.emsp_records += 1
        for j in range(k):
            extra = _cdr(n + j, rng, tokens)
            extra["id"] = f"ONLY{j:09d}"
            _write(emsp, extra)
            truth.emsp_records += 1
            truth.only_at_emsp += 1
            stake["EUR"] = stake.get("EUR", 0.0) + float(extra["total_cost"]["excl_vat"])  # type: ignore[index]
        # bad records at the end of the CPO file
        cpo.write(b'{"id": "BROKEN", "country_code": "NL"\n')
        truth.bad_json += 1
        negative = _cdr(n + k + 1, rng, tokens)
        negative["total_energy"] = -5.0
        _write(cpo, negative)
        truth.bad_energy += 1
        _write(cpo, _cdr(0, random.Random(seed), tokens))  # CDR000000000 again
        truth.bad_duplicate += 1
        truth.cpo_records += 3
    return truth
