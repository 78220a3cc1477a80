"""Tariff engine: the OCPI 2.2.1 specification's examples with their published totals, plus hand-computed cases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
import pytest

from chargeguard.errors import InputError
from chargeguard.sources.ocpi.models import Cdr
from chargeguard.tariffs import TariffOptions, compute_cost, explain_difference

D = Decimal
T0 = datetime(2019, 6, 3, 9, 30, tzinfo=UTC)  # a Monday


def pc(kind: str, price: str, step: int, vat: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"type": kind, "price": float(price), "step_size": step}
    if vat is not None:
        out["vat"] = float(vat)
    return out


def tariff(elements: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "country_code": "DE",
        "party_id": "ALL",
        "id": extra.pop("id", "T1"),
        "currency": "EUR",
        "elements": elements,
        "last_updated": "2019-01-01T00:00:00Z",
        **extra,
    }


def cdr(
    tariffs: list[dict[str, Any]],
    periods: list[tuple[datetime, dict[str, float], str | None]],
    end: datetime,
    *,
    total: tuple[float, float | None] = (0.0, None),
    **extra: Any,
) -> Cdr:
    cost: dict[str, Any] = {"excl_vat": total[0]}
    if total[1] is not None:
        cost["incl_vat"] = total[1]
    energy = sum(d.get("ENERGY", 0.0) for _, d, _ in periods)
    time_h = sum(d.get("TIME", 0.0) for _, d, _ in periods)
    raw = {
        "country_code": "BE",
        "party_id": "BEC",
        "id": "12345",
        "start_date_time": periods[0][0].isoformat(),
        "end_date_time": end.isoformat(),
        "cdr_token": {
            "country_code": "DE",
            "party_id": "TNM",
            "uid": "tok1_x",
            "type": "RFID",
            "contract_id": "c",
        },
        "auth_method": "WHITELIST",
        "cdr_location": {
            "id": "LOC1",
            "address": "F.Rooseveltlaan 3A",
            "city": "Gent",
            "country": "BEL",
            "coordinates": {"latitude": "51.047599", "longitude": "3.729944"},
            "evse_uid": "3256",
            "evse_id": "BE*BEC*E041503003",
            "connector_id": "1",
            "connector_standard": "IEC_62196_T2",
            "connector_format": "SOCKET",
            "connector_power_type": "AC_1_PHASE",
        },
        "currency": "EUR",
        "tariffs": tariffs,
        "charging_periods": [
            {
                "start_date_time": s.isoformat(),
                "dimensions": [{"type": k, "volume": v} for k, v in dims.items()],
                **({"tariff_id": tid} if tid else {}),
            }
            for s, dims, tid in periods
        ],
        "total_cost": cost,
        "total_energy": energy,
        "total_time": time_h,
        "last_updated": end.isoformat(),
        **extra,
    }
    return msgspec.convert(raw, Cdr, strict=False)


def charge_then_park(start: datetime, charge_min: float, park_min: float, dims: dict[str, float]) -> Any:
    periods = [(start, {"TIME": charge_min / 60, **dims}, "T1")]
    if park_min:
        periods.append((start + timedelta(minutes=charge_min), {"PARKING_TIME": park_min / 60}, "T1"))
    return periods, start + timedelta(minutes=charge_min + park_min)


def cost(c: Cdr, zone: str = "UTC", **options: Any) -> tuple[Decimal, Decimal]:
    b = compute_cost(c, time_zone=zone, options=TariffOptions(**options))
    cent = D("0.01")
    return b.excl_vat.quantize(cent, ROUND_HALF_UP), b.incl_vat.quantize(cent, ROUND_HALF_UP)


# ---------------------------------------------------------------- the specification's examples (mod_tariffs, mod_cdrs)


def test_cdr_module_example_time_with_step_size() -> None:
    # mod_cdrs example CDR: 1.973 h charging at 2.00/h +10% VAT, step 300 s -> 2 h billed: 4.00 / 4.40
    t = tariff([{"price_components": [pc("TIME", "2.00", 300, "10.0")]}], id="12")
    c = cdr(
        [t],
        [(datetime(2015, 6, 29, 21, 39, 9, tzinfo=UTC), {"TIME": 1.973}, "12")],
        datetime(2015, 6, 29, 23, 37, 32, tzinfo=UTC),
        total=(4.00, 4.40),
    )
    assert cost(c) == (D("4.00"), D("4.40"))
    assert explain_difference(c, compute_cost(c)) == []


@pytest.mark.parametrize(("kwh", "expected"), [(20, ("5.00", "5.50"))])
def test_simple_025_per_kwh(kwh: float, expected: tuple[str, str]) -> None:
    t = tariff([{"price_components": [pc("ENERGY", "0.25", 1, "10.0")]}])
    c = cdr([t], [(T0, {"ENERGY": kwh, "TIME": 1.0}, "T1")], T0 + timedelta(hours=1))
    assert cost(c) == (D(expected[0]), D(expected[1]))


def test_start_fee_plus_energy() -> None:
    t = tariff(
        [
            {"price_components": [pc("FLAT", "0.50", 1, "20.0")]},
            {"price_components": [pc("ENERGY", "0.25", 1, "10.0")]},
        ]
    )
    c = cdr([t], [(T0, {"ENERGY": 20, "TIME": 1.0}, "T1")], T0 + timedelta(hours=1))
    assert cost(c) == (D("5.50"), D("6.10"))


@pytest.mark.parametrize(("kwh", "expected"), [(20, ("5.00", "5.50")), (1, ("0.50", "0.55"))])
def test_min_price(kwh: float, expected: tuple[str, str]) -> None:
    t = tariff(
        [{"price_components": [pc("ENERGY", "0.25", 1, "10.0")]}],
        min_price={"excl_vat": 0.50, "incl_vat": 0.55},
    )
    c = cdr([t], [(T0, {"ENERGY": kwh, "TIME": 1.0}, "T1")], T0 + timedelta(hours=1))
    assert cost(c) == (D(expected[0]), D(expected[1]))


def test_parking_and_start_fee() -> None:
    # 20 kWh, parked 40 min after charging, parking billed per 15 min -> 45 min: 7.00 / 7.90
    t = tariff(
        [
            {"price_components": [pc("FLAT", "0.50", 1, "20.0")]},
            {"price_components": [pc("ENERGY", "0.25", 1, "10.0")]},
            {"price_components": [pc("PARKING_TIME", "2.00", 900, "20.0")]},
        ]
    )
    periods, end = charge_then_park(T0, 90, 40, {"ENERGY": 20})
    assert cost(cdr([t], periods, end)) == (D("7.00"), D("7.90"))


@pytest.mark.parametrize(("kwh", "expected"), [(50, ("10.00", "11.00")), (30, ("8.00", "8.85"))])
def test_max_price(kwh: float, expected: tuple[str, str]) -> None:
    t = tariff(
        [
            {"price_components": [pc("FLAT", "0.50", 1, "20.0")]},
            {"price_components": [pc("ENERGY", "0.25", 1, "10.0")]},
        ],
        max_price={"excl_vat": 10.00, "incl_vat": 11.00},
        end_date_time="2019-06-30T23:59:59Z",
    )
    c = cdr([t], [(T0, {"ENERGY": kwh, "TIME": 2.0}, "T1")], T0 + timedelta(hours=2))
    assert cost(c) == (D(expected[0]), D(expected[1]))


def test_two_euro_per_hour() -> None:
    t = tariff([{"price_components": [pc("TIME", "2.00", 60, "10.0")]}])
    periods, end = charge_then_park(T0, 150, 0, {"ENERGY": 10})
    assert cost(cdr([t], periods, end)) == (D("5.00"), D("5.50"))


def test_three_euro_per_hour_five_euro_parking() -> None:
    # 150 min charging + 42 min parking billed per 5 min (45 min): 11.25 / 12.75
    t = tariff(
        [{"price_components": [pc("TIME", "3.00", 60, "10.0"), pc("PARKING_TIME", "5.00", 300, "20.0")]}]
    )
    periods, end = charge_then_park(T0, 150, 42, {"ENERGY": 10})
    assert cost(cdr([t], periods, end)) == (D("11.25"), D("12.75"))


def test_alt_text_tariff_per_five_minutes() -> None:
    t = tariff([{"price_components": [pc("TIME", "1.90", 300, "5.2")]}])
    periods, end = charge_then_park(T0, 150, 0, {"ENERGY": 10})
    assert cost(cdr([t], periods, end)) == (D("4.75"), D("5.00"))


def test_energy_billed_per_100_wh() -> None:
    # 20.45 kWh billed per 0.1 kWh -> 20.5 kWh at 0.25 = 5.125 (the spec's text states 5.50 / 6.05 for this case,
    # which no reading of its own rule gives; see docs/tariffs.md)
    t = tariff([{"price_components": [pc("ENERGY", "0.25", 100, "10.0")]}])
    c = cdr([t], [(T0, {"ENERGY": 20.45, "TIME": 1.0}, "T1")], T0 + timedelta(hours=1))
    b = compute_cost(c)
    assert b.excl_vat == D("20.5") * D("0.25")


COMPLEX = tariff(
    [
        {"price_components": [pc("FLAT", "2.50", 1, "15.0")]},
        {"price_components": [pc("TIME", "1.00", 900, "20.0")], "restrictions": {"max_current": 32.00}},
        {
            "price_components": [pc("TIME", "2.00", 600, "20.0")],
            "restrictions": {
                "min_current": 32.00,
                "day_of_week": ["MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY"],
            },
        },
        {
            "price_components": [pc("TIME", "1.25", 600, "20.0")],
            "restrictions": {"min_current": 32.00, "day_of_week": ["SATURDAY", "SUNDAY"]},
        },
        {
            "price_components": [pc("PARKING_TIME", "5.00", 300, "10.0")],
            "restrictions": {
                "start_time": "09:00",
                "end_time": "18:00",
                "day_of_week": ["MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY"],
            },
        },
        {
            "price_components": [pc("PARKING_TIME", "6.00", 300, "10.0")],
            "restrictions": {"start_time": "10:00", "end_time": "17:00", "day_of_week": ["SATURDAY"]},
        },
    ],
    id="14",
)


def test_complex_tariff_monday() -> None:
    # Monday 09:30, 147 min at max 16 A, 42 min parking: 8.75 / 10.00
    start = datetime(2019, 6, 3, 9, 30, tzinfo=UTC)
    periods = [
        (start, {"TIME": 147 / 60, "CURRENT": 16, "ENERGY": 8}, "14"),
        (start + timedelta(minutes=147), {"PARKING_TIME": 42 / 60}, "14"),
    ]
    c = cdr([COMPLEX], periods, start + timedelta(minutes=189))
    assert cost(c) == (D("8.75"), D("10.00"))


def test_complex_tariff_saturday() -> None:
    # Saturday 13:30, 114 min at min 43 A, 71 min parking: 12.50 / 14.13 (the spec writes "14,13")
    start = datetime(2019, 6, 8, 13, 30, tzinfo=UTC)
    periods = [
        (start, {"TIME": 114 / 60, "CURRENT": 43, "ENERGY": 30}, "14"),
        (start + timedelta(minutes=114), {"PARKING_TIME": 71 / 60}, "14"),
    ]
    c = cdr([COMPLEX], periods, start + timedelta(minutes=185))
    assert cost(c) == (D("12.50"), D("14.13"))


STEP = tariff(
    [
        {
            "price_components": [pc("TIME", "1.20", 1800), pc("PARKING_TIME", "1.00", 900)],
            "restrictions": {"start_time": "00:00", "end_time": "17:00"},
        },
        {
            "price_components": [pc("TIME", "2.40", 900), pc("PARKING_TIME", "1.00", 900)],
            "restrictions": {"start_time": "17:00", "end_time": "20:00"},
        },
        {
            "price_components": [pc("TIME", "2.40", 900)],
            "restrictions": {"start_time": "20:00", "end_time": "23:59"},
        },
    ],
    id="22",
)


def _step_case(hh: int, mm: int, charge: int, park: int) -> Cdr:
    start = datetime(2019, 6, 3, hh, mm, tzinfo=UTC)
    periods: list[tuple[datetime, dict[str, float], str | None]] = [(start, {"TIME": charge / 60}, "22")]
    if park:
        periods.append((start + timedelta(minutes=charge), {"PARKING_TIME": park / 60}, "22"))
    return cdr([STEP], periods, start + timedelta(minutes=charge + park))


def test_step_size_switching_element_1() -> None:
    # 16:55, 10 min charging, 2 min parking: 0.50 - the rounded-up charging time covers the parking
    assert cost(_step_case(16, 55, 10, 2), absorb_parking=True)[0] == D("0.50")
    # without absorption the 2 parking minutes are billed as one 15-minute block
    assert cost(_step_case(16, 55, 10, 2))[0] == D("0.75")


def test_step_size_switching_element_2() -> None:
    # 16:35, 35 min charging: 25 min at 1.20/h + 20 min at 2.40/h = 1.30 (the 1800 s step of the first is unused)
    assert cost(_step_case(16, 35, 35, 0))[0] == D("1.30")


def test_step_size_switching_to_free_parking() -> None:
    # 19:55, 10 min charging, 2 min parking after 20:00 (free): 0.60
    assert cost(_step_case(19, 55, 10, 2), absorb_parking=True)[0] == D("0.60")
    assert cost(_step_case(19, 55, 10, 2))[0] == D("0.60")


def test_max_power_restriction() -> None:
    t = tariff(
        [
            {"price_components": [pc("ENERGY", "0.20", 1)], "restrictions": {"max_power": 16.00}},
            {"price_components": [pc("ENERGY", "0.35", 1)], "restrictions": {"max_power": 32.00}},
            {"price_components": [pc("ENERGY", "0.50", 1)]},
        ]
    )
    periods = [
        (T0, {"ENERGY": 1, "MAX_POWER": 6, "TIME": 1 / 6}, "T1"),
        (T0 + timedelta(minutes=10), {"ENERGY": 40, "MAX_POWER": 48, "TIME": 50 / 60}, "T1"),
        (T0 + timedelta(minutes=60), {"ENERGY": 0.5, "MAX_POWER": 4, "TIME": 7.5 / 60}, "T1"),
    ]
    c = cdr([t], periods, T0 + timedelta(minutes=67.5))
    assert cost(c)[0] == D("20.30")


def test_reservation_fifteen_minutes() -> None:
    t = tariff(
        [
            {
                "price_components": [pc("TIME", "5.00", 60, "20.0")],
                "restrictions": {"reservation": "RESERVATION"},
            },
            {"price_components": [pc("FLAT", "0.50", 1, "20.0"), pc("ENERGY", "0.25", 1, "10.0")]},
        ]
    )
    periods = [
        (T0, {"RESERVATION_TIME": 0.25}, "T1"),
        (T0 + timedelta(minutes=15), {"ENERGY": 20, "TIME": 1}, "T1"),
    ]
    c = cdr([t], periods, T0 + timedelta(minutes=75))
    assert cost(c) == (D("6.75"), D("7.60"))


# ---------------------------------------------------------------- hand-computed cases


NIGHT = tariff(
    [
        {
            "price_components": [pc("TIME", "1.00", 1)],
            "restrictions": {"start_time": "22:00", "end_time": "06:00"},
        },
        {"price_components": [pc("TIME", "3.00", 1)]},
    ]
)


def test_night_rate_across_midnight_in_one_period() -> None:
    # Amsterdam summer (UTC+2): 21:00 -> 01:00 local in ONE period: 1 h at 3.00 + 3 h at 1.00 = 6.00
    start = datetime(2026, 6, 10, 19, 0, tzinfo=UTC)
    c = cdr([NIGHT], [(start, {"TIME": 4.0}, "T1")], start + timedelta(hours=4))
    assert cost(c, "Europe/Amsterdam")[0] == D("6.00")
    # the same instants read in UTC (19:00 -> 23:00): 3 h at 3.00 + 1 h at 1.00 = 10.00
    assert cost(c, "UTC")[0] == D("10.00")


def test_spring_forward_day_has_a_short_night() -> None:
    # 2026-03-29 Europe/Amsterdam: 02:00 -> 03:00. 00:00 -> 08:00 local is 7 real hours; the night rate
    # (until 06:00 local) covers 5 of them: 5 * 1.00 + 2 * 3.00 = 11.00 (a fixed +01:00 offset would say 13.00)
    start = datetime(2026, 3, 28, 23, 0, tzinfo=UTC)
    end = datetime(2026, 3, 29, 6, 0, tzinfo=UTC)
    assert end.astimezone(ZoneInfo("Europe/Amsterdam")).hour == 8
    c = cdr([NIGHT], [(start, {"TIME": 7.0}, "T1")], end)
    assert cost(c, "Europe/Amsterdam")[0] == D("11.00")


def test_fall_back_day_has_a_long_night() -> None:
    # 2026-10-25 Europe/London: 02:00 BST -> 01:00 GMT. 22:00 BST (21:00Z) -> 06:00 GMT (06:00Z) = 9 real hours,
    # all at the night rate: 9.00
    start = datetime(2026, 10, 24, 21, 0, tzinfo=UTC)
    end = datetime(2026, 10, 25, 6, 0, tzinfo=UTC)
    only_night = cdr([NIGHT], [(start, {"TIME": 9.0}, "T1")], end)
    assert cost(only_night, "Europe/London")[0] == D("9.00")
    # one more real hour (06:00 -> 07:00 GMT) is day rate
    longer = cdr([NIGHT], [(start, {"TIME": 10.0}, "T1")], end + timedelta(hours=1))
    assert cost(longer, "Europe/London")[0] == D("12.00")


def test_min_kwh_switches_price_after_threshold() -> None:
    t = tariff(
        [
            {"price_components": [pc("ENERGY", "0.00", 1)], "restrictions": {"max_kwh": 1}},
            {"price_components": [pc("ENERGY", "0.20", 1)]},
        ]
    )
    periods = [
        (T0, {"ENERGY": 1, "TIME": 0.1}, "T1"),
        (T0 + timedelta(minutes=6), {"ENERGY": 19, "TIME": 1}, "T1"),
    ]
    assert cost(cdr([t], periods, T0 + timedelta(minutes=66)))[0] == D("3.80")


def test_step_rounds_energy_up() -> None:
    # 115.2 Wh at 0.25/kWh: step 1 -> 116 Wh (0.029), step 25 -> 125 Wh (0.03125), step 500 -> 500 Wh (0.125)
    t = {s: tariff([{"price_components": [pc("ENERGY", "0.25", s)]}]) for s in (1, 25, 500)}
    got = {
        s: compute_cost(cdr([t[s]], [(T0, {"ENERGY": 0.1152}, "T1")], T0 + timedelta(minutes=1))).excl_vat
        for s in t
    }
    assert got == {1: D("0.029"), 25: D("0.03125"), 500: D("0.125")}


def test_unknown_tariff_and_currency_mismatch_are_input_errors() -> None:
    t = tariff([{"price_components": [pc("ENERGY", "0.25", 1)]}])
    with pytest.raises(InputError, match="unknown tariff"):
        compute_cost(cdr([t], [(T0, {"ENERGY": 1}, "NOPE")], T0 + timedelta(hours=1)))
    usd = tariff([{"price_components": [pc("ENERGY", "0.25", 1)]}], currency="USD")
    with pytest.raises(InputError, match="USD"):
        compute_cost(cdr([usd], [(T0, {"ENERGY": 1}, "T1")], T0 + timedelta(hours=1)))


def test_explanation_names_the_inflated_component() -> None:
    t = tariff([{"price_components": [pc("ENERGY", "0.25", 1, "10.0"), pc("PARKING_TIME", "2.00", 60)]}])
    periods, end = charge_then_park(T0, 60, 30, {"ENERGY": 20})
    c = cdr(
        [t],
        periods,
        end,
        total=(7.00, None),
        total_energy_cost={"excl_vat": 5.00},
        total_parking_cost={"excl_vat": 2.00},
    )
    found = {(d.what, d.vat): d for d in explain_difference(c, compute_cost(c))}
    assert set(found) == {("total", "excl"), ("PARKING_TIME", "excl")}
    assert found["PARKING_TIME", "excl"].expected == D("1.00")
    assert found["PARKING_TIME", "excl"].as_evidence()["periods"][0]["period"] == 1
