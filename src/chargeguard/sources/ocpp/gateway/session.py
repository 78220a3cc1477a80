"""One relayed station connection: both legs, the guard chain on every frame, capture lines, faults, drain.

Frames are forwarded as the original text, one at a time per direction, so order and ids are preserved. A
denied CALL is answered by the gateway with a CALLERROR and never reaches the other side; the gateway never
answers a CALL positively on anyone's behalf. When the CSMS leg fails or stays silent on a station CALL for
``call_timeout_s``, the station leg is closed (1013 try again later / 1011) so the station falls back to its
offline behaviour and reconnects with back-off.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import orjson
import structlog
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from chargeguard.sources.ocpp.gateway.auth import PasswordAuthenticator, password_problem
from chargeguard.sources.ocpp.gateway.credentials import rotated_password, rotation_accepted
from chargeguard.sources.ocpp.gateway.enforce import ENFORCED_ACTIONS, AnswerRewriter, request_token
from chargeguard.sources.ocpp.gateway.guards import ConnectionState, GuardChain, Verdict, callerror_code
from chargeguard.sources.ocpp.gateway.metrics import GatewayMetrics
from chargeguard.sources.ocpp.gateway.observer import FrameObserver, ObserverFanout
from chargeguard.sources.ocpp.gateway.wire import (
    CALL,
    CALLERROR,
    CALLRESULT,
    CALLRESULTERROR,
    Direction,
    Frame,
    callerror_text,
    parse_frame,
    send_now,
)

log = structlog.get_logger("chargeguard.gateway.session")

_SNAKE_RE = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")

_RESULTS = (CALLRESULT, CALLERROR, CALLRESULTERROR)
_FRAMES_KEY = {d: GatewayMetrics.key("chargeguard_gateway_frames_total", sender=d.value) for d in Direction}


class Session:
    """A station leg and its CSMS leg, relayed through the guard chain."""

    def __init__(
        self,
        *,
        station: ServerConnection,
        upstream: ClientConnection,
        state: ConnectionState,
        chain: GuardChain,
        observer: FrameObserver,
        metrics: GatewayMetrics,
        authenticator: PasswordAuthenticator | None,
        call_timeout_s: float,
        max_denied_per_minute: int = 120,
        timestamp: Callable[[], str],
        clock: Callable[[], float] = time.monotonic,
        rewriter: AnswerRewriter | None = None,
        on_password_learned: Callable[[str, str], None] | None = None,
        on_rewrite: Callable[[str, dict[str, Any]], None] | None = None,
        own_call_timeout_s: float = 10.0,
    ) -> None:
        self.station = station
        self._on_rewrite = on_rewrite
        # the gateway's own CALL on the station leg (ClearCache): (message id, action, answer future)
        self._own_call: tuple[str, str, asyncio.Future[list[Any]]] | None = None
        self._own_ids: deque[str] = deque(
            maxlen=16
        )  # ids of the gateway's recent own CALLs (late answers too)
        self._own_call_timeout_s = own_call_timeout_s
        self._on_password_learned = on_password_learned
        self._rewriter = rewriter
        # station CALL id -> the raw token it asks about, only while enforce mode waits for the CSMS answer
        self._asked: dict[str, tuple[str, str]] = {}
        self.upstream = upstream
        self.state = state
        self._chain = chain
        self._observer = observer
        # no capture and no detection configured: frame lines would go nowhere, so none are built
        self._observing = not isinstance(observer, ObserverFanout) or bool(observer.observers)
        self._metrics = metrics
        self._authenticator = authenticator
        self._call_timeout_s = call_timeout_s
        self._timestamp = timestamp
        self._clock = clock
        self._call_started: dict[str, float] = {}
        self._rotations: dict[
            str, str
        ] = {}  # CSMS CALL id -> new station password, until the station answers
        self._log = log.bind(station=state.identity, ocpp=state.version)
        self.closed = asyncio.Event()
        self._closed_by_guard = False
        self._overdue: asyncio.Future[None] | None = None
        self._denials: deque[float] = deque()
        self._max_denied_per_minute = max_denied_per_minute

    @property
    def identity(self) -> str:
        return self.state.identity

    def idle(self) -> bool:
        """No CALL outstanding in either direction (safe to close without losing an answer)."""
        return not any(side.outstanding for side in self.state.sides.values())

    # ---- capture lines ------------------------------------------------------------------------------------
    def frame_line(self, direction: Direction, frame: list[Any]) -> None:
        if not self._observing:
            return
        self._observer.on_frame(
            {
                "ts": self._timestamp(),
                "station": self.state.identity,
                "ocpp": self.state.version,
                "from": direction.value,
                "frame": frame,
            }
        )

    def connection_line(self, event: str, detail: dict[str, Any]) -> None:
        self._observer.on_connection(
            {
                "ts": self._timestamp(),
                "station": self.state.identity,
                "event": event,
                "remote": self.state.address,
                "security_profile": self.state.security_profile,
                "detail": detail,
            }
        )

    # ---- relay --------------------------------------------------------------------------------------------
    async def run(self) -> None:
        """Relay until either leg closes; then close the other leg with a fitting code."""
        self.connection_line("connect", {"subprotocol": self.station.subprotocol})
        pumps: dict[asyncio.Future[None], Direction] = {
            asyncio.create_task(self._pump(Direction.STATION)): Direction.STATION,
            asyncio.create_task(self._pump(Direction.CSMS)): Direction.CSMS,
        }
        watchdog = self._overdue = asyncio.get_running_loop().create_future()
        try:
            done, pending = await asyncio.wait([*pumps, watchdog], return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            first = next(iter(done))
            if first is watchdog:
                await self._close_both(1013, "csms did not answer in time", "upstream_timeout")
            elif self.station.state is not State.OPEN:
                await self._station_gone()
            elif self.upstream.state is not State.OPEN or pumps[first] is Direction.CSMS:
                await self._upstream_gone()  # also when a station frame could not be sent to the CSMS
            else:
                await self._station_gone()
        finally:
            code = self.station.close_code
            self.connection_line("disconnect", {"code": code} if code is not None else {})
            self.closed.set()

    async def _pump(self, direction: Direction) -> None:
        source = self.station if direction is Direction.STATION else self.upstream
        target = self.upstream if direction is Direction.STATION else self.station
        try:
            async for message in source:
                await self._relay_one(message, direction, source, target)
        except (ConnectionClosed, _LegClosedError):
            return

    async def _relay_one(
        self,
        message: str | bytes,
        direction: Direction,
        source: ServerConnection | ClientConnection,
        target: ServerConnection | ClientConnection,
    ) -> None:
        frame = parse_frame(message, direction, self.state.version)
        if self._own_ids and self._own_call_frame(frame):
            if direction is Direction.STATION:
                return  # the station's answer to the gateway's own CALL: for no one else
            if self._own_call is not None:
                await asyncio.wait({self._own_call[2]}, timeout=self._own_call_timeout_s)
        result = self._chain.check(frame, self.state)
        for flag in result.flags:
            self._metrics.inc("chargeguard_gateway_frames_flagged_total", reason=flag.reason)
            self.connection_line("action", _action_detail("flagged", flag, frame))
        verdict = result.verdict
        if not verdict.allow:
            await self._deny(frame, verdict, source)
            return
        before = self.state.sides[direction].pipelined
        answered = self.state.commit(frame)
        if answered is None and frame.message_type in _RESULTS and frame.message_type != CALLRESULTERROR:
            # a result for no outstanding CALL: forwarded (it may be late), flagged for ocpp.malformed
            unmatched = Verdict(False, "message_id", "result_without_call", policy=True)
            self.connection_line("action", _action_detail("flagged", unmatched, frame))
        if self.state.sides[direction].pipelined != before:
            self._metrics.inc("chargeguard_gateway_pipelined_calls_total", sender=direction.value)
        if frame.value is not None:
            self.frame_line(direction, frame.value)
        self._metrics.inc_key(_FRAMES_KEY[direction])
        if frame.message_id is not None:
            if direction is Direction.STATION:
                if frame.message_type == CALL:
                    self._call_started[frame.message_id] = self._clock()
                else:
                    self.learn_from_station_result(frame)
            elif frame.message_type == CALL:
                self._track_rotation(frame)
            else:
                self._call_started.pop(frame.message_id, None)
        if self._rewriter is not None and frame.message_id is not None:
            message = self._enforce(frame, direction, answered, message)
        if target.state is not State.OPEN:
            # never wait on a closing leg: websockets would block until its TCP connection is gone
            raise _LegClosedError
        if not send_now(target, message):
            await target.send(message)

    def _enforce(
        self, frame: Frame, direction: Direction, answered: str | None, message: str | bytes
    ) -> str | bytes:
        """Enforce mode: remember what a station asks about; rewrite the CSMS answer if the token is under alert."""
        assert self._rewriter is not None and frame.message_id is not None
        if direction is Direction.STATION:
            if frame.message_type == CALL and frame.action in ENFORCED_ACTIONS:
                token = request_token(frame.action, frame.payload)
                if token is not None:
                    self._asked[frame.message_id] = (frame.action, token)
                    if len(self._asked) > 64:
                        del self._asked[next(iter(self._asked))]
            return message
        asked = self._asked.pop(frame.message_id, None) if frame.message_type in _RESULTS else None
        if asked is None or frame.message_type != CALLRESULT or answered != asked[0]:
            return message
        if not isinstance(frame.payload, dict):
            return message
        decision = self._rewriter.rewrite(self.state.identity, asked[0], asked[1], frame.payload)
        if decision is None:
            return message
        answer, detail = decision
        self._metrics.inc("chargeguard_gateway_answers_rewritten_total", call=asked[0])
        self.connection_line("action", detail)
        if self._on_rewrite is not None:
            self._on_rewrite(self.state.identity, detail)
        return orjson.dumps([CALLRESULT, frame.message_id, answer]).decode()

    async def _deny(
        self, frame: Frame, verdict: Verdict, source: ServerConnection | ClientConnection
    ) -> None:
        self._metrics.inc("chargeguard_gateway_frames_denied_total", reason=verdict.reason)
        if frame.value is not None:
            self.frame_line(frame.direction, frame.value)
        detail = _action_detail("denied", verdict, frame)
        if frame.direction is Direction.STATION and verdict.close_code is None and self._too_many_denials():
            verdict = Verdict(False, verdict.guard, verdict.reason, close_code=1008)
            detail["action"] = "closed"
            detail["close_reason"] = "too_many_denied_frames"
        if verdict.close_code is not None:
            detail["close_code"] = verdict.close_code
            self.connection_line("action", detail)
            self._closed_by_guard = True
            await source.close(verdict.close_code, verdict.reason)
            return
        code = callerror_code(self.state.version, verdict.reason)
        answer_id = frame.message_id
        if answer_id is None and self.state.version != "1.6":
            answer_id = "-1"  # OCPP 2.0.1 4.2.3: the message id could not be read
        answerable = frame.message_type == CALL or (
            frame.problem is not None and frame.message_type not in _RESULTS
        )
        if code is None or answer_id is None or not answerable:
            detail["answered"] = None
            self.connection_line("action", detail)
            return
        detail["answered"] = code
        self.connection_line("action", detail)
        description = f"refused by gateway: {verdict.reason}"
        self.frame_line(frame.direction.other, [4, answer_id, code, description, {}])
        if source.state is State.OPEN:
            await source.send(callerror_text(answer_id, code, description))

    # ---- the gateway's own CALLs ---------------------------------------------------------------------------
    def _own_call_frame(self, frame: Frame) -> bool:
        """True for the station's answer to the gateway's own CALL (consumed here) and for a CSMS CALL, which
        waits until that answer arrived (one CALL at a time towards the station)."""
        own = self._own_call
        if frame.direction is Direction.STATION:
            if frame.message_type not in (CALLRESULT, CALLERROR) or frame.message_id not in self._own_ids:
                return False
            if own is not None and frame.message_id == own[0]:
                if not own[2].done():
                    own[2].set_result(frame.value or [])
            else:  # an answer after the gateway stopped waiting: still nobody else's
                self.connection_line(
                    "action", {"action": "own_call_answered_late", "message_id": frame.message_id}
                )
            return True
        return own is not None and frame.message_type == CALL and not own[2].done()

    async def send_own_call(self, action: str, payload: dict[str, Any], detail: dict[str, Any]) -> None:
        """Send a gateway-originated CALL (ClearCache) to the station and record it and its answer as action lines.

        It is never pipelined: it waits until no CSMS CALL is outstanding towards the station, and CSMS CALLs that
        arrive meanwhile wait for its answer (at most ``own_call_timeout_s``). The answer is not forwarded.
        Raises ConnectionClosed (or ``_LegClosedError``) when the station leg is gone.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._call_timeout_s
        while self.state.sides[Direction.CSMS].outstanding or self._own_call is not None:
            if self.closed.is_set() or loop.time() > deadline:
                raise _LegClosedError
            await asyncio.sleep(0.02)
        if self.station.state is not State.OPEN:
            raise _LegClosedError
        message_id = "cg-" + secrets.token_hex(8)
        future: asyncio.Future[list[Any]] = loop.create_future()
        self._own_call = (message_id, action, future)
        self._own_ids.append(message_id)
        name = _SNAKE_RE.sub("_", action).lower()
        base = {**detail, "ocpp_action": action, "message_id": message_id}
        try:
            self.connection_line("action", {"action": f"{name}_sent", **base})
            await self.station.send(orjson.dumps([CALL, message_id, action, payload]).decode())
            try:
                answer = await asyncio.wait_for(future, self._own_call_timeout_s)
            except TimeoutError:
                self.connection_line("action", {"action": f"{name}_unanswered", **base})
                return
        finally:
            self._own_call = None
        if answer and answer[0] == CALLRESULT and isinstance(answer[2], dict):
            status = answer[2].get("status")
            outcome = {"status": status if isinstance(status, str) and len(status) <= 32 else "?"}
        else:
            code = answer[2] if len(answer) > 2 and isinstance(answer[2], str) else "?"
            outcome = {"error": code[:64]}
        self.connection_line("action", {"action": f"{name}_answered", **base, **outcome})
        self._log.info("gateway.own_call.answered", action=action, **outcome)

    def _too_many_denials(self) -> bool:
        """A station whose frames keep being denied is closed (1008) instead of answered forever."""
        now = self._clock()
        self._denials.append(now)
        while self._denials and now - self._denials[0] > 60.0:
            self._denials.popleft()
        return len(self._denials) > self._max_denied_per_minute

    def _track_rotation(self, frame: Frame) -> None:
        """Remember a password rotation the CSMS sends until the station answers it."""
        if self._authenticator is None or frame.message_id is None:
            return
        new_password = rotated_password(frame.action, frame.payload)
        if new_password is not None:
            self._rotations[frame.message_id] = new_password

    def learn_from_station_result(self, frame: Frame) -> None:
        """Called for station results: a rotation the station accepted replaces the stored hash."""
        if self._authenticator is None or frame.message_id is None:
            return
        password = self._rotations.pop(frame.message_id, None)
        if password is None or frame.message_type != CALLRESULT or not rotation_accepted(frame.payload):
            return
        problem = password_problem(self.state.version, password)
        if problem is not None:
            self.connection_line("action", {"action": "password_rotation_ignored", "reason": problem})
            return
        encoded = self._authenticator.learn_password(self.state.identity, password)
        if self._on_password_learned is not None:
            self._on_password_learned(self.state.identity, encoded)
        self.connection_line("action", {"action": "password_rotation_learned"})
        self._log.info("gateway.password.rotated")

    def check_overdue(self, now: float) -> None:
        """Called periodically by the gateway: a station CALL unanswered for ``call_timeout_s`` ends the session."""
        if not self._call_started:  # idle (the common case, for every session every second)
            return
        outstanding = self.state.sides[Direction.STATION].outstanding
        for message_id in [m for m in self._call_started if m not in outstanding]:
            del self._call_started[message_id]
        overdue = any(now - started > self._call_timeout_s for started in self._call_started.values())
        if overdue and self._overdue is not None and not self._overdue.done():
            self._metrics.inc("chargeguard_gateway_upstream_failures_total", reason="timeout")
            self._overdue.set_result(None)

    # ---- endings ------------------------------------------------------------------------------------------
    async def _upstream_gone(self) -> None:
        received = self.upstream.protocol.close_rcvd
        if received is not None and received.code in (1000, 1001):
            await self._close_station(received.code, "csms closed the connection", "upstream_closed")
        else:
            self._metrics.inc("chargeguard_gateway_upstream_failures_total", reason="lost")
            await self._close_station(1013, "csms unavailable", "upstream_lost")

    async def _station_gone(self) -> None:
        code = self.station.close_code or 1000
        sent = self.station.protocol.close_sent
        if (
            sent is not None and sent.code == 1009 and not self._closed_by_guard
        ):  # websockets' max_size: after decompression, before parsing
            self._metrics.inc("chargeguard_gateway_frames_denied_total", reason="too_large")
            detail = {"action": "denied", "guard": "size", "reason": "too_large", "from": "station"}
            self.connection_line("action", {**detail, "close_code": 1009})
        if code in (1000, 1001):
            await _close(self.upstream, code, "station closed the connection")
        else:
            await _close(self.upstream, 1001, "station connection lost")

    async def _close_station(self, code: int, reason: str, action: str) -> None:
        self.connection_line("action", {"action": action, "close_code": code})
        self._log.info("gateway.session.closing", reason=action, code=code)
        await _close(self.station, code, reason)

    async def _close_both(self, code: int, reason: str, action: str) -> None:
        await self._close_station(code, reason, action)
        await _close(self.upstream, 1001, "gateway closed the station connection")

    async def drain_and_close(self, deadline_s: float) -> None:
        """Graceful shutdown: wait until no CALL is outstanding (at most ``deadline_s``), then close with 1001."""
        loop = asyncio.get_running_loop()
        end = loop.time() + deadline_s
        while not self.idle() and loop.time() < end and not self.closed.is_set():
            await asyncio.sleep(0.01)
        if not self.closed.is_set():
            await self._close_both(1001, "gateway shutting down", "shutdown")


class _LegClosedError(Exception):
    """The leg a frame should go to is closing or closed."""


async def _close(connection: ServerConnection | ClientConnection, code: int, reason: str) -> None:
    """Close a leg; a peer that does not complete the closing handshake within 2 s is cut off."""
    try:
        await asyncio.wait_for(connection.close(code, reason), 2.0)
    except TimeoutError:
        connection.transport.abort()


def _action_detail(what: str, verdict: Verdict, frame: Frame) -> dict[str, Any]:
    detail: dict[str, Any] = {
        "action": what,
        "guard": verdict.guard,
        "reason": verdict.reason,
        "from": frame.direction.value,
        "bytes": frame.size_bytes,
    }
    if frame.message_id is not None and len(frame.message_id) <= 64:
        detail["message_id"] = frame.message_id
    if frame.action is not None and len(frame.action) <= 64:
        detail["ocpp_action"] = frame.action
    return detail
