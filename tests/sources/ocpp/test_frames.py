"""OCPP-J frame shapes: the parser raises only FrameError, with the CALLERROR code of the version."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chargeguard.errors import FrameError
from chargeguard.sources.ocpp.frames import CALL, CALLERROR, CALLRESULT, SEND, callerror_code, parse_frame

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=20,
)


@given(raw=json_values, version=st.sampled_from(["1.6", "2.0.1", "2.1"]))
@settings(max_examples=400, deadline=None)
def test_parser_raises_only_its_own_error(raw: Any, version: str) -> None:
    try:
        frame = parse_frame(raw, version)
    except FrameError as exc:
        assert exc.reason and exc.code
    else:
        assert frame.message_type in (CALL, CALLRESULT, CALLERROR, 5, SEND)


@given(
    head=st.sampled_from([2, 3, 4, 5, 6, 9]),
    tail=st.lists(json_values, max_size=5),
    version=st.sampled_from(["1.6", "2.0.1", "2.1"]),
)
@settings(max_examples=300, deadline=None)
def test_frame_like_arrays(head: int, tail: list[Any], version: str) -> None:
    with contextlib.suppress(FrameError):
        parse_frame([head, *tail], version)


def test_well_formed_frames() -> None:
    call = parse_frame([2, "abc", "Heartbeat", {}], "1.6")
    assert (call.message_type, call.message_id, call.action, call.payload) == (CALL, "abc", "Heartbeat", {})
    result = parse_frame([3, "abc", {"currentTime": "2026-01-01T00:00:00Z"}], "2.0.1")
    assert result.message_type == CALLRESULT
    error = parse_frame([4, "abc", "NotImplemented", "no", {}], "1.6")
    assert error.error_code == "NotImplemented"
    send = parse_frame([6, "s1", "NotifyPeriodicEventStream", {"id": 1}], "2.1")
    assert send.message_type == SEND


@pytest.mark.parametrize(
    ("raw", "version", "reason", "code"),
    [
        ([7, "1"], "1.6", "bad_message_type", "NotImplemented"),
        ([7, "1"], "2.0.1", "bad_message_type", "MessageTypeNotSupported"),
        ([6, "1", "X", {}], "2.0.1", "bad_message_type", "MessageTypeNotSupported"),
        ([2, "x" * 37, "Heartbeat", {}], "2.0.1", "bad_shape", "RpcFrameworkError"),
        ([2, "1", "Heartbeat"], "1.6", "bad_shape", "FormationViolation"),
        ([2, "1", "Heartbeat", []], "2.0.1", "bad_shape", "FormatViolation"),
        ("[2]", "1.6", "bad_shape", "FormationViolation"),
        ("[2]", "2.0.1", "bad_shape", "RpcFrameworkError"),
        ([True, "1", "Heartbeat", {}], "1.6", "bad_message_type", "NotImplemented"),
    ],
)
def test_shape_errors_carry_version_codes(raw: Any, version: str, reason: str, code: str) -> None:
    with pytest.raises(FrameError) as info:
        parse_frame(raw, version)
    assert info.value.reason == reason
    assert info.value.code == code


def test_callerror_code_names_per_version() -> None:
    assert callerror_code("1.6", "OccurrenceConstraintViolation") == "OccurenceConstraintViolation"
    assert callerror_code("1.6", "FormatViolation") == "FormationViolation"
    assert callerror_code("2.0.1", "FormatViolation") == "FormatViolation"
