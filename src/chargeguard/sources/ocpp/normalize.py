"""OCPP-J frames and connection lines -> normalised events (tokens become pseudonyms here, secrets are dropped).

Per station the normaliser keeps, in bounded state: the CALLs awaiting an answer per direction (a CALLRESULT or
CALLERROR is matched to its CALL by message id within the same connection and the opposite direction), recently
used message ids (reuse is a violation, an identical resend of an unanswered CALL is a retry), the replay window
after a reconnect (1.6 stations send their offline queue then; those messages are ``queued``), and the open
transactions (sessions.TransactionBook). Message-specific extraction lives in ``station_messages`` (station ->
central system) and ``csms_messages`` (central system -> station).

Every frame yields a ``FrameSeen``; every problem a ``ProtocolViolation`` (reason names, never payload content).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import msgspec

from chargeguard.detectors.state import BoundedState
from chargeguard.errors import FrameError
from chargeguard.events import (
    CommandAnswered,
    ConnectionEvent,
    Direction,
    Event,
    FrameSeen,
    ProtocolViolation,
)
from chargeguard.sources.capture import BadLine, ConnectionRecord, FrameRecord
from chargeguard.sources.ocpp import csms_messages, station_messages
from chargeguard.sources.ocpp.frames import (
    CALL,
    CALLERROR,
    CALLRESULT,
    CALLRESULTERROR,
    MAX_ACTION,
    MAX_MESSAGE_ID,
    parse_frame,
)
from chargeguard.sources.ocpp.schemas import Check, PayloadValidator, call_senders, known_actions
from chargeguard.sources.ocpp.sessions import TransactionBook
from chargeguard.vault.redact import redact_text

_STATION = Direction.STATION  # module constants: an Enum member lookup costs ~0.3 us per use
_CSMS = Direction.CSMS
MAX_PENDING = 64
MAX_SEEN_IDS = 256
RETRY_WINDOW_S = 600.0


class PendingCall(msgspec.Struct, frozen=True, gc=False):
    """A CALL awaiting its answer (its payload is decoded JSON: acyclic, so not tracked by the cyclic GC)."""

    action: str
    payload: dict[str, Any]
    ts: datetime


@dataclass(slots=True)
class StationLink:
    """Transport state of one station identity (reset on every ``connect``)."""

    # per direction, in insertion order (plain dicts: the oldest entry is evicted with ``del d[next(iter(d))]``;
    # an OrderedDict's linked list made every insert and pop of these two per-frame maps cost about twice as much)
    pending: dict[Direction, dict[str, PendingCall]] = field(
        default_factory=lambda: {Direction.STATION: {}, Direction.CSMS: {}}
    )
    seen: dict[Direction, dict[str, float]] = field(
        default_factory=lambda: {Direction.STATION: {}, Direction.CSMS: {}}
    )
    last_ts: float = float("-inf")
    replay_until: float = float("-inf")
    ocpp: str = ""


@dataclass(frozen=True, slots=True)
class _Rules:
    """What applies to one action of one OCPP version: who may send its CALL, and its bound payload checks."""

    from_station: bool
    from_csms: bool
    check_call: Check | None
    check_result: Check | None


@dataclass(frozen=True, slots=True)
class NormaliserConfig:
    """Thresholds of the normaliser (documented in docs/formats.md)."""

    replay_window_s: float = 300.0  # after a (re)connect or silence, messages may come from the offline queue
    silence_s: float = 180.0  # a station silent this long is treated as having been offline
    queued_lag_s: float = 60.0  # in a replay window, a payload this much older than ts is a queued message
    validate: bool = True
    max_stations: int = 200_000


class Normaliser:
    """Stateful translation of capture records into events; one instance per stream of records."""

    def __init__(
        self,
        pseudonymise: Callable[[str], str],
        *,
        validator: PayloadValidator | None = None,
        config: NormaliserConfig | None = None,
    ) -> None:
        self.config = config or NormaliserConfig()
        self.pseudonymise = pseudonymise
        self.validator = (
            validator if validator is not None else (PayloadValidator() if self.config.validate else None)
        )
        self.links: BoundedState[str, StationLink] = BoundedState(self.config.max_stations, 30 * 86_400.0)
        self.transactions = TransactionBook()
        self._known = {v: known_actions(v) for v in ("1.6", "2.0.1", "2.1")}
        # per version, the known actions seen so far and what applies to them
        self._actions: dict[str, dict[str, _Rules]] = {v: {} for v in self._known}
        self._silence_s = self.config.silence_s
        self._replay_window_s = self.config.replay_window_s

    def _rules(self, version: str, action: str) -> _Rules:
        """Who may send ``action`` in ``version`` and its payload checks (None when validation is off)."""
        senders = call_senders(version, action)
        validator = self.validator
        return _Rules(
            from_station=not senders or _STATION.value in senders,
            from_csms=not senders or _CSMS.value in senders,
            check_call=None if validator is None else validator.check_for(version, action, "call"),
            check_result=None if validator is None else validator.check_for(version, action, "result"),
        )

    # ------------------------------------------------------------------ entry points

    def bad_line(self, bad: BadLine) -> list[Event]:
        """A capture line that could not be used becomes ocpp.malformed evidence when its station is known."""
        if bad.station is None or bad.ts is None:
            return []
        return [
            ProtocolViolation(
                ts=bad.ts,
                station=bad.station,
                ocpp=bad.ocpp or "",
                direction=bad.direction or Direction.STATION,
                reason=bad.reason,
                detail=bad.message,
                source=bad.source,
            )
        ]

    def connection(self, rec: ConnectionRecord) -> list[Event]:
        t = rec.t
        link = self.links.setdefault_at(rec.station, StationLink, t)
        if rec.event == "connect":
            # a new WebSocket connection: message ids and pending CALLs start afresh
            fresh = StationLink()
            if link.ocpp == "2.1":
                # OCPP 2.1 (Part 4 section 4.1.4): message ids are unique across all connections of one identity
                fresh.seen = link.seen
                fresh.ocpp = link.ocpp
            fresh.replay_until = t + self._replay_window_s
            fresh.last_ts = t
            self.links.put_at(rec.station, fresh, t)
        elif rec.event == "disconnect":
            link.last_ts = t
        return [
            ConnectionEvent(
                ts=rec.ts,
                station=rec.station,
                event=rec.event,
                remote=rec.remote,
                security_profile=rec.security_profile,
                detail=rec.detail,
            )
        ]

    def frame(self, rec: FrameRecord) -> list[Event]:
        t = rec.t
        direction = rec.direction
        link = self.links.setdefault_at(rec.station, StationLink, t)
        link.ocpp = rec.ocpp
        if direction is _STATION:
            if t - link.last_ts > self._silence_s:
                link.replay_until = t + self._replay_window_s
            link.last_ts = t
        raw = rec.frame
        # fast path for the well-formed CALL / CALLRESULT shapes that make up nearly all traffic; anything else goes
        # through parse_frame, which names the problem
        if type(raw) is list:
            n = len(raw)
            if n == 4:
                head = raw[0]
                mid = raw[1]
                action = raw[2]
                payload = raw[3]
                if (
                    head == CALL
                    and type(head) is int
                    and type(mid) is str
                    and 0 < len(mid) <= MAX_MESSAGE_ID
                    and type(action) is str
                    and 0 < len(action) <= MAX_ACTION
                    and type(payload) is dict
                ):
                    out: list[Event] = [
                        FrameSeen(rec.ts, rec.station, rec.ocpp, direction, CALL, action, rec.size)
                    ]
                    self._call(rec, link, CALL, mid, action, payload, out, t)
                    return out
            elif n == 3:
                head = raw[0]
                mid = raw[1]
                payload = raw[2]
                if (
                    head == CALLRESULT
                    and type(head) is int
                    and type(mid) is str
                    and 0 < len(mid) <= MAX_MESSAGE_ID
                    and type(payload) is dict
                ):
                    out = [FrameSeen(rec.ts, rec.station, rec.ocpp, direction, CALLRESULT, None, rec.size)]
                    self._answer(rec, link, CALLRESULT, mid, payload, None, out)
                    return out
        try:
            frame = parse_frame(raw, rec.ocpp)
        except FrameError as exc:
            return [
                FrameSeen(rec.ts, rec.station, rec.ocpp, direction, _raw_type(raw), None, rec.size),
                self._violation(rec, exc.reason, exc.message, exc.action, exc.message_id),
            ]
        kind = frame.message_type
        out = [FrameSeen(rec.ts, rec.station, rec.ocpp, direction, kind, frame.action, rec.size)]
        if kind in (CALLRESULT, CALLERROR, CALLRESULTERROR):
            self._answer(rec, link, kind, frame.message_id, frame.payload, frame.error_code, out)
        else:
            assert frame.action is not None
            self._call(rec, link, kind, frame.message_id, frame.action, frame.payload, out, t)
        return out

    # ------------------------------------------------------------------ CALLs

    def _call(
        self,
        rec: FrameRecord,
        link: StationLink,
        kind: int,
        message_id: str,
        action: str,
        payload: dict[str, Any],
        out: list[Event],
        t: float,
    ) -> None:
        direction = rec.direction
        by_action = self._actions[rec.ocpp]
        rules = by_action.get(action)
        if rules is None:
            if action not in self._known[rec.ocpp]:
                # the name is kept (cut, printable only) so detectors can tell fuzzing and path tricks from typos
                shown = "".join(c if c.isprintable() else "?" for c in action[:60])
                out.append(
                    self._violation(
                        rec, "unknown_action", "action not defined for this OCPP version", shown, message_id
                    )
                )
                return
            rules = by_action[action] = self._rules(rec.ocpp, action)  # known actions only: a bounded table
        from_station = direction is _STATION
        if not (rules.from_station if from_station else rules.from_csms):
            out.append(
                self._violation(
                    rec,
                    "wrong_direction",
                    f"{action} is not sent by the {direction.value}",
                    action,
                    message_id,
                )
            )
        seen = link.seen[direction]
        previous = seen.get(message_id)
        pending = link.pending[direction]
        if previous is not None:
            # an identical resend of a still unanswered CALL is a retry (already normalised once); any other
            # reuse of a message id on one connection breaks OCPP-J's uniqueness rule
            original = pending.get(message_id)
            if original is not None and original.payload == payload and t - previous <= RETRY_WINDOW_S:
                return
            out.append(
                self._violation(
                    rec, "duplicate_id", "message id reused on this connection", action, message_id
                )
            )
        seen[message_id] = t
        if len(seen) > MAX_SEEN_IDS:
            del seen[next(iter(seen))]  # the oldest id (dicts keep insertion order)
        check = rules.check_call
        if check is not None:
            problem = check(payload)
            if problem is not None:
                self._invalid(rec, action, "call", problem, message_id, out)
        if kind == CALL:
            pending[message_id] = PendingCall(action, payload, rec.ts)
            if len(pending) > MAX_PENDING:
                del pending[next(iter(pending))]  # the oldest unanswered CALL
        try:
            if from_station:
                handler = station_messages.CALL_HANDLERS.get(action)
                if handler is not None:
                    handler(self, rec, action, payload, t <= link.replay_until, out)
            else:
                csms_messages.on_call(self, rec, message_id, action, payload, out)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError):
            out.append(
                self._violation(
                    rec,
                    "schema",
                    f"{action} payload lacks fields needed to interpret it",
                    action,
                    message_id,
                )
            )

    # ------------------------------------------------------------------ CALLRESULT / CALLERROR

    def _answer(
        self,
        rec: FrameRecord,
        link: StationLink,
        kind: int,
        message_id: str,
        payload: Any,
        error_code: str | None,
        out: list[Event],
    ) -> None:
        call_from_station = rec.direction is _CSMS
        call = link.pending[_STATION if call_from_station else _CSMS].pop(message_id, None)
        if call is None:
            out.append(
                self._violation(rec, "orphan_result", "answer without a matching CALL", None, message_id)
            )
            return
        status: str | None = None
        if kind == CALLRESULT:
            rules = self._actions[rec.ocpp].get(call.action)
            if rules is None:  # the CALL came under another OCPP version of this identity
                rules = self._rules(rec.ocpp, call.action)
            check = rules.check_result
            if check is not None:
                problem = check(payload)
                if problem is not None:
                    self._invalid(rec, call.action, "result", problem, message_id, out)
            try:
                if call_from_station:
                    handler = station_messages.RESULT_HANDLERS.get(call.action)
                    if handler is not None:
                        handler(self, rec, call.action, call.payload, payload, out)
                else:
                    status = csms_messages.on_result(self, rec, call.action, call.payload, payload, out)
            except (KeyError, TypeError, ValueError, AttributeError, IndexError):
                out.append(
                    self._violation(
                        rec,
                        "schema",
                        f"{call.action} answer lacks fields needed to interpret it",
                        call.action,
                        message_id,
                    )
                )
        else:
            # a CALLERROR: nothing is assembled from a refused station CALL; a refused command is reported below
            status = f"CALLERROR:{error_code}"
        if not call_from_station:
            out.append(CommandAnswered(rec.ts, rec.station, rec.ocpp, call.action, message_id, status))

    # ------------------------------------------------------------------ helpers

    def _invalid(
        self, rec: FrameRecord, action: str, kind: str, problem: str, message_id: str, out: list[Event]
    ) -> None:
        reason = "bad_timestamp" if "date-time" in problem else "schema"
        out.append(self._violation(rec, reason, f"{action} {kind}: {problem}", action, message_id))

    def _violation(
        self, rec: FrameRecord, reason: str, detail: str, action: str | None, message_id: str | None
    ) -> ProtocolViolation:
        return ProtocolViolation(
            ts=rec.ts,
            station=rec.station,
            ocpp=rec.ocpp,
            direction=rec.direction,
            reason=reason,
            detail=detail[:300],
            action=action,
            message_id=message_id,
            source=rec.source,
        )

    @staticmethod
    def redact_text(text: str) -> str:
        """Free text from a station (techInfo, descriptions): token-like strings and credentials removed."""
        return redact_text(text)

    def token(self, value: Any) -> str | None:
        """Pseudonym of a raw token field, or None when the field is absent or empty."""
        if isinstance(value, str) and value.strip():
            return self.pseudonymise(value)
        return None


def _raw_type(raw: Any) -> int:
    if isinstance(raw, list) and raw and isinstance(raw[0], int) and not isinstance(raw[0], bool):
        return raw[0]
    return 0
