"""The ordered guard chain run on every frame: ``check(frame, connection) -> Verdict``, first deny wins.

What a denied frame gets (the CALLERROR code of the connection's OCPP version; a denied CALL never reaches the
other side; a denied CALLRESULT/CALLERROR cannot be answered and is dropped):

=====================  ===========================  ===============================  ==========================
guard / reason         OCPP 1.6                     OCPP 2.0.1 / 2.1                 notes
=====================  ===========================  ===============================  ==========================
size: too_large        close 1009                   close 1009                       websockets max_size, too
shape: not_json,       (no id: dropped)             RpcFrameworkError, id "-1"       2.0.1 4.2.3
  not_array
shape: bad_message_id  FormationViolation           RpcFrameworkError                id echoed when readable
shape: unknown type    FormationViolation           MessageTypeNotSupported
shape: bad_shape       FormationViolation           FormatViolation
message_id: too_long   FormationViolation           RpcFrameworkError                > 36 characters
message_id: reused     OccurenceConstraintViolation OccurrenceConstraintViolation    per connection & direction
outstanding: pipelined allowed, counted (*)         OccurrenceConstraintViolation    2.1 SEND exempt
action: unknown        NotImplemented               NotImplemented
action: not_allowed    NotSupported                 NotSupported                     direction + allow-list
schema: invalid        FormationViolation           FormatViolation                  CALLs; results flagged
rate: station / addr   GenericError                 GenericError                     token buckets, CALLs only
=====================  ===========================  ===============================  ==========================

(*) up to ``max_pipelined_calls_16`` unanswered CALLs, then OccurenceConstraintViolation.

Policy guards (outstanding, action, schema, rate) never refuse a transaction-related CALL (StartTransaction,
StopTransaction, MeterValues, TransactionEvent): the verdict becomes a *flag*, the frame is forwarded and the
proxy records an "action" line so the detectors see it.
"""

from __future__ import annotations

import importlib
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import structlog

from chargeguard.sources.ocpp.gateway.auth import KeyedBuckets, TokenBucket
from chargeguard.sources.ocpp.gateway.config import PolicyConfig
from chargeguard.sources.ocpp.gateway.wire import (
    CALL,
    CALLERROR,
    CALLRESULT,
    CALLRESULTERROR,
    KNOWN_ACTIONS,
    SEND,
    TRANSACTION_ACTIONS,
    Direction,
    Frame,
    allowed_by_direction,
)

log = structlog.get_logger("chargeguard.gateway.guards")

# reason -> (1.6 code, 2.0.1/2.1 code); None: no CALLERROR is possible, the frame is dropped.
CALLERROR_CODES: dict[str, tuple[str | None, str]] = {
    "not_json": (None, "RpcFrameworkError"),
    "not_array": (None, "RpcFrameworkError"),
    "bad_message_id": ("FormationViolation", "RpcFrameworkError"),
    "bad_message_type": ("FormationViolation", "MessageTypeNotSupported"),
    "unknown_message_type": ("FormationViolation", "MessageTypeNotSupported"),
    "bad_shape": ("FormationViolation", "FormatViolation"),
    "message_id_too_long": ("FormationViolation", "RpcFrameworkError"),
    "message_id_reused": ("OccurenceConstraintViolation", "OccurrenceConstraintViolation"),
    "pipelined_call": ("OccurenceConstraintViolation", "OccurrenceConstraintViolation"),
    "unknown_action": ("NotImplemented", "NotImplemented"),
    "action_not_allowed": ("NotSupported", "NotSupported"),
    "schema_invalid": ("FormationViolation", "FormatViolation"),
    "station_rate_limited": ("GenericError", "GenericError"),
    "address_rate_limited": ("GenericError", "GenericError"),
}


@dataclass(frozen=True, slots=True)
class Verdict:
    """A guard's answer. ``allow`` False = deny; ``close_code`` set = close the connection instead."""

    allow: bool
    guard: str = ""
    reason: str = ""
    close_code: int | None = None
    policy: bool = False  # a policy/detection deny (overridden for transaction-related CALLs)


ALLOW = Verdict(True)


def callerror_code(version: str, reason: str) -> str | None:
    """The CALLERROR code a deny for ``reason`` is answered with in ``version`` (None: drop, no answer)."""
    codes = CALLERROR_CODES.get(reason, ("GenericError", "GenericError"))
    return codes[0] if version == "1.6" else codes[1]


@dataclass(slots=True)
class DirectionState:
    """Per connection and sender: recently used CALL ids (bounded) and the sender's outstanding CALLs."""

    seen_ids: OrderedDict[str, None] = field(default_factory=OrderedDict)
    outstanding: dict[str, str] = field(default_factory=dict)  # message id -> action
    pipelined: int = 0


