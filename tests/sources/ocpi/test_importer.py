"""OCPI file import: arrays, envelopes and JSON Lines; bad records named and counted; tokens pseudonymised."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from chargeguard.errors import InputError
from chargeguard.sources.ocpi.importer import import_file
from chargeguard.sources.ocpi.models import Cdr, Token
from chargeguard.sources.ocpi.normalize import StationMapping, cdr_event, token_event
from chargeguard.vault.pseudonyms import Pseudonymiser

P = Pseudonymiser({1: b"k" * 32}, 1)
RAW_UID = "04A2B3C4D5E6F7"
RAW_CONTRACT = "DE8ACC12E46L89"


def a_cdr(i: int = 1, **extra: Any) -> dict[str, Any]:
    return {
        "country_code": "BE",
        "party_id": "BEC",
        "id": f"CDR{i}",
        "start_date_time": "2015-06-29T21:39:09Z",
        "end_date_time": "2015-06-29T23:37:32Z",
        "cdr_token": {
            "country_code": "DE",
            "party_id": "TNM",
            "uid": RAW_UID,
            "type": "RFID",
            "contract_id": RAW_CONTRACT,
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
        "charging_periods": [
            {
                "start_date_time": "2015-06-29T21:39:09Z",
                "dimensions": [{"type": "TIME", "volume": 1.973}],
                "tariff_id": "12",
            }
        ],
        "total_cost": {"excl_vat": 4.00, "incl_vat": 4.40},
        "total_energy": 15.342,
        "total_time": 1.973,
        "last_updated": "2015-06-29T23:38:00Z",
        **extra,
    }


def a_token() -> dict[str, Any]:
    return {
        "country_code": "DE",
        "party_id": "TNM",
        "uid": RAW_UID,
        "type": "RFID",
        "contract_id": RAW_CONTRACT,
        "visual_number": "DF000-2001-8999-1",
        "issuer": "TheNewMotion",
        "valid": False,
        "whitelist": "ALLOWED",
        "last_updated": "2015-06-29T20:00:00Z",
    }


def test_jsonl_bad_records_are_named_counted_and_the_rest_imported(tmp_path: Path) -> None:
    bad_missing = a_cdr(2)
    del bad_missing["total_cost"]
    lines = [
        orjson.dumps(a_cdr(1)),
        orjson.dumps(bad_missing),
        b"{not json",
        orjson.dumps(a_cdr(4, currency="EURO")),
    ]
    path = tmp_path / "cdrs.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    result = import_file(path, "cdr", P)
    assert [c.id for c in result.objects] == ["CDR1"]
    assert result.bad == 3
    messages = [str(e) for e in result.errors]
    assert "record 1 (cdr CDR2)" in messages[0] and "total_cost" in messages[0]
    assert "record 2" in messages[1]
    assert "record 3 (cdr CDR4)" in messages[2] and "currency" in messages[2]


def test_array_and_envelope_and_pseudonyms(tmp_path: Path) -> None:
    array = tmp_path / "a.json"
    array.write_bytes(orjson.dumps([a_cdr(1), a_cdr(2)]))
    envelope = tmp_path / "e.json"
    envelope.write_bytes(
        orjson.dumps({"data": [a_cdr(3)], "status_code": 1000, "timestamp": "2015-06-30T00:00:00Z"})
    )
    cdrs: list[Cdr] = import_file(array, "cdr", P).objects + import_file(envelope, "cdr", P).objects
    assert [c.id for c in cdrs] == ["CDR1", "CDR2", "CDR3"]
    assert {c.cdr_token.uid for c in cdrs} == {P.pseudonymise(RAW_UID)}
    assert {c.cdr_token.contract_id for c in cdrs} == {P.pseudonymise(RAW_CONTRACT)}
    event = cdr_event(cdrs[0], StationMapping())
    assert event.station == "3256" and event.key == "BE*BEC/CDR1" and event.token_party == "DE*TNM"
    assert event.energy_wh == pytest.approx(15342.0)
    assert RAW_UID not in repr(event) and RAW_CONTRACT not in repr(event)
    assert cdr_event(cdrs[0], StationMapping(mode="evse_id")).station == "BE*BEC*E041503003"


def test_token_errors_never_show_the_uid(tmp_path: Path) -> None:
    good = a_token()
    bad = {**a_token(), "whitelist": "SOMETIMES"}
    path = tmp_path / "tokens.jsonl"
    path.write_bytes(orjson.dumps(good) + b"\n" + orjson.dumps(bad) + b"\n")
    result = import_file(path, "token", P)
    token: Token = result.objects[0]
    assert token.uid == P.pseudonymise(RAW_UID) and token.visual_number == P.pseudonymise("DF000-2001-8999-1")
    assert RAW_UID not in str(result.errors[0]) and P.pseudonymise(RAW_UID) in str(result.errors[0])
    assert token_event(token).valid is False


def test_unreadable_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read"):
        import_file(tmp_path / "missing.json", "cdr", P)
    broken = tmp_path / "broken.json"
    broken.write_bytes(b'[{"id": 1},')
    with pytest.raises(InputError, match="not a JSON array"):
        import_file(broken, "cdr", P)


def test_jsonl_shapes_streamed_with_line_numbers(tmp_path: Path) -> None:
    from chargeguard.sources.ocpi.importer import iter_located

    big = a_cdr(
        1, remark="x" * 200, charging_periods=[a_cdr(1)["charging_periods"][0]] * 400
    )  # > 64 KiB line
    path = tmp_path / "crlf.jsonl"
    path.write_bytes(
        b"\r\n\r\n" + orjson.dumps(big) + b"\r\n  \r\n" + orjson.dumps(a_cdr(2)) + b"\r\n{broken"
    )
    located = list(iter_located(path))
    assert [(i, where.rsplit("/", 1)[1]) for i, _, where in located] == [
        (0, "crlf.jsonl:3 record 0"), (1, "crlf.jsonl:5 record 1"), (2, "crlf.jsonl:6 record 2"),
    ]  # fmt: skip
    assert all(not raw.endswith(b"\r") for _, raw, _ in located)
    assert [c.id for c in import_file(path, "cdr", P).objects] == ["CDR1", "CDR2"]
    single = tmp_path / "one.json"
    single.write_bytes(b"\n" + orjson.dumps(a_cdr(3)) + b"\n\n")
    assert [c.id for c in import_file(single, "cdr", P).objects] == ["CDR3"]
    pretty = tmp_path / "pretty.json"
    pretty.write_bytes(orjson.dumps([a_cdr(4), a_cdr(5)], option=orjson.OPT_INDENT_2))
    assert [c.id for c in import_file(pretty, "cdr", P).objects] == ["CDR4", "CDR5"]


def test_inconsistent_records_are_bad_but_credits_may_reverse_energy(tmp_path: Path) -> None:
    path = tmp_path / "cdrs.json"
    path.write_bytes(
        orjson.dumps(
            [
                a_cdr(1, end_date_time="2015-06-29T20:00:00Z"),  # ends before it starts
                a_cdr(2, total_energy=-15.342),  # negative energy on an ordinary CDR
                a_cdr(
                    3, total_energy=-15.342, credit=True, credit_reference_id="CDR2"
                ),  # a credit reverses it
                a_cdr(4, end_date_time="2015-06-29T23:37:32+02:00"),  # 21:37:32Z: an offset is an instant
            ]
        )
    )
    result = import_file(path, "cdr", P)
    assert [c.id for c in result.objects] == ["CDR3"]
    messages = [str(e) for e in result.errors]
    assert "record 0 (cdr CDR1): invalid OCPI cdr: end_date_time is before start_date_time" in messages[0]
    assert "record 1 (cdr CDR2): invalid OCPI cdr: total_energy is negative" in messages[1]
    assert "record 3 (cdr CDR4)" in messages[2]
