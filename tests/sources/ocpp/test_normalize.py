"""Normalisation: OCPP 1.6J and 2.0.1 sessions assemble into transactions; tokens and secrets never leak."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from chargeguard.events import (
    AuthorizationDecision,
    ClockReading,
    CommandIssued,
    ConfigurationChange,
    MeterSample,
    ProtocolViolation,
    StationBooted,
    TransactionEnded,
    TransactionStarted,
)
from chargeguard.sim.exchange import MessageIds, SessionPlan, session_lines
from chargeguard.vault.pseudonyms import Pseudonymiser

from .conftest import normalise

START = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
TOKEN = "04A2B3C4D5E6F7"


def _plan(ocpp: str, **kw: Any) -> SessionPlan:
    base: dict[str, Any] = dict(
        station="CP-1",
        ocpp=ocpp,
        connector_id=2,
        evse_id=1,
        token=TOKEN,
        transaction_id="4711",
        start=START,
        end=START + timedelta(minutes=50),
        energy_wh=9000.0,
        meter_start_wh=120_000.0,
    )
    base.update(kw)
    return SessionPlan(**base)


@pytest.mark.parametrize("ocpp", ["1.6", "2.0.1"])
def test_session_assembles_into_one_transaction(ocpp: str, pseudo: Pseudonymiser) -> None:
    lines = session_lines(_plan(ocpp), rng=random.Random(1), ids=MessageIds(1))
    events = normalise(lines, pseudo)
    started = [e for e in events if isinstance(e, TransactionStarted)]
    ended = [e for e in events if isinstance(e, TransactionEnded)]
    assert len(started) == 1 and len(ended) == 1
    assert not [e for e in events if isinstance(e, ProtocolViolation)]
    end = ended[0]
    assert end.token_ref == pseudo(TOKEN)
    assert end.energy_wh == pytest.approx(9000.0, abs=2.0)
    assert end.meter_start_wh == pytest.approx(120_000.0, abs=1.0)
    assert end.samples >= 5 and end.charging_seen
    assert end.connector == ("2" if ocpp == "1.6" else "1/2")
    assert end.started_at is not None and end.duration_s == pytest.approx(50 * 60, abs=180)
    samples = [e for e in events if isinstance(e, MeterSample)]
    assert all(s.transaction_id == end.transaction_id for s in samples if s.energy_wh is not None)
    decisions = [e for e in events if isinstance(e, AuthorizationDecision)]
    assert decisions and all(d.status == "Accepted" and d.token_ref == pseudo(TOKEN) for d in decisions)


@pytest.mark.parametrize("ocpp", ["1.6", "2.0.1"])
def test_refused_token_that_charges_carries_the_refusal(ocpp: str, pseudo: Pseudonymiser) -> None:
    lines = session_lines(_plan(ocpp, auth_status="Blocked"), rng=random.Random(2), ids=MessageIds(2))
    events = normalise(lines, pseudo)
    decisions = {d.status for d in events if isinstance(d, AuthorizationDecision)}
    assert "Blocked" in decisions
    ended = next(e for e in events if isinstance(e, TransactionEnded))
    assert ended.auth_status == "Blocked" and (ended.energy_wh or 0) > 1000


def test_raw_tokens_never_appear_in_events(pseudo: Pseudonymiser) -> None:
    lines = session_lines(_plan("1.6"), rng=random.Random(3), ids=MessageIds(3))
    lines += session_lines(_plan("2.0.1", station="CP-2"), rng=random.Random(3), ids=MessageIds(3))
    events = normalise(lines, pseudo)
    dump = repr(events)
    assert TOKEN not in dump and TOKEN.lower() not in dump


def test_pseudonymised_capture_gives_same_token_refs(pseudo: Pseudonymiser) -> None:
    lines = session_lines(_plan("1.6"), rng=random.Random(4), ids=MessageIds(4))
    raw_refs = [e.token_ref for e in normalise(lines, pseudo) if isinstance(e, TransactionEnded)]
    rewritten = orjson.loads(orjson.dumps(lines).replace(TOKEN.encode(), pseudo(TOKEN).encode()))
    again = [e.token_ref for e in normalise(rewritten, pseudo) if isinstance(e, TransactionEnded)]
    assert raw_refs == again == [pseudo(TOKEN)]


def _frame(
    ts: datetime, sender: str, frame: list[Any], ocpp: str = "1.6", station: str = "CP-1"
) -> dict[str, Any]:
    return {
        "ts": ts.isoformat().replace("+00:00", "Z"),
        "station": station,
        "ocpp": ocpp,
        "from": sender,
        "frame": frame,
    }


def test_secrets_are_redacted_from_configuration_and_urls() -> None:
    t = START
    lines = [
        _frame(
            t,
            "csms",
            [
                2,
                "c1",
                "ChangeConfiguration",
                {"key": "AuthorizationKey", "value": "00112233445566778899AABBCCDDEEFF"},
            ],
        ),
        _frame(
            t,
            "csms",
            [
                2,
                "c2",
                "UpdateFirmware",
                {
                    "location": "ftp://bob:hunter2@fw.example.com/x.bin",
                    "retrieveDate": "2026-03-01T08:00:00Z",
                },
            ],
        ),
        _frame(
            t,
            "csms",
            [
                2,
                "c3",
                "SetNetworkProfile",
                {
                    "configurationSlot": 1,
                    "connectionData": {
                        "ocppVersion": "OCPP20",
                        "ocppTransport": "JSON",
                        "ocppCsmsUrl": "wss://evil.example.net/ocpp",
                        "messageTimeout": 30,
                        "securityProfile": 1,
                        "ocppInterface": "Wireless0",
                        "apn": {
                            "apn": "internet",
                            "apnAuthentication": "AUTO",
                            "apnPassword": "apn-secret-77",
                            "simPin": 4321,
                        },
                    },
                },
            ],
            ocpp="2.0.1",
            station="CP-9",
        ),
    ]
    events = normalise(lines)
    dump = repr(events)
    for secret in ("00112233445566778899AABBCCDDEEFF", "hunter2", "apn-secret-77", "4321"):
        assert secret not in dump
    change = next(e for e in events if isinstance(e, ConfigurationChange) and e.key == "AuthorizationKey")
    assert change.value == "[redacted]"
    fw = next(e for e in events if isinstance(e, CommandIssued) and e.action == "UpdateFirmware")
    assert fw.url_credentials and fw.urls and "bob" not in fw.urls[0]
    net = next(e for e in events if isinstance(e, ConfigurationChange) and e.source == "SetNetworkProfile")
    assert net.details["securityProfile"] == 1 and net.details["ocppCsmsUrl"] == "wss://evil.example.net/ocpp"


def test_protocol_violations() -> None:
    t = START
    lines = [
        _frame(t, "station", [2, "m1", "Heartbeat", {}]),
        _frame(t, "station", [2, "m1", "Authorize", {"idTag": "AB"}]),  # reused id, other payload
        _frame(t, "csms", [3, "nope", {}]),  # orphan result
        _frame(t, "station", [2, "m2", "../../v201/schemas/Reset", {}]),
        _frame(t, "station", [2, "m3", "RemoteStartTransaction", {"idTag": "AB"}]),  # csms-only action
        _frame(
            t,
            "station",
            [2, "m4", "StatusNotification", {"connectorId": 1, "status": "Bogus", "errorCode": "NoError"}],
        ),
        _frame(t, "station", "garbage"),
    ]
    reasons = [e.reason for e in normalise(lines) if isinstance(e, ProtocolViolation)]
    assert reasons == [
        "duplicate_id",
        "orphan_result",
        "unknown_action",
        "wrong_direction",
        "schema",
        "bad_shape",
    ]


def test_retry_of_unanswered_call_is_not_a_violation() -> None:
    t = START
    call = [2, "m1", "Heartbeat", {}]
    events = normalise(
        [
            _frame(t, "station", call),
            _frame(t + timedelta(seconds=30), "station", call),
            _frame(t + timedelta(seconds=31), "csms", [3, "m1", {"currentTime": "2026-03-01T08:00:31Z"}]),
        ]
    )
    assert not [e for e in events if isinstance(e, ProtocolViolation)]


def test_new_connection_resets_message_ids() -> None:
    t = START
    conn = {"ts": "2026-03-01T08:00:10Z", "station": "CP-1", "event": "connect"}
    events = normalise(
        [
            _frame(t, "station", [2, "1", "Heartbeat", {}]),
            _frame(t, "csms", [3, "1", {"currentTime": "2026-03-01T08:00:00Z"}]),
            conn,
            _frame(t + timedelta(seconds=20), "station", [2, "1", "Heartbeat", {}]),
        ]
    )
    assert not [e for e in events if isinstance(e, ProtocolViolation)]


def test_messages_replayed_after_reconnect_are_queued() -> None:
    lines = session_lines(_plan("1.6"), rng=random.Random(5), ids=MessageIds(5))
    # the whole session arrives two hours late, right after a reconnect
    shifted = []
    for line in lines:
        ts = datetime.fromisoformat(line["ts"]) + timedelta(hours=2)
        shifted.append({**line, "ts": ts.isoformat()})
    conn = {"ts": (START + timedelta(hours=1, minutes=59)).isoformat(), "station": "CP-1", "event": "connect"}
    events = normalise([conn, *shifted])
    readings = [e for e in events if isinstance(e, ClockReading)]
    assert readings and all(r.queued for r in readings)
    assert next(e for e in events if isinstance(e, TransactionStarted)).queued


def test_boot_identity_both_versions() -> None:
    t = START
    events = normalise(
        [
            _frame(
                t,
                "station",
                [
                    2,
                    "b1",
                    "BootNotification",
                    {
                        "chargePointVendor": "V",
                        "chargePointModel": "M",
                        "chargePointSerialNumber": "S1",
                        "firmwareVersion": "1.2.3",
                    },
                ],
            ),
            _frame(
                t,
                "station",
                [
                    2,
                    "b1",
                    "BootNotification",
                    {
                        "reason": "PowerUp",
                        "chargingStation": {
                            "model": "M2",
                            "vendorName": "V2",
                            "serialNumber": "S2",
                            "firmwareVersion": "v4",
                        },
                    },
                ],
                ocpp="2.0.1",
                station="CP-2",
            ),
        ]
    )
    boots = [(e.vendor, e.model, e.serial, e.firmware) for e in events if isinstance(e, StationBooted)]
    assert boots == [("V", "M", "S1", "1.2.3"), ("V2", "M2", "S2", "v4")]


@pytest.mark.parametrize(("ocpp", "violations"), [("2.0.1", []), ("2.1", ["duplicate_id"])])
def test_message_ids_across_connections(ocpp: str, violations: list[str]) -> None:
    t = START
    conn = {"ts": "2026-03-01T08:00:10Z", "station": "CP-1", "event": "connect"}
    answer = [3, "1", {"currentTime": "2026-03-01T08:00:00Z"}]
    events = normalise(
        [
            _frame(t, "station", [2, "1", "Heartbeat", {}], ocpp=ocpp),
            _frame(t, "csms", answer, ocpp=ocpp),
            conn,
            _frame(t + timedelta(seconds=20), "station", [2, "1", "Heartbeat", {}], ocpp=ocpp),
        ]
    )
    assert [e.reason for e in events if isinstance(e, ProtocolViolation)] == violations