@dataclass(slots=True)
class ConnectionState:
    """What guards know about one station connection."""

    identity: str
    version: str
    address: str
    security_profile: int
    max_seen_ids: int = 1024
    rate_buckets: tuple[TokenBucket, TokenBucket | None] | None = None
    sides: dict[Direction, DirectionState] = field(
        default_factory=lambda: {Direction.STATION: DirectionState(), Direction.CSMS: DirectionState()}
    )

    def action_of_result(self, frame: Frame) -> str | None:
        """The action of the CALL a result answers (sent by the other side), if still outstanding."""
        if frame.message_id is None:
            return None
        return self.sides[frame.direction.other].outstanding.get(frame.message_id)

    def commit(self, frame: Frame) -> str | None:
        """Book-keep a frame that is forwarded; returns the action a result answered (if known)."""
        side = self.sides[frame.direction]
        if frame.message_id is None:
            return None
        if frame.message_type in (CALL, SEND):
            side.seen_ids[frame.message_id] = None
            if len(side.seen_ids) > self.max_seen_ids:
                side.seen_ids.popitem(last=False)
            if frame.message_type == CALL and frame.action is not None:
                if side.outstanding:
                    side.pipelined += 1
                side.outstanding[frame.message_id] = frame.action
                if len(side.outstanding) > self.max_seen_ids:  # flagged tx CALLs pass the guard: bound anyway
                    del side.outstanding[next(iter(side.outstanding))]
            return None
        if frame.message_type in (CALLRESULT, CALLERROR):
            return self.sides[frame.direction.other].outstanding.pop(frame.message_id, None)
        return None


class Guard(Protocol):
    """One check of the chain."""

    name: str

    def check(self, frame: Frame, connection: ConnectionState) -> Verdict: ...


class SizeGuard:
    """Frames above ``max_bytes`` close the connection with 1009 (message too big)."""

    name = "size"

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes

    def check(self, frame: Frame, connection: ConnectionState) -> Verdict:
        if frame.size_bytes > self.max_bytes:
            return Verdict(False, self.name, "too_large", close_code=1009)
        return ALLOW


class ShapeGuard:
    """The OCPP-J array shape and message type of the connection's version."""

    name = "shape"

    def check(self, frame: Frame, connection: ConnectionState) -> Verdict:
        if frame.problem is not None:
            return Verdict(False, self.name, frame.problem)
        return ALLOW


class MessageIdGuard:
    """Message ids at most ``max_chars`` long; a CALL id is not reused within a connection and direction."""

    name = "message_id"

    def __init__(self, max_chars: int = 36) -> None:
        self.max_chars = max_chars

    def check(self, frame: Frame, connection: ConnectionState) -> Verdict:
        assert frame.message_id is not None
        if len(frame.message_id) > self.max_chars:
            return Verdict(False, self.name, "message_id_too_long")
        if (
            frame.message_type in (CALL, SEND)
            and frame.message_id in connection.sides[frame.direction].seen_ids
        ):
            return Verdict(False, self.name, "message_id_reused")
        return ALLOW


class OutstandingCallGuard:
    """One outstanding CALL per sender: 1.6 SHOULD NOT pipeline (allowed and counted, up to ``max_pipelined_16``
    unanswered CALLs), 2.0.1 / 2.1 SHALL NOT."""

    name = "outstanding"

    def __init__(self, max_pipelined_16: int = 32) -> None:
        self.max_pipelined_16 = max_pipelined_16

    def check(self, frame: Frame, connection: ConnectionState) -> Verdict:
        if frame.message_type != CALL:
            return ALLOW
        outstanding = connection.sides[frame.direction].outstanding
        limit = self.max_pipelined_16 if connection.version == "1.6" else 1
        if len(outstanding) >= limit:
            return Verdict(False, self.name, "pipelined_call", policy=True)
        return ALLOW


class ActionGuard:
    """The action is known for the version, may be initiated by its sender, and is on the allow-list if any."""

    name = "action"

    def __init__(self, allowed: dict[Direction, dict[str, frozenset[str]]] | None = None) -> None:
        self.allowed = allowed or {}

    def check(self, frame: Frame, connection: ConnectionState) -> Verdict:
        if frame.message_type not in (CALL, SEND) or frame.action is None:
            return ALLOW
        if frame.action not in KNOWN_ACTIONS.get(connection.version, frozenset()):
            return Verdict(False, self.name, "unknown_action")
        if not allowed_by_direction(connection.version, frame.direction, frame.action):
            return Verdict(False, self.name, "action_not_allowed", policy=True)
        allow_list = self.allowed.get(frame.direction, {}).get(connection.version)
        if allow_list is not None and frame.action not in allow_list:
            return Verdict(False, self.name, "action_not_allowed", policy=True)
        return ALLOW


