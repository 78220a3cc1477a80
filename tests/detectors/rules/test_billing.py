"""Billing (OCPI) detectors: cases that must fire and near-misses that must not; the OCPI token-blame hook."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest

from chargeguard.detectors.base import DetectorContext
from chargeguard.detectors.rules.billing import (
    DETECTORS,
    CdrDuplicate,
    CdrEnergyMismatch,
    CdrOrphan,
    SessionUnbilled,
)
from chargeguard.detectors.rules.billing_price import CdrPartyMismatch, CdrPriceMismatch
from chargeguard.detectors.rules.billing_tokens import TokenBook
from chargeguard.errors import ConfigError
from chargeguard.events import TransactionEnded
from chargeguard.sources.ocpi.events import CdrReceived, TokenStatus
from chargeguard.sources.ocpi.models import Cdr, Tariff
from chargeguard.sources.ocpi.normalize import StationMapping, cdr_event, tariff_event
from chargeguard.testing import an_event, make_detector, run_detector

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
TOKEN = "tok1_aaaaaaaaaaaaaaa"
TARIFF: dict[str, Any] = {
    "country_code": "BE", "party_id": "BEC", "id": "T1", "currency": "EUR", "last_updated": "2026-01-01T00:00:00Z",
    "elements": [{"price_components": [{"type": "ENERGY", "price": 0.25, "step_size": 1, "vat": 10.0}]}],
}  # fmt: skip


def a_cdr(
    cdr_id: str = "C1",
    *,
    start: datetime = T0,
    minutes: float = 60,
    kwh: float = 20.0,
    cost: float = 5.0,
    party: str = "BE*BEC",
    token_party: str = "DE*TNM",
    evse: str = "EVSE-1",
    tariffs: list[dict[str, Any]] | None = None,
    **extra: Any,
) -> CdrReceived:
    cc, pid = party.split("*")
    tcc, tpid = token_party.split("*")
    end = start + timedelta(minutes=minutes)
    raw = {
        "country_code": cc, "party_id": pid, "id": cdr_id,
        "start_date_time": start.isoformat(), "end_date_time": end.isoformat(),
        "cdr_token": {"country_code": tcc, "party_id": tpid, "uid": TOKEN, "type": "RFID", "contract_id": TOKEN},
        "auth_method": extra.pop("auth_method", "WHITELIST"),
        "cdr_location": {"id": "LOC1", "address": "a", "city": "c", "country": "BEL",
                         "coordinates": {"latitude": "51.0", "longitude": "3.7"}, "evse_uid": evse,
                         "evse_id": f"BE*BEC*E{evse}", "connector_id": "1", "connector_standard": "IEC_62196_T2",
                         "connector_format": "SOCKET", "connector_power_type": "AC_3_PHASE"},
        "currency": "EUR",
        "tariffs": [TARIFF] if tariffs is None else tariffs,
        "charging_periods": [{"start_date_time": start.isoformat(), "tariff_id": "T1",
                              "dimensions": [{"type": "ENERGY", "volume": kwh},
                                             {"type": "TIME", "volume": minutes / 60}]}],
        "total_cost": {"excl_vat": cost},
        "total_energy": kwh, "total_time": minutes / 60,
        "last_updated": (end + timedelta(minutes=5)).isoformat(),
        **extra,
    }  # fmt: skip
    return cdr_event(msgspec.convert(raw, Cdr), StationMapping())


def a_transaction(
    start: datetime = T0, minutes: float = 60, kwh: float = 20.0, station: str = "EVSE-1"
) -> Any:
    end = start + timedelta(minutes=minutes)
    return an_event(
        TransactionEnded, ts=end, at=end, station=station, transaction_id="77", token_ref=TOKEN, started_at=start,
        meter_start_wh=1000.0, meter_stop_wh=1000.0 + kwh * 1000,
    )  # fmt: skip


def kinds_of(detector: Any, events: list[Any]) -> list[str]:
    return [a.kind for a in run_detector(detector, sorted(events, key=lambda e: e.ts))]


def test_registry_tuple_lists_seven_detectors_with_distinct_kinds() -> None:
    kinds = [k for d in DETECTORS for k in d.info.kinds]
    assert sorted(kinds) == sorted(
        ["cdr.duplicate", "cdr.orphan", "cdr.energy_mismatch", "cdr.price_mismatch", "session.unbilled",
         "cdr.party_mismatch", "token.unauthorized_charging"]
    )  # fmt: skip


# ---------------------------------------------------------------- cdr.duplicate


def test_duplicate_fires_on_same_charging_under_another_id() -> None:
    alerts = run_detector(
        make_detector(CdrDuplicate), [a_cdr("C1"), a_cdr("C2", start=T0 + timedelta(seconds=90))]
    )
    assert [a.kind for a in alerts] == ["cdr.duplicate"]
    assert alerts[0].evidence["first"] == "BE*BEC/C1" and alerts[0].token_ref == TOKEN


@pytest.mark.parametrize(
    "second",
    [
        a_cdr("C1"),  # the same CDR pushed again
        a_cdr("C2", start=T0 + timedelta(minutes=20)),  # another session later
        a_cdr("C2", kwh=25.0),  # different energy
        a_cdr("C2", evse="EVSE-2"),  # another EVSE
    ],
)
def test_duplicate_near_misses(second: CdrReceived) -> None:
    assert kinds_of(make_detector(CdrDuplicate), [a_cdr("C1"), second]) == []


def test_duplicate_needs_the_same_window_not_one_charging_after_the_other() -> None:
    # Dundee: a driver re-plugging a minute later, 0 kWh twice - two short sessions in a row, not a double bill
    first = a_cdr("C1", minutes=1, kwh=0.0, cost=0.0)
    again = a_cdr("C2", start=T0 + timedelta(minutes=2), minutes=1.5, kwh=0.0, cost=0.0)
    assert kinds_of(make_detector(CdrDuplicate), [first, again]) == []
    assert kinds_of(make_detector(CdrDuplicate, min_overlap=0.0), [first, again]) == ["cdr.duplicate"]
    # the same short charging billed again under another id still fires
    same = a_cdr("C3", start=T0 + timedelta(seconds=10), minutes=1, kwh=0.0, cost=0.0)
    assert kinds_of(make_detector(CdrDuplicate), [first, same]) == ["cdr.duplicate"]


def test_credit_and_reissue_are_legitimate() -> None:
    credit = a_cdr("C1-CREDIT", cost=-5.0, credit=True, credit_reference_id="C1")
    reissue = a_cdr("C1-FIX", cost=4.5)
    events = [a_cdr("C1"), credit, reissue]
    assert kinds_of(make_detector(CdrDuplicate), events) == []
    # a re-issue without the credit is a second bill
    assert kinds_of(make_detector(CdrDuplicate), [a_cdr("C1"), reissue]) == ["cdr.duplicate"]


# ---------------------------------------------------------------- cdr.orphan / cdr.energy_mismatch


def test_orphan_fires_when_the_station_reports_transactions_but_none_behind_the_cdr() -> None:
    events = [a_transaction(T0 - timedelta(hours=5)), a_cdr("C1")]
    alerts = run_detector(make_detector(CdrOrphan), events)
    assert [a.kind for a in alerts] == ["cdr.orphan"] and alerts[0].transactions == ("BE*BEC/C1",)


def test_orphan_near_misses() -> None:
    # a transaction behind it (reported after the CDR, within the grace) / a station with no OCPP data at all
    late_tx = a_transaction(T0 + timedelta(minutes=2))
    assert kinds_of(make_detector(CdrOrphan), [a_cdr("C1"), late_tx]) == []
    assert kinds_of(make_detector(CdrOrphan), [a_transaction(T0, station="OTHER"), a_cdr("C1")]) == []


def test_energy_mismatch_fires_on_inflated_cdr_energy_and_not_within_tolerance() -> None:
    alerts = run_detector(make_detector(CdrEnergyMismatch), [a_transaction(kwh=20.0), a_cdr("C1", kwh=26.0)])
    assert [a.kind for a in alerts] == ["cdr.energy_mismatch"]
    assert alerts[0].evidence["difference_wh"] == pytest.approx(6000.0)
    assert kinds_of(make_detector(CdrEnergyMismatch), [a_transaction(kwh=20.0), a_cdr("C1", kwh=20.2)]) == []


# ---------------------------------------------------------------- cdr.price_mismatch


def test_price_mismatch_explains_the_component() -> None:
    alerts = run_detector(make_detector(CdrPriceMismatch), [a_cdr("C1", kwh=20.0, cost=7.0)])
    assert [a.kind for a in alerts] == ["cdr.price_mismatch"]
    total = alerts[0].evidence["differences"][0]
    assert (total["what"], total["expected"], total["billed"]) == ("total", "5.0000", "7.0000")
    assert alerts[0].evidence["direction"] == "overbilled"


def test_price_mismatch_near_misses_and_published_tariffs() -> None:
    assert kinds_of(make_detector(CdrPriceMismatch), [a_cdr("C1", kwh=20.0, cost=5.02)]) == []
    # tariff not embedded: unpriceable until the CPO's Tariff is known, then checked
    detector = make_detector(CdrPriceMismatch)
    assert kinds_of(detector, [a_cdr("C1", cost=9.0, tariffs=[])]) == []
    assert detector.unpriceable == 1  # type: ignore[attr-defined]
    published = tariff_event(msgspec.convert(TARIFF, Tariff))
    assert kinds_of(make_detector(CdrPriceMismatch), [published, a_cdr("C2", cost=9.0, tariffs=[])]) == [
        "cdr.price_mismatch"
    ]


# ---------------------------------------------------------------- session.unbilled


def test_unbilled_fires_after_the_grace_period() -> None:
    detector = make_detector(SessionUnbilled, grace_s=3600.0)
    other_station_cdr = a_cdr("C9", evse="EVSE-9", start=T0 + timedelta(hours=3))
    alerts = run_detector(detector, [a_transaction(kwh=12.0), other_station_cdr])
    assert [a.kind for a in alerts] == ["session.unbilled"] and alerts[0].station == "EVSE-1"


def test_unbilled_near_misses() -> None:
    billed = [
        a_transaction(kwh=12.0),
        a_cdr("C1", kwh=12.0),
        a_cdr("C9", evse="EVSE-9", start=T0 + timedelta(hours=30)),
    ]
    assert kinds_of(make_detector(SessionUnbilled), billed) == []
    # no CDRs in the input at all: no evidence either way
    assert (
        kinds_of(
            make_detector(SessionUnbilled, grace_s=60.0),
            [a_transaction(), a_transaction(T0 + timedelta(hours=5))],
        )
        == []
    )
    # not yet past the grace at end of stream
    assert kinds_of(make_detector(SessionUnbilled), [a_transaction(), a_cdr("C9", evse="EVSE-9")]) == []


# ---------------------------------------------------------------- cdr.party_mismatch


def test_party_mismatch() -> None:
    def run(cdr: CdrReceived, *agreements: str) -> list[str]:
        return kinds_of(make_detector(CdrPartyMismatch, agreements=list(agreements)), [cdr])

    assert run(a_cdr(), "BE*BEC/DE*TNM") == []
    assert run(a_cdr(), "BE*BEC/*") == []
    assert run(a_cdr()) == []  # no agreements configured: off
    assert run(a_cdr(token_party="NL*XYZ"), "BE*BEC/DE*TNM") == ["cdr.party_mismatch"]
    assert run(a_cdr(party="FR*EVL"), "BE*BEC/DE*TNM") == ["cdr.party_mismatch"]
    with pytest.raises(ConfigError):
        make_detector(CdrPartyMismatch, agreements=["BE*BEC"])


# ---------------------------------------------------------------- token.unauthorized_charging (OCPI hook)


def status(valid: bool, whitelist: str, at: datetime, received: datetime | None = None) -> TokenStatus:
    return TokenStatus(ts=at, station=None, token_party="DE*TNM", token_ref=TOKEN, valid=valid, whitelist=whitelist,
                       received_at=received)  # fmt: skip


def test_token_book_blames_the_right_party() -> None:
    def verdict(*updates: TokenStatus, auth: str = "WHITELIST") -> tuple[str, str] | None:
        book = TokenBook(DetectorContext())
        for u in updates:
            book.record(u)
        v = book.assess(a_cdr(auth_method=auth))
        return None if v is None else (v.blame, v.whitelist)

    hour = timedelta(hours=1)
    assert verdict(status(True, "ALLOWED", T0 - hour)) is None
    assert verdict(status(False, "ALLOWED", T0 + hour)) is None  # blocked only after the start
    assert verdict(status(False, "ALWAYS", T0 - hour)) == ("cpo", "ALWAYS")
    assert verdict(status(False, "ALWAYS", T0 - hour, received=T0 + hour)) == ("emsp", "ALWAYS")
    assert verdict(status(False, "NEVER", T0 - hour), auth="AUTH_REQUEST") == ("emsp", "NEVER")
    assert verdict(status(False, "NEVER", T0 - hour, received=T0 + hour)) == ("cpo", "NEVER")
    assert verdict(status(False, "ALLOWED", T0 - 2 * hour), status(True, "ALLOWED", T0 - hour)) is None
