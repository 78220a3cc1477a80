"""OCPP-J frames as the gateway sees them: one parse per frame, the known actions per version and direction.

The gateway parses every text frame exactly once (orjson) into a :class:`Frame`; guards read it, the proxy
forwards the original text unchanged so ids, key order and number spelling reach the other side as sent.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import orjson
from ocpp.v16.enums import Action as Action16
from ocpp.v21.enums import Action as Action21
from ocpp.v201.enums import Action as Action201
from websockets.asyncio.connection import Connection
from websockets.protocol import State

from chargeguard.sources.ocpp.schemas import call_senders

CALL, CALLRESULT, CALLERROR, CALLRESULTERROR, SEND = 2, 3, 4, 5, 6
MESSAGE_TYPES = {
    "1.6": frozenset({2, 3, 4}),
    "2.0.1": frozenset({2, 3, 4}),
    "2.1": frozenset({2, 3, 4, 5, 6}),
}

KNOWN_ACTIONS: dict[str, frozenset[str]] = {
    "1.6": frozenset(a.value for a in Action16),
    "2.0.1": frozenset(a.value for a in Action201),
    "2.1": frozenset(a.value for a in Action21) | {"NotifyPeriodicEventStream"},
}

# CALLs a charging station initiates (the rest of the known actions are initiated by the CSMS; DataTransfer both).

# Never refused for policy or detection reasons: the station would retry and then drop billing data.
TRANSACTION_ACTIONS = frozenset({"StartTransaction", "StopTransaction", "MeterValues", "TransactionEvent"})


class Direction(StrEnum):
    """Who sent a frame, named as in the capture format's ``from`` field."""

    STATION = "station"
    CSMS = "csms"

    @property
    def other(self) -> Direction:
        return Direction.CSMS if self is Direction.STATION else Direction.STATION


@functools.lru_cache(maxsize=1024)  # bounded: action names come from the wire
def _senders(version: str, action: str) -> frozenset[str]:
    return call_senders(version, action)


def allowed_by_direction(version: str, direction: Direction, action: str) -> bool:
    """Whether ``action`` may be initiated by ``direction``, per the one sender table of the specifications
    (``schemas.call_senders``); names that are no known action are left to the action guard."""
    if len(action) > 64:
        return True  # not an action name: the action guard refuses it
    senders = _senders(version, action)
    return not senders or direction.value in senders


@dataclass(slots=True)  # not frozen: built once per relayed frame, and frozen __init__ costs ~2x
class Frame:
    """One text frame: the original text, its size, and what could be read from it.

    ``problem`` names the first shape violation (``not_json``, ``not_array``, ``bad_message_type``,
    ``unknown_message_type``, ``bad_message_id``, ``bad_shape``) or is None for a well-formed frame.
    """

    text: str
    size_bytes: int
    direction: Direction
    value: list[Any] | None
    message_type: int | None
    message_id: str | None
    action: str | None
    payload: Any
    problem: str | None

    @property
    def is_request(self) -> bool:
        return self.message_type in (CALL, SEND) and self.problem is None


def parse_frame(text: str | bytes, direction: Direction, version: str) -> Frame:
    """Read one frame; never raises on any input."""
    if isinstance(text, bytes):
        size = len(text)
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            return Frame("", size, direction, None, None, None, None, None, "not_json")
    else:
        size = len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return Frame(text, size, direction, None, None, None, None, None, "not_json")
    if not isinstance(value, list) or not value:
        return Frame(text, size, direction, None, None, None, None, None, "not_array")
    mtype = value[0]
    message_id = value[1] if len(value) > 1 and isinstance(value[1], str) else None
    if not isinstance(mtype, int) or isinstance(mtype, bool):
        return Frame(text, size, direction, value, None, message_id, None, None, "bad_message_type")
    if mtype not in MESSAGE_TYPES.get(version, MESSAGE_TYPES["1.6"]):
        return Frame(text, size, direction, value, mtype, message_id, None, None, "unknown_message_type")
    if message_id is None or not message_id:
        return Frame(text, size, direction, value, mtype, None, None, None, "bad_message_id")
    if mtype in (CALL, SEND):
        if len(value) != 4 or not isinstance(value[2], str) or not isinstance(value[3], dict):
            return Frame(text, size, direction, value, mtype, message_id, None, None, "bad_shape")
        return Frame(text, size, direction, value, mtype, message_id, value[2], value[3], None)
    if mtype == CALLRESULT:
        if len(value) != 3 or not isinstance(value[2], dict):
            return Frame(text, size, direction, value, mtype, message_id, None, None, "bad_shape")
        return Frame(text, size, direction, value, mtype, message_id, None, value[2], None)
    # CALLERROR / CALLRESULTERROR: [t, id, code, description, details]
    if len(value) != 5 or not isinstance(value[2], str) or not isinstance(value[3], str):
        return Frame(text, size, direction, value, mtype, message_id, None, None, "bad_shape")
    if not isinstance(value[4], dict):
        return Frame(text, size, direction, value, mtype, message_id, None, None, "bad_shape")
    return Frame(text, size, direction, value, mtype, message_id, None, value[4], None)


def callerror_text(message_id: str, code: str, description: str) -> str:
    """The CALLERROR frame a denied CALL is answered with."""
    return orjson.dumps([CALLERROR, message_id, code, description, {}]).decode("utf-8")


def send_now(connection: Connection, message: str | bytes) -> bool:
    """Write one text message synchronously, skipping websockets' per-message async context (a third of the relay's
    send cost), when nothing can go wrong: the leg is open and not closing, no fragmented send is in progress and
    the transport is below its high-water mark. Returns False otherwise: the caller awaits ``connection.send``,
    which waits for the buffer to drain or raises ConnectionClosed."""
    if (
        type(message) is not str
        or getattr(connection, "paused", True)
        or getattr(connection, "send_in_progress", getattr(connection, "fragmented_send_waiter", True))
        is not None
        or connection.protocol.state is not State.OPEN
        or connection.transport.is_closing()
    ):
        return False
    connection.protocol.send_text(message.encode())
    connection.send_data()
    return True
