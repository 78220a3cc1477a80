"""Frame parsing and the guard chain without sockets: every reason, its CALLERROR code per version, flags."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chargeguard.sources.ocpp.gateway.auth import KeyedBuckets
from chargeguard.sources.ocpp.gateway.guards import (
    CALLERROR_CODES,
    ActionGuard,
    ConnectionState,
    GuardChain,
    MessageIdGuard,
    OutstandingCallGuard,
    RateGuard,
    SchemaGuard,
    ShapeGuard,
    SizeGuard,
    callerror_code,
)
from chargeguard.sources.ocpp.gateway.wire import Direction, parse_frame

S, C = Direction.STATION, Direction.CSMS


def _chain(**kwargs: object) -> GuardChain:
    return GuardChain(
        [SizeGuard(1000), ShapeGuard(), MessageIdGuard(36), ActionGuard(), OutstandingCallGuard()]
    )


def _state(version: str = "2.0.1") -> ConnectionState:
    return ConnectionState("CP-1", version, "127.0.0.1:5000", 2)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("nope", "not_json"),
        ("{}", "not_array"),
        ("[]", "not_array"),
        ('["2","1","Heartbeat",{}]', "bad_message_type"),
        ('[true,"1","Heartbeat",{}]', "bad_message_type"),
        ('[9,"1","Heartbeat",{}]', "unknown_message_type"),
        ('[2,1,"Heartbeat",{}]', "bad_message_id"),
        ('[2,"","Heartbeat",{}]', "bad_message_id"),
        ('[2,"1","Heartbeat"]', "bad_shape"),
        ('[2,"1","Heartbeat",[]]', "bad_shape"),
        ('[3,"1"]', "bad_shape"),
        ('[4,"1","GenericError","x"]', "bad_shape"),
        ('[4,"1","GenericError","x",[]]', "bad_shape"),
        ('[2,"1","Heartbeat",{}]', None),
        ('[3,"1",{}]', None),
        ('[4,"1","GenericError","",{}]', None),
    ],
)
def test_parse_frame_problems(text: str, problem: str | None) -> None:
    assert parse_frame(text, S, "2.0.1").problem == problem


def test_send_and_callresulterror_only_exist_in_2_1() -> None:
    assert parse_frame('[6,"1","NotifyPeriodicEventStream",{}]', S, "2.1").problem is None
    assert parse_frame('[6,"1","NotifyPeriodicEventStream",{}]', S, "2.0.1").problem == "unknown_message_type"
    assert parse_frame('[5,"1","GenericError","",{}]', S, "2.1").problem is None


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=200), st.text(max_size=200)))
def test_parse_frame_never_raises(data: bytes | str) -> None:
    frame = parse_frame(data, S, "1.6")
    assert frame.problem is not None or frame.message_type in (2, 3, 4)


def test_codes_table_uses_each_versions_spelling() -> None:
    assert callerror_code("1.6", "message_id_reused") == "OccurenceConstraintViolation"
    assert callerror_code("2.0.1", "message_id_reused") == "OccurrenceConstraintViolation"
    assert callerror_code("1.6", "bad_shape") == "FormationViolation"
    assert callerror_code("2.0.1", "bad_shape") == "FormatViolation"
    ocpp16_codes = {codes[0] for codes in CALLERROR_CODES.values()}
    assert not ocpp16_codes & {"RpcFrameworkError", "MessageTypeNotSupported", "FormatViolation"}


def _verdict(text: str, state: ConnectionState, direction: Direction = S) -> str:
    frame = parse_frame(text, direction, state.version)
    result = _chain().check(frame, state)
    if result.verdict.allow:
        state.commit(frame)
        return "ok" if not result.flags else "flagged:" + result.flags[0].reason
    return result.verdict.reason


def test_chain_reasons_in_order() -> None:
    state = _state()
    assert _verdict("[" + "1" * 2000 + "]", state) == "too_large"
    assert _verdict('[2,"1","Heartbeat"]', state) == "bad_shape"
    assert _verdict(json.dumps([2, "x" * 37, "Heartbeat", {}]), state) == "message_id_too_long"
    assert _verdict('[2,"1","Heartbeat",{}]', state) == "ok"
    assert _verdict('[2,"2","Heartbeat",{}]', state) == "pipelined_call"
    assert _verdict('[2,"3","TransactionEvent",{}]', state) == "flagged:pipelined_call"
    assert _verdict('[3,"1",{}]', state, C) == "ok"
    assert _verdict('[3,"3",{}]', state, C) == "ok"
    assert _verdict('[2,"1","Heartbeat",{}]', state) == "message_id_reused"
    assert _verdict('[2,"4","Frobnicate",{}]', state) == "unknown_action"
    assert _verdict('[2,"5","RequestStartTransaction",{}]', state) == "action_not_allowed"
    assert _verdict('[2,"c1","RequestStartTransaction",{}]', state, C) == "ok"
    assert (
        _verdict('[2,"c2","BootNotification",{}]', state, C) == "action_not_allowed"
    )  # checked before pipelining


def test_ids_are_per_direction_and_bounded() -> None:
    state = ConnectionState("CP-1", "1.6", "127.0.0.1:1", 1, max_seen_ids=16)
    assert _verdict('[2,"1","Heartbeat",{}]', state) == "ok"
    assert _verdict('[2,"1","Reset",{"type":"Soft"}]', state, C) == "ok"  # same id, other sender
    for i in range(2, 40):
        assert _verdict(f'[2,"{i}","Heartbeat",{{}}]', state) == "ok"  # 1.6 pipelining allowed
    assert len(state.sides[S].seen_ids) == 16
    assert state.sides[S].pipelined == 38


def test_allow_list_narrows_but_never_blocks_transactions() -> None:
    chain = GuardChain([ShapeGuard(), ActionGuard({S: {"1.6": frozenset({"Heartbeat"})}})])
    state = _state("1.6")
    for action, expected in [("Heartbeat", True), ("Authorize", False), ("MeterValues", True)]:
        result = chain.check(parse_frame(f'[2,"{action}","{action}",{{}}]', S, "1.6"), state)
        assert result.verdict.allow is expected
    flagged = chain.check(parse_frame('[2,"m","MeterValues",{}]', S, "1.6"), state)
    assert [f.reason for f in flagged.flags] == ["action_not_allowed"]


class _Validator:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []

    def validate(self, version: str, action: str, kind: str, payload: object) -> str | None:
        self.calls.append((version, action, kind))
        return None if payload == {"ok": True} else "invalid"


def test_schema_guard_checks_calls_and_results_of_known_calls() -> None:
    validator = _Validator()
    guard = SchemaGuard(validator)
    state = _state("1.6")
    call = parse_frame('[2,"1","Heartbeat",{"ok":true}]', S, "1.6")
    assert guard.check(call, state).allow
    state.commit(call)
    result = parse_frame('[3,"1",{"bad":1}]', C, "1.6")
    verdict = guard.check(result, state)
    assert not verdict.allow and verdict.policy and verdict.reason == "schema_invalid"
    assert validator.calls == [("1.6", "Heartbeat", "call"), ("1.6", "Heartbeat", "result")]
    assert GuardChain([guard]).check(result, state).verdict.allow  # results are flagged, never refused


def test_rate_guard_only_counts_station_calls() -> None:
    clock = [0.0]
    guard = RateGuard(KeyedBuckets(1, 2, lambda: clock[0]), KeyedBuckets(1, 100, lambda: clock[0]))
    state = _state("1.6")
    calls = [guard.check(parse_frame(f'[2,"{i}","Heartbeat",{{}}]', S, "1.6"), state).allow for i in range(3)]
    assert calls == [True, True, False]
    assert guard.check(parse_frame('[3,"x",{}]', S, "1.6"), state).allow
    assert guard.check(parse_frame('[2,"y","Reset",{}]', C, "1.6"), state).allow


def test_ocpp21_send_is_exempt_from_the_outstanding_call_rule() -> None:
    state = _state("2.1")
    assert _verdict('[2,"1","Heartbeat",{}]', state) == "ok"
    assert _verdict('[6,"2","NotifyPeriodicEventStream",{}]', state) == "ok"
    assert _verdict('[6,"2","NotifyPeriodicEventStream",{}]', state) == "message_id_reused"
    assert _verdict('[2,"3","Heartbeat",{}]', state) == "pipelined_call"
    assert state.sides[S].outstanding == {"1": "Heartbeat"}


def test_rate_guard_per_address_spans_identities() -> None:
    clock = [0.0]
    guard = RateGuard(KeyedBuckets(100, 100, lambda: clock[0]), KeyedBuckets(1, 2, lambda: clock[0]))
    states = [ConnectionState(f"CP-{i}", "1.6", f"10.0.0.1:{5000 + i}", 1) for i in range(3)]
    frame = parse_frame('[2,"1","Heartbeat",{}]', S, "1.6")
    assert [guard.check(frame, s).reason for s in states] == ["", "", "address_rate_limited"]


def test_ocpp16_pipelining_is_bounded_and_outstanding_state_too() -> None:
    state = ConnectionState("CP-1", "1.6", "127.0.0.1:1", 1, max_seen_ids=16)
    chain = GuardChain([ShapeGuard(), OutstandingCallGuard(max_pipelined_16=3)])
    reasons = []
    for i in range(5):
        frame = parse_frame(f'[2,"h{i}","Heartbeat",{{}}]', S, "1.6")
        result = chain.check(frame, state)
        reasons.append(result.verdict.reason)
        if result.verdict.allow:
            state.commit(frame)
    assert reasons == ["", "", "", "pipelined_call", "pipelined_call"]
    for i in range(40):  # transaction CALLs are flagged, never refused: the book-keeping bounds itself
        frame = parse_frame(f'[2,"m{i}","MeterValues",{{}}]', S, "1.6")
        assert chain.check(frame, state).verdict.allow
        state.commit(frame)
    assert len(state.sides[S].outstanding) == 16
