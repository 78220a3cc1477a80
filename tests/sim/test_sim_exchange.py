"""Tests for chargeguard.sim.exchange: one session as schema-valid OCPP traffic, for both versions."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chargeguard.sim.exchange import MessageIds, SessionPlan, session_lines

Validate = Callable[[Iterable[dict[str, Any]]], set[tuple[str, str, bool]]]
START = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


def a_plan(**override: Any) -> SessionPlan:
    values: dict[str, Any] = {
        "station": "CP-0001",
        "ocpp": "1.6",
        "connector_id": 1,
        "evse_id": 1,
        "token": "04A2B3C4D5E6F7",
        "transaction_id": "1201",
        "start": START,
        "end": START + timedelta(hours=2),
        "energy_wh": 12_000.0,
        "meter_start_wh": 100_000.0,
        "max_power_w": 11_000.0,
    }
    values.update(override)
    return SessionPlan(**values)


def lines_of(plan: SessionPlan, seed: int = 1) -> list[dict[str, Any]]:
    return session_lines(plan, rng=random.Random(seed), ids=MessageIds(seed))


def payloads(lines: list[dict[str, Any]], action: str) -> list[dict[str, Any]]:
    return [line["frame"][3] for line in lines if line["frame"][0] == 2 and line["frame"][2] == action]


def registers_16(lines: list[dict[str, Any]]) -> list[int]:
    return [
        int(sv["value"])
        for p in payloads(lines, "MeterValues")
        for mv in p["meterValue"]
        for sv in mv["sampledValue"]
        if sv["measurand"] == "Energy.Active.Import.Register"
    ]


def test_16_session_has_the_expected_exchange_and_meter_story(validate: Validate) -> None:
    lines = lines_of(a_plan())
    actions = [line["frame"][2] for line in lines if line["frame"][0] == 2]
    assert actions[:4] == ["StatusNotification", "Authorize", "StartTransaction", "StatusNotification"]
    assert actions[-3:] == ["StopTransaction", "StatusNotification", "StatusNotification"]
    assert [p["status"] for p in payloads(lines, "StatusNotification")][-2:] == ["Finishing", "Available"]
    start = payloads(lines, "StartTransaction")[0]
    stop = payloads(lines, "StopTransaction")[0]
    assert start["meterStart"] == 100_000 and stop["meterStop"] == 112_000 and stop["transactionId"] == 1201
    regs = registers_16(lines)
    assert len(regs) == 23  # every 5 min strictly inside 2 h
    assert regs == sorted(regs) and regs[0] > 100_000 and regs[-1] <= 112_000
    powers = [
        float(sv["value"])
        for p in payloads(lines, "MeterValues")
        for sv in p["meterValue"][0]["sampledValue"]
        if sv["measurand"] == "Power.Active.Import"
    ]
    assert max(powers) <= 11_000.0
    # Every CALL is answered by the csms with the same id, later.
    calls = {line["frame"][1]: line["ts"] for line in lines if line["frame"][0] == 2}
    results = {line["frame"][1]: line["ts"] for line in lines if line["frame"][0] == 3}
    assert calls.keys() == results.keys() and all(results[k] > calls[k] for k in calls)
    assert [line["ts"] for line in lines] == sorted(line["ts"] for line in lines)
    assert validate(lines) >= {("1.6", "StartTransaction", True), ("1.6", "MeterValues", False)}


def test_201_session_is_a_transaction_event_story(validate: Validate) -> None:
    for seed in range(6):  # both TxStartPoint variants occur
        lines = lines_of(a_plan(ocpp="2.0.1", transaction_id="a1b2-c3", evse_id=2), seed)
        events = payloads(lines, "TransactionEvent")
        assert events[0]["eventType"] == "Started" and events[-1]["eventType"] == "Ended"
        assert [e["seqNo"] for e in events] == list(range(len(events)))
        assert events[0]["evse"] == {"id": 2, "connectorId": 1}
        assert {e["transactionInfo"]["transactionId"] for e in events} == {"a1b2-c3"}
        assert any(e.get("idToken") == {"idToken": "04A2B3C4D5E6F7", "type": "ISO14443"} for e in events)
        end_value = events[-1]["meterValue"][0]["sampledValue"][0]["value"]
        assert end_value == 112_000 and events[-1]["transactionInfo"]["stoppedReason"] == "Local"
        validate(lines)


@pytest.mark.parametrize("ocpp", ["1.6", "2.0.1"])
def test_odd_plans_produce_the_traffic_they_imply(ocpp: str, validate: Validate) -> None:
    backwards = lines_of(a_plan(ocpp=ocpp, energy_wh=-500.0))
    if ocpp == "1.6":
        stop = payloads(backwards, "StopTransaction")[0]
        assert stop["meterStop"] == 99_500
        assert registers_16(backwards) == sorted(registers_16(backwards), reverse=True)
    reversed_times = lines_of(a_plan(ocpp=ocpp, end=START - timedelta(minutes=10)))
    stamps = [line["ts"] for line in reversed_times]
    assert stamps == sorted(stamps)  # transport time still moves forward
    zero = lines_of(a_plan(ocpp=ocpp, energy_wh=0.0, sample_interval_s=None))
    for lines in (backwards, reversed_times, zero):
        validate(lines)


@pytest.mark.parametrize("ocpp", ["1.6", "2.0.1"])
def test_refused_attempt_and_charging_anyway(ocpp: str, validate: Validate) -> None:
    refused = lines_of(a_plan(ocpp=ocpp, auth_status="Blocked", energy_wh=0.0))
    assert {line["frame"][2] for line in refused if line["frame"][0] == 2} == {
        "Authorize",
        "StatusNotification",
    }
    anyway = lines_of(a_plan(ocpp=ocpp, auth_status="Invalid"))
    results = [line["frame"][2] for line in anyway if line["frame"][0] == 3]
    assert {"idTagInfo": {"status": "Invalid"}} in results or {
        "idTokenInfo": {"status": "Invalid"}
    } in results
    validate(refused + anyway)


def test_tokenless_sessions_never_share_an_id_tag(validate: Validate) -> None:
    first = payloads(lines_of(a_plan(token=None, transaction_id="7")), "StartTransaction")[0]["idTag"]
    second = payloads(lines_of(a_plan(token=None, transaction_id="8")), "StartTransaction")[0]["idTag"]
    assert first != second
    lines = lines_of(a_plan(token=None, ocpp="2.0.1"))
    assert not payloads(lines, "Authorize")
    validate(lines)


def test_message_ids_are_unique_and_deterministic() -> None:
    for style in ("uuid", "counter", "mixed"):
        ids = MessageIds(5, style=style)
        seen = [ids.next("CP-1", "station") for _ in range(5000)]
        assert len(set(seen)) == 5000 and all(len(i) <= 36 for i in seen)
        again = MessageIds(5, style=style)
        assert [again.next("CP-1", "station") for _ in range(5000)] == seen
    assert MessageIds(5).next("CP-1", "station") != MessageIds(6).next("CP-1", "station")
    assert MessageIds(5).next("CP-1", "station") != MessageIds(5).next("CP-1", "csms")


def test_same_seed_same_lines_and_plans_are_immutable() -> None:
    plan = a_plan()
    assert lines_of(plan, 3) == lines_of(plan, 3)
    assert lines_of(plan, 3) != lines_of(plan, 4)
    with pytest.raises(AttributeError):
        plan.energy_wh = 1.0  # type: ignore[misc]
    assert replace(plan, energy_wh=1.0).energy_wh == 1.0
