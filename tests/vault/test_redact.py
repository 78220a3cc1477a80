"""Tests for the redaction layer: what must be removed, what must pass unchanged, and that it never raises."""

from __future__ import annotations

import io
import logging

import pytest
import structlog
from hypothesis import given, settings
from hypothesis import strategies as st

from chargeguard.vault.pseudonyms import Pseudonymiser
from chargeguard.vault.redact import (
    SECRET_KEYS,
    RedactingFilter,
    redact_event_dict,
    redact_text,
    redact_url,
    redact_value,
)

PSEUDO = Pseudonymiser({1: b"k" * 32}, 1)
A_PSEUDONYM = PSEUDO("04A2B3C4D5E6F7")


# --- redact_url


@pytest.mark.parametrize(
    ("url", "safe", "found"),
    [
        ("https://user:pw@fw.example.com/f.bin", "https://fw.example.com/f.bin", True),
        ("ftp://anon@ftp.example.com:2121/x", "ftp://ftp.example.com:2121/x", True),
        (
            "https://fw.example.com/f.bin?password=s3&v=2",
            "https://fw.example.com/f.bin?password=REDACTED&v=2",
            True,
        ),
        ("https://h/x?token=abc;lang=en", "https://h/x?token=REDACTED;lang=en", True),
        (
            "https://h/x?X-Amz-Signature=ab12&X-Amz-Credential=AK%2F1",
            "https://h/x?X-Amz-Signature=REDACTED&X-Amz-Credential=REDACTED",
            True,
        ),
        ("https://fw.example.com/f.bin?v=2", "https://fw.example.com/f.bin?v=2", False),
        ("https://fw.example.com/path/with@sign", "https://fw.example.com/path/with@sign", False),
        ("not a url at all", "not a url at all", False),
        ("", "", False),
    ],
)
def test_redact_url(url: str, safe: str, found: bool) -> None:
    assert redact_url(url) == (safe, found)


def test_redact_url_survives_urls_urllib_refuses() -> None:
    safe, found = redact_url("http://user:secretpw@[::1/x?password=pw2")
    assert "secretpw" not in safe and "pw2" not in safe
    assert found


@given(st.text())
@settings(max_examples=300, deadline=None)
def test_redact_url_never_raises_and_removes_userinfo(text: str) -> None:
    safe, _found = redact_url(text)
    assert isinstance(safe, str)
    safe2, found2 = redact_url("https://alice:Pa55w0rdXyz@" + text.replace("@", "").replace("/", "") + "/p")
    assert "Pa55w0rdXyz" not in safe2 and found2


# --- redact_text: what is removed

POSITIVES = [
    ('[2, "19223201", "Authorize", {"idTag": "DEADBEEF0099"}]', "DEADBEEF0099"),
    ("Authorize rejected for 04A2B3C4D5E6F7", "04A2B3C4D5E6F7"),
    ("Authorize rejected for 04a2b3c4", "04a2b3c4"),
    ("ten-byte uid 04A2B3C4D5E6F7A8B9C0 seen", "04A2B3C4D5E6F7A8B9C0"),
    ("card 04:A2:B3:C4 seen", "04:A2:B3:C4"),
    ("card 04-a2-b3-c4-d5-e6-f7 seen", "04-a2-b3-c4-d5-e6-f7"),
    ("card 04 A2 B3 C4 seen", "04 A2 B3 C4"),
    ("card 12:34:56:78 seen", "12:34:56:78"),
    ("contract DE-8EO-C12345678-X charged", "DE-8EO-C12345678-X"),
    ("contract DE8EOC12345678X charged", "DE8EOC12345678X"),
    ("contract NL*TNM*012345678 charged", "NL*TNM*012345678"),
    ("contract de-8eo-c12345678-x charged", "de-8eo-c12345678-x"),
    ("GET /ocpi/2.2.1/tokens/NL/TNM/ab-9912/authorize?type=RFID 200", "ab-9912"),
    ("POST /ocpi/emsp/2.2.1/tokens/someuid77/authorize", "someuid77"),
    ("uid=AnyShapeAtAll99 rejected", "AnyShapeAtAll99"),
    ("{'idTag': 'plain-card-name'}", "plain-card-name"),
    ('"contract_id": "NL-TNM-000122045-U"', "NL-TNM-000122045-U"),
    ('"visual_number": "DF000-2001-8999"', "DF000-2001-8999"),
    ('"parentIdTag":"GROUPTAG1"', "GROUPTAG1"),
    ("Authorization: Basic Q1AtMDAwMTpzM2NyM3Q=", "Q1AtMDAwMTpzM2NyM3Q="),
    ("authorization=Token ebf3b399-779f-4497-9b9d-ac6ad3cc44d2", "ebf3b399-779f-4497-9b9d-ac6ad3cc44d2"),
    ("header Basic Q1AtMDAwMTpzM2NyM3Q=", "Q1AtMDAwMTpzM2NyM3Q="),
    ("login password=hunter2!x failed", "hunter2!x"),
    ('{"apnPassword": "apn-pw-1", "simPin": 4711}', "apn-pw-1"),
    ('{"apnPassword": "apn-pw-1", "simPin": 4711}', "4711"),
    ('AuthorizationKey: "00112233445566778899"', "00112233445566778899"),
    ("ChangeConfiguration AuthorizationKey=AABBCCDDEEFF0011", "AABBCCDDEEFF0011"),
    ('{"key": "AuthorizationKey", "readonly": false, "value": "s3cretValue"}', "s3cretValue"),
    ('{"value": "s3cretValue", "key": "AuthorizationKey"}', "s3cretValue"),
    (
        '[{"attributeValue": "pw-long-enough-16", "component": {"name": "SecurityCtrlr"},'
        ' "variable": {"name": "BasicAuthPassword"}}]',
        "pw-long-enough-16",
    ),
    ("firmware at https://cp:firmwarepw@fw.example.com/a.bin", "firmwarepw"),
    ("log upload https://h.example/up?sig=SASSIG123&sv=2020", "SASSIG123"),
]


