"""OCPP-J frame shapes: ``[2, id, action, payload]`` CALL, ``[3, id, payload]`` CALLRESULT, ``[4, id, code, description,
details]`` CALLERROR, and for OCPP 2.1 ``[5, ...]`` CALLRESULTERROR and ``[6, id, action, payload]`` SEND.

``parse_frame`` checks the shape only (payload schemas are checked by ``schemas.PayloadValidator``) and raises only
``FrameError``, whose ``code`` is the CALLERROR code the gateway answers with in that OCPP version.
"""

from __future__ import annotations

from typing import Any

import msgspec

from chargeguard.errors import FrameError

CALL, CALLRESULT, CALLERROR, CALLRESULTERROR, SEND = 2, 3, 4, 5, 6
MAX_MESSAGE_ID = 36
MAX_ACTION = 64

_MESSAGE_TYPES = {"1.6": (CALL, CALLRESULT, CALLERROR), "2.0.1": (CALL, CALLRESULT, CALLERROR)}
_ALL_TYPES = (CALL, CALLRESULT, CALLERROR, CALLRESULTERROR, SEND)

# The wire names of CALLERROR codes differ between versions (OCPP 1.6-J section 4.2.3; 2.0.1/2.1 Part 4 Table 8).
_CODES_16 = {
    "FormatViolation": "FormationViolation",
    "OccurrenceConstraintViolation": "OccurenceConstraintViolation",
    "RpcFrameworkError": "FormationViolation",
    "MessageTypeNotSupported": "NotImplemented",
}


def callerror_code(version: str, code: str) -> str:
    """Translate a 2.0.1-style CALLERROR code name into the name the given OCPP version uses on the wire."""
    if version == "1.6":
        return _CODES_16.get(code, code)
    return code


class Frame(msgspec.Struct, frozen=True, gc=False):
    message_type: int
    message_id: str
    action: str | None = None
    payload: Any = None
    error_code: str | None = None
    error_description: str | None = None


def parse_frame(raw: Any, version: str) -> Frame:
    """Check an OCPP-J array's shape and return it as a Frame."""
    if not isinstance(raw, list) or not raw:
        raise FrameError(
            "frame is not a non-empty JSON array",
            reason="bad_shape",
            code=callerror_code(version, "RpcFrameworkError"),
        )
    kind = raw[0]
    allowed = _MESSAGE_TYPES.get(version, _ALL_TYPES)
    if isinstance(kind, bool) or not isinstance(kind, int) or kind not in allowed:
        raise FrameError(
            "unknown message type",
            reason="bad_message_type",
            code=callerror_code(version, "MessageTypeNotSupported"),
        )
    if len(raw) < 2 or not isinstance(raw[1], str) or not raw[1]:
        raise FrameError(
            "message id missing or not a string",
            reason="bad_shape",
            code=callerror_code(version, "RpcFrameworkError"),
        )
    message_id = raw[1]
    if len(message_id) > MAX_MESSAGE_ID:
        raise FrameError(
            "message id longer than 36 characters",
            reason="bad_shape",
            code=callerror_code(version, "RpcFrameworkError"),
        )
    if kind in (CALL, SEND):
        if len(raw) != 4:
            raise FrameError(
                "CALL must have 4 elements",
                reason="bad_shape",
                code=callerror_code(version, "FormatViolation"),
                message_id=message_id,
            )
        action = raw[2]
        if not isinstance(action, str) or not action or len(action) > MAX_ACTION:
            raise FrameError(
                "action missing or not a string",
                reason="bad_shape",
                code=callerror_code(version, "FormatViolation"),
                message_id=message_id,
            )
        if not isinstance(raw[3], dict):
            raise FrameError(
                "payload is not a JSON object",
                reason="bad_shape",
                code=callerror_code(version, "FormatViolation"),
                message_id=message_id,
                action=action,
            )
        return Frame(kind, message_id, action, raw[3])
    if kind == CALLRESULT:
        if len(raw) != 3 or not isinstance(raw[2], dict):
            raise FrameError(
                "CALLRESULT must be [3, id, {payload}]",
                reason="bad_shape",
                code=callerror_code(version, "FormatViolation"),
                message_id=message_id,
            )
        return Frame(kind, message_id, None, raw[2])
    # CALLERROR / CALLRESULTERROR
    if (
        len(raw) != 5
        or not isinstance(raw[2], str)
        or not isinstance(raw[3], str)
        or not isinstance(raw[4], dict)
    ):
        raise FrameError(
            "CALLERROR must be [4, id, code, description, {details}]",
            reason="bad_shape",
            code=callerror_code(version, "FormatViolation"),
            message_id=message_id,
        )
    return Frame(kind, message_id, None, raw[4], error_code=raw[2][:64], error_description=raw[3][:255])
