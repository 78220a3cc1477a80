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

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

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
    MAX_ACTION,
    MAX_MESSAGE_ID,
    Frame,
    parse_frame,
)
from chargeguard.sources.ocpp.schemas import PayloadValidator, call_senders, known_actions
from chargeguard.sources.ocpp.sessions import TransactionBook
from chargeguard.vault.redact import redact_text

MAX_PENDING = 64
MAX_SEEN_IDS = 256
RETRY_WINDOW_S = 600.0


@dataclass(slots=True)
class PendingCall:
    action: str
    payload: dict[str, Any]
    ts: datetime


@dataclass(slots=True)
class StationLink:
    """Transport state of one station identity (reset on every ``connect``)."""

    pending: dict[Direction, OrderedDict[str, PendingCall]] = field(
        default_factory=lambda: {Direction.STATION: OrderedDict(), Direction.CSMS: OrderedDict()}
    )
    seen: dict[Direction, OrderedDict[str, float]] = field(
        default_factory=lambda: {Direction.STATION: OrderedDict(), Direction.CSMS: OrderedDict()}
    )
    last_ts: float = float("-inf")
    replay_until: float = float("-inf")
    ocpp: str = ""


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
        self._senders: dict[tuple[str, str], frozenset[str]] = {}  # known (version, action) pairs only

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
            fresh.replay_until = t + self.config.replay_window_s
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
        out: list[Event] = []
        t = rec.t
        link = self.links.setdefault_at(rec.station, StationLink, t)
        link.ocpp = rec.ocpp
        if rec.direction is Direction.STATION:
            if t - link.last_ts > self.config.silence_s:
                link.replay_until = t + self.config.replay_window_s
            link.last_ts = t
        raw = rec.frame
        # fast path for the well-formed CALL / CALLRESULT shapes that make up nearly all traffic; anything else goes
        # through parse_frame, which names the problem
        frame: Frame | None = None
        if type(raw) is list:
            n = len(raw)
            head = raw[0] if n else None
            mid = raw[1] if n > 1 else None
            if (
                n == 4
                and head == CALL
                and type(mid) is str
                and 0 < len(mid) <= MAX_MESSAGE_ID
                and type(raw[2]) is str
                and 0 < len(raw[2]) <= MAX_ACTION
                and type(raw[3]) is dict
                and type(head) is int
            ):
                frame = Frame(CALL, mid, raw[2], raw[3])
            elif (
                n == 3
                and head == CALLRESULT
                and type(mid) is str
                and 0 < len(mid) <= MAX_MESSAGE_ID
                and type(raw[2]) is dict
                and type(head) is int
            ):
                frame = Frame(CALLRESULT, mid, None, raw[2])
        if frame is None:
            try:
                frame = parse_frame(raw, rec.ocpp)
            except FrameError as exc:
                out.append(
                    FrameSeen(rec.ts, rec.station, rec.ocpp, rec.direction, _raw_type(raw), None, rec.size)
                )
                out.append(self._violation(rec, exc.reason, exc.message, exc.action, exc.message_id))
                return out
        out.append(
            FrameSeen(
                rec.ts, rec.station, rec.ocpp, rec.direction, frame.message_type, frame.action, rec.size
            )
        )
        if frame.message_type == CALLRESULT or frame.message_type == CALLERROR or frame.message_type == 5:
            self._answer(rec, link, frame, out)
        else:
            self._call(rec, link, frame, out, t)
        return out

    # ------------------------------------------------------------------ CALLs

    def _call(self, rec: FrameRecord, link: StationLink, frame: Frame, out: list[Event], t: float) -> None:
        action = frame.action
        assert action is not None
        payload: dict[str, Any] = frame.payload
        if action not in self._known[rec.ocpp]:
            # the name is kept (cut, printable only) so detectors can tell fuzzing and path tricks from typos
            shown = "".join(c if c.isprintable() else "?" for c in action[:60])
            out.append(
                self._violation(
                    rec, "unknown_action", "action not defined for this OCPP version", shown, frame.message_id
                )
            )
            return
        senders = self._senders.get((rec.ocpp, action))
        if senders is None:
            senders = self._senders[(rec.ocpp, action)] = call_senders(rec.ocpp, action)
        if senders and rec.direction.value not in senders:
            out.append(
                self._violation(
                    rec,
                    "wrong_direction",
                    f"{action} is not sent by the {rec.direction.value}",
                    action,
                    frame.message_id,
                )
            )
        seen = link.seen[rec.direction]
        previous = seen.get(frame.message_id)
        pending = link.pending[rec.direction]
        if previous is not None:
            # an identical resend of a still unanswered CALL is a retry (already normalised once); any other
            # reuse of a message id on one connection breaks OCPP-J's uniqueness rule
            original = pending.get(frame.message_id)
            if original is not None and original.payload == payload and t - previous <= RETRY_WINDOW_S:
                return
            out.append(
                self._violation(
                    rec, "duplicate_id", "message id reused on this connection", action, frame.message_id
                )
            )
        seen[frame.message_id] = t
        if len(seen) > MAX_SEEN_IDS:
            seen.popitem(last=False)
        self._validate(rec, action, "call", payload, frame.message_id, out)
        if frame.message_type == CALL:
            pending[frame.message_id] = PendingCall(action, payload, rec.ts)
            if len(pending) > MAX_PENDING:
                pending.popitem(last=False)
        queued = rec.direction is Direction.STATION and t <= link.replay_until
        try:
            if rec.direction is Direction.STATION:
                station_messages.on_call(self, rec, action, payload, queued, out)
            else:
                csms_messages.on_call(self, rec, frame.message_id, action, payload, out)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError):
            out.append(
                self._violation(
                    rec,
                    "schema",
                    f"{action} payload lacks fields needed to interpret it",
                    action,
                    frame.message_id,
                )
            )

    # ------------------------------------------------------------------ CALLRESULT / CALLERROR

    def _answer(self, rec: FrameRecord, link: StationLink, frame: Frame, out: list[Event]) -> None:
        call_direction = Direction.CSMS if rec.direction is Direction.STATION else Direction.STATION
        call = link.pending[call_direction].pop(frame.message_id, None)
        if call is None:
            out.append(
                self._violation(
                    rec, "orphan_result", "answer without a matching CALL", None, frame.message_id
                )
            )
            return
        if frame.message_type == CALLRESULT:
            payload: dict[str, Any] = frame.payload
            self._validate(rec, call.action, "result", payload, frame.message_id, out)
            status: str | None = None
            try:
                if call_direction is Direction.STATION:
                    station_messages.on_result(self, rec, call.action, call.payload, payload, out)
                else:
                    status = csms_messages.on_result(self, rec, call.action, call.payload, payload, out)
            except (KeyError, TypeError, ValueError, AttributeError, IndexError):
                out.append(
                    self._violation(
                        rec,
                        "schema",
                        f"{call.action} answer lacks fields needed to interpret it",
                        call.action,
                        frame.message_id,
                    )
                )
        else:
            # a CALLERROR: nothing is assembled from a refused station CALL; a refused command is reported below
            status = f"CALLERROR:{frame.error_code}"
        if call_direction is Direction.CSMS:
            out.append(CommandAnswered(rec.ts, rec.station, rec.ocpp, call.action, frame.message_id, status))

    # ------------------------------------------------------------------ helpers

    def _validate(
        self, rec: FrameRecord, action: str, kind: str, payload: Any, message_id: str, out: list[Event]
    ) -> None:
        if self.validator is None:
            return
        problem = self.validator.validate(rec.ocpp, action, kind, payload)  # type: ignore[arg-type]
        if problem is not None:
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