@pytest.mark.parametrize(("text", "secret"), POSITIVES)
def test_redact_text_removes(text: str, secret: str) -> None:
    out = redact_text(text)
    assert secret not in out
    assert out != text


def test_redact_text_names_the_kind_and_keeps_context() -> None:
    out = redact_text('[2, "19223201", "Authorize", {"idTag": "04A2B3C4D5E6F7"}]')
    assert out == '[2, "19223201", "Authorize", {"idTag": "[redacted:token]"}]'
    assert redact_text("card 04A2B3C4D5E6F7 at CP-0001") == "card [redacted:rfid] at CP-0001"
    assert redact_text("DE-8EO-C12345678-X") == "[redacted:emaid]"
    assert redact_text("password: 'x y'") == "password: '[redacted:secret]'"


# --- redact_text: what passes unchanged

NEGATIVES = [
    '[2, "19223201", "Heartbeat", {}]',
    '[2, "a1b2c3d4", "Heartbeat", {}]',
    '[3, "a1b2c3d4e5f6a7", {"currentTime": "2026-03-01T08:00:00.123Z"}]',
    "message_id=a1b2c3d4 transactionId=0badc0de01 request_id: 9f8e7d6c",
    "frame 550e8400-e29b-41d4-a716-446655440000 ok",
    "sha256 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "sha1 da39a3ee5e6b4b0d3255bfef95601890afd80709 and md5 d41d8cd98f00b204e9800998ecf8427e",
    "at 2026-03-01T08:00:00Z and 2026-03-01 08:00:00+01:00 and 08:00:00",
    f"token_ref {A_PSEUDONYM} charged 12.5 kWh",
    f'{{"idTag": "{A_PSEUDONYM}"}}',
    f"GET /ocpi/2.2.1/tokens/NL/TNM/{A_PSEUDONYM}/authorize",
    "station CP-0001 connector 1 energy 12345678 Wh 99999999",
    "deadbeef cafebabe 12345678 0xDEADBEEF 1.2.3",
    "The station sent BootNotification with firmwareVersion 4.2.0-rc1 and Configuration Authorizations",
    "meter 12 34 56 78 values",
    "MAC 00:1A:2B:3C:4D:5E is six bytes",
    '{"idTag": null, "uid": ""}',
    "https://csms.example.com/ocpp/CP-0001",
    "",
]


@pytest.mark.parametrize("text", NEGATIVES)
def test_redact_text_leaves_alone(text: str) -> None:
    assert redact_text(text) == text


@given(st.uuids())
def test_uuids_pass_in_any_case(value: object) -> None:
    text = f"id {value} / {str(value).upper()}"
    assert redact_text(text) == text


@given(st.binary(min_size=20, max_size=32))
def test_hashes_pass(raw: bytes) -> None:
    import hashlib

    sha256, sha1 = hashlib.sha256(raw).hexdigest(), hashlib.sha1(raw).hexdigest()
    text = f"{sha256} {sha1} {sha256.upper()} {hashlib.md5(raw).hexdigest()}"
    assert redact_text(text) == text


@given(st.binary(min_size=0, max_size=30))
def test_pseudonyms_pass(raw: bytes) -> None:
    pseudonym = PSEUDO(raw.hex() or "x")
    text = f'{{"idTag": "{pseudonym}", "note": "{pseudonym}"}}'
    assert redact_text(text) == text