class PayloadValidator(Protocol):
    """The schema validator contract of ``chargeguard.sources.ocpp.schemas``."""

    def validate(self, version: str, action: str, kind: str, payload: object) -> str | None: ...


def default_validator() -> PayloadValidator | None:
    """``chargeguard.sources.ocpp.schemas.PayloadValidator()`` when that module is installed, else None."""
    try:
        module = importlib.import_module("chargeguard.sources.ocpp.schemas")
    except ImportError:
        log.warning("gateway.schema.unavailable")
        return None
    validator: PayloadValidator = module.PayloadValidator()
    return validator


class SchemaGuard:
    """CALL and CALLRESULT payloads against the official schemas of the version (results: flagged only)."""

    name = "schema"

    def __init__(self, validator: PayloadValidator) -> None:
        self.validator = validator

    def check(self, frame: Frame, connection: ConnectionState) -> Verdict:
        if frame.message_type in (CALL, SEND) and frame.action is not None:
            problem = self.validator.validate(connection.version, frame.action, "call", frame.payload)
        elif frame.message_type == CALLRESULT:
            action = connection.action_of_result(frame)
            if action is None:
                return ALLOW
            problem = self.validator.validate(connection.version, action, "result", frame.payload)
        else:
            return ALLOW
        if problem is None:
            return ALLOW
        return Verdict(False, self.name, "schema_invalid", policy=True)


class RateGuard:
    """Token buckets on station CALLs: per station identity (across connections) and per remote address."""

    name = "rate"

    def __init__(self, per_station: KeyedBuckets, per_address: KeyedBuckets | None = None) -> None:
        self.per_station = per_station
        self.per_address = per_address

    def check(self, frame: Frame, connection: ConnectionState) -> Verdict:
        if frame.direction is not Direction.STATION or frame.message_type not in (CALL, SEND):
            return ALLOW
        buckets = connection.rate_buckets
        if buckets is None:  # looked up once per connection (the keyed maps stay bounded by LRU eviction)
            host = connection.address.rsplit(":", 1)[0]
            per_address = self.per_address.bucket(host) if self.per_address is not None else None
            buckets = connection.rate_buckets = (self.per_station.bucket(connection.identity), per_address)
        if not buckets[0].take():
            return Verdict(False, self.name, "station_rate_limited", policy=True)
        if buckets[1] is not None and not buckets[1].take():
            return Verdict(False, self.name, "address_rate_limited", policy=True)
        return ALLOW


@dataclass(frozen=True, slots=True)
class ChainResult:
    """The chain's decision: the deciding verdict plus policy flags overridden for transaction messages."""

    verdict: Verdict
    flags: tuple[Verdict, ...] = ()


class GuardChain:
    """Runs guards in order; the first deny wins (protocol guards always; policy guards except for tx CALLs)."""

    def __init__(self, guards: Sequence[Guard]) -> None:
        self.guards = tuple(guards)

    def check(self, frame: Frame, connection: ConnectionState) -> ChainResult:
        flags: list[Verdict] = []
        for guard in self.guards:
            verdict = guard.check(frame, connection)
            if verdict.allow:
                continue
            if verdict.policy and _never_refused(frame, connection):
                flags.append(verdict)
                continue
            return ChainResult(verdict, tuple(flags))
        return ChainResult(ALLOW, tuple(flags)) if flags else _ALLOWED


_ALLOWED = ChainResult(ALLOW)


def build_chain(
    policy: PolicyConfig, validator: PayloadValidator | None, clock: Callable[[], float]
) -> GuardChain:
    """The gateway's chain, in order: size, shape, message id, action, outstanding CALL, schema, rate."""
    allowed = {
        Direction.STATION: {v: frozenset(a) for v, a in policy.allowed_station_actions.items()},
        Direction.CSMS: {v: frozenset(a) for v, a in policy.allowed_csms_actions.items()},
    }
    guards: list[Guard] = [
        SizeGuard(policy.max_frame_bytes),
        ShapeGuard(),
        MessageIdGuard(policy.max_message_id_chars),
        ActionGuard(allowed),
        OutstandingCallGuard(policy.max_pipelined_calls_16),
    ]
    if validator is not None:
        guards.append(SchemaGuard(validator))
    guards.append(
        RateGuard(
            KeyedBuckets(policy.station_calls_per_s, policy.station_call_burst, clock),
            KeyedBuckets(policy.address_calls_per_s, policy.address_call_burst, clock),
        )
    )
    return GuardChain(guards)


def _never_refused(frame: Frame, connection: ConnectionState) -> bool:
    if frame.message_type in (CALL, SEND):
        return frame.action in TRANSACTION_ACTIONS
    # results are never refused for policy reasons: the CALL they answer was already let through
    return frame.message_type in (CALLRESULT, CALLERROR, CALLRESULTERROR)