@given(st.binary(min_size=1, max_size=10).filter(lambda b: len(b) in (4, 7, 10)))
def test_any_rfid_with_separators_is_removed(uid: bytes) -> None:
    text = ":".join(f"{b:02X}" for b in uid)
    assert text not in redact_text(f"seen {text} at CP-1")


@given(st.text(max_size=400))
@settings(max_examples=500, deadline=None)
def test_redact_text_never_raises_and_is_idempotent(text: str) -> None:
    once = redact_text(text)
    assert isinstance(once, str)
    assert redact_text(once) == once


@given(st.text(alphabet="{}[]\"':=,/ \\tokenidTaguuidpassword0123456789ABCDEF-*@?&", max_size=300))
@settings(max_examples=500, deadline=None)
def test_redact_text_never_raises_on_structure_soup(text: str) -> None:
    assert isinstance(redact_text(text), str)


def test_secret_keys_cover_station_passwords() -> None:
    assert {"AuthorizationKey", "BasicAuthPassword"} <= SECRET_KEYS


# --- structured values and logging


def test_redact_value_pseudonymises_token_fields_and_marks_secrets() -> None:
    payload = {
        "idToken": {"idToken": "04A2B3C4D5E6F7", "type": "ISO14443"},
        "networkProfile": {"apn": {"apn": "internet", "apnPassword": "pw", "simPin": 1234}},
        "configurationKey": [{"key": "AuthorizationKey", "readonly": False, "value": "AABB"}],
        "location": "https://u:p@h/x",
        "text": "vendor data card 04:A2:B3:C4",
    }
    out = redact_value(payload, pseudonymise=PSEUDO)
    assert out["idToken"]["idToken"] == PSEUDO("04A2B3C4D5E6F7")
    assert out["idToken"]["type"] == "ISO14443"
    assert out["networkProfile"]["apn"] == {
        "apn": "internet",
        "apnPassword": "[redacted:secret]",
        "simPin": "[redacted:secret]",
    }
    assert out["configurationKey"][0]["value"] == "[redacted:secret]"
    assert out["location"] == "https://h/x"
    assert out["text"] == "vendor data card [redacted:rfid]"
    assert payload["idToken"]["idToken"] == "04A2B3C4D5E6F7"  # input untouched
    assert redact_value({"idTag": "X1"})["idTag"] == "[redacted:token]"
    assert redact_value({"token": A_PSEUDONYM, "password": A_PSEUDONYM}) == {
        "token": A_PSEUDONYM,
        "password": A_PSEUDONYM,
    }
    assert redact_value({"token": "s3cr3t"}) == {"token": "[redacted:secret]"}
    assert redact_value({"tokens": {"04A2B3C4D5E6F7": 3, A_PSEUDONYM: 2}}) == {
        "tokens": {"[redacted:rfid]": 3, A_PSEUDONYM: 2}
    }
    assert redact_value({"token_ref": "04A2B3C4D5E6F7"}) == {"token_ref": "[redacted:rfid]"}


def test_structlog_processor_redacts_every_string() -> None:
    out = io.StringIO()
    structlog.reset_defaults()  # other tests may have configured a level filter
    structlog.configure(
        processors=[redact_event_dict, structlog.processors.JSONRenderer()],
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
    try:
        log = structlog.get_logger()
        log.info(
            "gateway.frame.rejected",
            detail="idTag 04A2B3C4D5E6F7 unknown",
            password="hunter2",
            nested={"uid": "ABC123XYZ", "list": ["DE-8EO-C12345678-X"]},
            message_id="a1b2c3d4",
        )
    finally:
        structlog.reset_defaults()
    line = out.getvalue()
    for secret in ("04A2B3C4D5E6F7", "hunter2", "ABC123XYZ", "DE-8EO-C12345678-X"):
        assert secret not in line
    assert "gateway.frame.rejected" in line and "a1b2c3d4" in line


def test_logging_filter_redacts_message_args_extras_and_exceptions() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s %(card)s"))
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("chargeguard.test.redact")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        try:
            raise ValueError("bad card 04:A2:B3:C4:D5:E6:F7")
        except ValueError:
            logger.exception(
                "rejected %s with %s", "04A2B3C4", "password=pw1", extra={"card": "04A2B3C4D5E6F7"}
            )
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    for secret in ("04A2B3C4", "pw1", "04A2B3C4D5E6F7", "04:A2:B3:C4:D5:E6:F7"):
        assert secret not in text
    assert "ValueError" in text and "rejected [redacted:rfid]" in text
