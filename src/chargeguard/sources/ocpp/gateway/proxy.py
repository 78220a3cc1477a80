"""The gateway server: listeners, the authenticated upgrade, upstream-first subprotocol negotiation, duplicates.

Upgrade of ``GET <path>/<identity>`` (all inside websockets' ``process_request``, before any answer):

1. health (``/healthz``) and Prometheus (``/metrics``) requests are answered directly;
2. the identity must be a configured station; the listener must match its security profile (a profile 2/3
   station on the plain listener is a downgrade attempt and refused);
3. authentication (profile 1/2: HTTP Basic, username == identity, see ``auth``; profile 3: client certificate,
   see ``tls``), with lockout and rate limits before any slow hash; failures become ``auth_failed`` lines;
4. the duplicate-connection policy, only now that the station is authenticated: an existing connection that
   answers a ping within ``duplicate_ping_timeout_s`` is kept and the new one refused (409); a dead one is closed;
5. the CSMS leg is opened with the same identity, offering what the station offered (or, for a station offering
   no subprotocol, the version its configuration names); the station is answered with what the CSMS selected.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import http
import ipaddress
import re
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import structlog
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed, InvalidHeaderFormat
from websockets.headers import parse_subprotocol
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from chargeguard.sources.ocpp.gateway.auth import Lockout, PasswordAuthenticator
from chargeguard.sources.ocpp.gateway.cache_clear import AuthorizationCacheClearer
from chargeguard.sources.ocpp.gateway.config import SUBPROTOCOL_OF, GatewayConfig, StationConfig
from chargeguard.sources.ocpp.gateway.credentials import LearnedCredentials
from chargeguard.sources.ocpp.gateway.enforce import AnswerRewriter
from chargeguard.sources.ocpp.gateway.guards import (
    ConnectionState,
    PayloadValidator,
    build_chain,
    default_validator,
)
from chargeguard.sources.ocpp.gateway.handshake import authenticate
from chargeguard.sources.ocpp.gateway.metrics import GatewayMetrics, http_endpoint
from chargeguard.sources.ocpp.gateway.observer import FrameObserver, Timestamps
from chargeguard.sources.ocpp.gateway.session import Session
from chargeguard.sources.ocpp.gateway.tls import ClientCertificateVerifier, server_context, upstream_context
from chargeguard.sources.ocpp.gateway.upstream import (
    UpstreamRefusal,
    force_close,
    open_upstream,
    station_deflate,
)

log = structlog.get_logger("chargeguard.gateway")

_IDENTITY_RE = re.compile(r"^[A-Za-z0-9*\-_=:+|@.]{1,48}$")  # OCPP 2.0.1 identifierString, max 48


@dataclass(slots=True)
class _Pending:
    """An authenticated upgrade whose CSMS leg is open, waiting for the handshake answer and the handler."""

    identity: str
    station: StationConfig
    upstream: ClientConnection
    version: str
    subprotocol: Subprotocol | None
    profile: int
    remote: str


class Gateway:
    """The inline OCPP security gateway (start with :meth:`start`, stop gracefully with :meth:`stop`)."""

    def __init__(
        self,
        config: GatewayConfig,
        observer: FrameObserver,
        *,
        validator: PayloadValidator | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], dt.datetime] | None = None,
        rewriter: AnswerRewriter | None = None,
        cache_clearer: AuthorizationCacheClearer | None = None,
    ) -> None:
        self.config = config
        self.cache_clearer = cache_clearer
        self.observer = observer
        self.rewriter = rewriter
        self.metrics = GatewayMetrics()
        self._clock = clock
        self.wall_clock: Callable[[], dt.datetime] = wall_clock or (lambda: dt.datetime.now(dt.UTC))
        self.timestamp = Timestamps(wall_clock)
        policy = config.policy
        self.lockout = Lockout(
            policy.lockout_after_failures, policy.lockout_base_s, policy.lockout_max_s, clock
        )
        self.authenticator = PasswordAuthenticator(
            handshakes_per_s=policy.address_handshakes_per_s,
            handshake_burst=policy.address_handshake_burst,
            hashes_per_s=policy.hashes_per_s,
            cache_s=policy.credential_cache_s,
            lockout=self.lockout,
            clock=clock,
        )
        self.learned: LearnedCredentials | None = None
        learned: dict[str, str] = {}
        if config.learned_credentials is not None:
            configured = {identity: s.password_hash for identity, s in config.stations.items()}
            self.learned = LearnedCredentials(config.learned_credentials, configured)
            learned = self.learned.effective()
        for identity, station in config.stations.items():
            encoded = learned.get(identity, station.password_hash)
            if encoded:
                self.authenticator.set_hash(identity, encoded)
        self.cert_verifier: ClientCertificateVerifier | None = None
        if config.tls is not None and config.tls.operator:
            self.cert_verifier = ClientCertificateVerifier(
                config.tls.operator, config.tls.crl, config.tls.client_ca
            )
        self._upstream_ssl = upstream_context(config.upstream)
        if validator is None and policy.schema_validation:
            validator = default_validator()
        self.chain = build_chain(policy, validator, clock)
        self.sessions: dict[str, Session] = {}
        self._pending: dict[ServerConnection, _Pending] = {}
        self._claimed: set[str] = set()
        self._reapers: dict[ServerConnection, asyncio.Task[None]] = {}
        self._metrics_from = [ipaddress.ip_network(n, strict=False) for n in config.listen.metrics_from]
        self._identity_locks: dict[str, asyncio.Lock] = {}
        self._servers: list[Server] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self.plain_port: int | None = None
        self._stopping = False
        self.tls_port: int | None = None
        if cache_clearer is not None:
            cache_clearer.bind(self.sessions, self.spawn)

    def spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        """Run a background job of the gateway (cancelled at stop)."""
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ---- lifecycle ----------------------------------------------------------------------------------------
    async def start(self) -> None:
        listen = self.config.listen
        common: dict[str, Any] = {
            "select_subprotocol": self._select_subprotocol,
            "process_response": self._process_response,
            "max_size": self.config.policy.max_frame_bytes,
            "compression": None,
            "extensions": station_deflate(self.config.policy),
            "open_timeout": self.config.upstream.open_timeout_s + 5.0,
            "server_header": None,
            "ping_interval": self.config.policy.station_ping_interval_s,
            "ping_timeout": self.config.policy.station_ping_interval_s,
        }
        if listen.plain_port is not None:
            server = await serve(
                self._handle, listen.host, listen.plain_port, process_request=self._plain_request, **common
            )
            self._servers.append(server)
            self.plain_port = server.sockets[0].getsockname()[1]
        if listen.tls_port is not None:
            assert self.config.tls is not None
            ctx = server_context(self.config.tls)
            server = await serve(
                self._handle,
                listen.host,
                listen.tls_port,
                ssl=ctx,
                process_request=self._tls_request,
                **common,
            )
            self._servers.append(server)
            self.tls_port = server.sockets[0].getsockname()[1]
        watchdog = asyncio.create_task(self._watch_calls())
        self._tasks.add(watchdog)
        watchdog.add_done_callback(self._tasks.discard)
        log.info("gateway.started", plain_port=self.plain_port, tls_port=self.tls_port)

    async def _watch_calls(self) -> None:
        """One task for all sessions: end those whose CSMS left a station CALL unanswered too long."""
        interval = min(1.0, self.config.upstream.call_timeout_s / 4)
        while True:
            await asyncio.sleep(interval)
            now = self._clock()
            for session in list(self.sessions.values()):
                session.check_overdue(now)

    async def stop(self) -> None:
        """Stop accepting, let in-flight CALLs finish (``drain_timeout_s``), close every leg with 1001."""
        self._stopping = True
        for server in self._servers:
            server.close(close_connections=False)
        drain = self.config.policy.drain_timeout_s
        await asyncio.gather(*(s.drain_and_close(drain) for s in list(self.sessions.values())))
        for server in self._servers:
            server.close()
            await server.wait_closed()
        for pending in list(self._pending.values()):
            await pending.upstream.close(1001)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        log.info("gateway.stopped")

    # ---- HTTP side ----------------------------------------------------------------------------------------
    async def _plain_request(self, connection: ServerConnection, request: Request) -> Response | None:
        return await self._process_request(connection, request, tls=False)

    async def _tls_request(self, connection: ServerConnection, request: Request) -> Response | None:
        return await self._process_request(connection, request, tls=True)

    async def _process_request(
        self, connection: ServerConnection, request: Request, *, tls: bool
    ) -> Response:
        path = request.path.split("?", 1)[0]
        if path in ("/healthz", "/metrics"):
            self.metrics.set("chargeguard_gateway_open_connections", len(self.sessions))
            self.metrics.set("chargeguard_gateway_password_hashes_total", self.authenticator.hash_count)
            return http_endpoint(connection, path, self.metrics, self._metrics_from, draining=self._stopping)
        prefix = self.config.listen.path + "/"
        if not path.startswith(prefix) or request.headers.get("Upgrade", "").lower() != "websocket":
            return connection.respond(http.HTTPStatus.NOT_FOUND, "not found\n")
        identity = unquote(path[len(prefix) :])
        if not _IDENTITY_RE.match(identity):
            return connection.respond(http.HTTPStatus.NOT_FOUND, "not found\n")
        remote = _remote(connection)
        refusal = await self._authenticate(connection, request, identity, remote, tls=tls)
        if refusal is not None:
            return refusal
        station = self.config.stations[identity]
        try:
            raw_offer = [
                p
                for h in request.headers.get_all("Sec-WebSocket-Protocol")
                if h
                for p in parse_subprotocol(h)
            ]
        except InvalidHeaderFormat:
            raw_offer = [Subprotocol("<invalid>")]
        # a station whose configuration names its version may only speak that one (no version downgrade)
        offered = [
            Subprotocol(p)
            for p in raw_offer
            if p in SUBPROTOCOL_OF and (station.ocpp is None or SUBPROTOCOL_OF[p] == station.ocpp)
        ]
        profile = self.profile_of(connection, tls)
        if not offered and (raw_offer or station.ocpp is None):
            detail = {"action": "refused", "reason": "no_supported_subprotocol", "offered": raw_offer[:8]}
            self._action(identity, remote, profile, detail)
            return connection.respond(http.HTTPStatus.BAD_REQUEST, "no supported OCPP subprotocol\n")
        lock = self._identity_locks.setdefault(identity, asyncio.Lock())
        async with lock:
            if not await self._admit_duplicate(identity, remote, profile):
                return connection.respond(http.HTTPStatus.CONFLICT, "station already connected\n")
            return await self._open_upstream(connection, request, identity, station, offered, profile, remote)

    async def _authenticate(
        self, connection: ServerConnection, request: Request, identity: str, remote: str, *, tls: bool
    ) -> Response | None:
        return authenticate(self, connection, request, identity, remote, tls=tls)

    def profile_of(self, connection: ServerConnection, tls: bool) -> int:
        if not tls:
            return 1
        ssl_object = connection.transport.get_extra_info("ssl_object")
        has_cert = ssl_object is not None and ssl_object.getpeercert(binary_form=True)
        return 3 if has_cert else 2

    async def _admit_duplicate(self, identity: str, remote: str, profile: int) -> bool:
        """True when the new authenticated connection may proceed (no live connection holds the identity)."""
        if identity in self._claimed and identity not in self.sessions:
            self._action(
                identity, remote, profile, {"action": "duplicate_refused", "reason": "handshake_pending"}
            )
            return False
        old = self.sessions.get(identity)
        if old is None:
            return True
        try:
            waiter = await old.station.ping()
            await asyncio.wait_for(waiter, self.config.policy.duplicate_ping_timeout_s)
        except (TimeoutError, ConnectionClosed):
            self._action(
                identity, remote, profile, {"action": "duplicate_replaced", "reason": "old_unresponsive"}
            )
            await asyncio.gather(
                force_close(old.station, 1001, "replaced by a new connection"),
                force_close(old.upstream, 1001, "station reconnected"),
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(old.closed.wait(), 2.0)
            return True
        self.metrics.inc("chargeguard_gateway_auth_failures_total", reason="duplicate_connection")
        self._action(
            identity, remote, profile, {"action": "duplicate_refused", "reason": "old_connection_alive"}
        )
        return False

    async def _open_upstream(
        self,
        connection: ServerConnection,
        request: Request,
        identity: str,
        station: StationConfig,
        offered: list[Subprotocol],
        profile: int,
        remote: str,
    ) -> Response:
        offer = offered or [Subprotocol("ocpp" + str(station.ocpp))]
        upstream = await open_upstream(
            self.config.upstream,
            self.config.policy,
            self._upstream_ssl,
            identity=identity,
            offer=offer,
            station_authorization=request.headers.get("Authorization"),
        )
        if isinstance(upstream, UpstreamRefusal):
            self.metrics.inc("chargeguard_gateway_upstream_failures_total", reason=upstream.metric)
            detail: dict[str, Any] = {"action": "refused", "reason": upstream.reason}
            if upstream.reason == "upstream_refused":
                detail["status"] = upstream.status
            self._action(identity, remote, profile, detail)
            return connection.respond(
                http.HTTPStatus(upstream.status), f"{upstream.reason.replace('_', ' ')}\n"
            )
        selected = upstream.subprotocol
        assert selected is not None
        version = SUBPROTOCOL_OF[selected]
        self._pending[connection] = _Pending(
            identity, station, upstream, version, selected if offered else None, profile, remote
        )
        self._claimed.add(identity)
        return connection.protocol.accept(request)

    def _select_subprotocol(self, connection: ServerConnection, offered: Any) -> Subprotocol | None:
        pending = self._pending.get(connection)
        return None if pending is None else pending.subprotocol

    async def _process_response(
        self, connection: ServerConnection, request: Request, response: Response
    ) -> Response | None:
        pending = self._pending.get(connection)
        if pending is not None and response.status_code != http.HTTPStatus.SWITCHING_PROTOCOLS:
            await self._release(connection)
        elif pending is not None:
            task = asyncio.create_task(self._reap_unclaimed(connection))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            self._reapers[connection] = task
        return None

    async def _reap_unclaimed(self, connection: ServerConnection) -> None:
        """A station that vanished between our 101 and the handler: close its CSMS leg."""
        await asyncio.sleep(self.config.upstream.open_timeout_s + 5.0)
        self._reapers.pop(connection, None)
        if connection in self._pending:
            await self._release(connection)

    async def _release(self, connection: ServerConnection) -> None:
        pending = self._pending.pop(connection, None)
        if pending is not None:
            self._claimed.discard(pending.identity)
            await pending.upstream.close(1001, "station handshake failed")

    # ---- WebSocket side -----------------------------------------------------------------------------------
    async def _handle(self, connection: ServerConnection) -> None:
        pending = self._pending.pop(connection, None)
        reaper = self._reapers.pop(connection, None)
        if reaper is not None:
            reaper.cancel()
        if pending is None:
            await connection.close(1011, "no upstream")
            return
        policy = self.config.policy
        state = ConnectionState(
            pending.identity,
            pending.version,
            pending.remote,
            pending.profile,
            max_seen_ids=policy.seen_message_ids,
        )
        session = Session(
            station=connection,
            upstream=pending.upstream,
            state=state,
            chain=self.chain,
            observer=self.observer,
            metrics=self.metrics,
            authenticator=self.authenticator if pending.profile in (1, 2) else None,
            call_timeout_s=self.config.upstream.call_timeout_s,
            max_denied_per_minute=policy.max_denied_per_minute,
            timestamp=self.timestamp,
            clock=self._clock,
            rewriter=self.rewriter,
            on_password_learned=self._password_learned,
            on_rewrite=None if self.cache_clearer is None else self.cache_clearer.rewritten,
        )
        self.sessions[pending.identity] = session
        if self.cache_clearer is not None:
            self.cache_clearer.connected(session)
        self.metrics.inc("chargeguard_gateway_connections_total", profile=str(pending.profile))
        try:
            await session.run()
        finally:
            if self.sessions.get(pending.identity) is session:
                del self.sessions[pending.identity]
                self._claimed.discard(pending.identity)

    def _password_learned(self, identity: str, encoded_hash: str) -> None:
        """A rotation the station accepted: persist its hash so a restarted gateway admits the new password."""
        if self.learned is None:
            return
        try:
            self.learned.record(identity, encoded_hash, self.wall_clock())
        except OSError as exc:
            log.error("gateway.credentials.save_failed", station=identity, error=exc.strerror)

    def _action(self, identity: str, remote: str, profile: int, detail: dict[str, Any]) -> None:
        self.observer.on_connection(self.connection_line(identity, "action", remote, profile, detail))

    def connection_line(
        self, identity: str, event: str, remote: str, profile: int, detail: dict[str, Any]
    ) -> dict[str, Any]:
        line: dict[str, Any] = {"ts": self.timestamp(), "station": identity, "event": event}
        line["remote"] = remote
        if profile:
            line["security_profile"] = profile
        line["detail"] = detail
        return line


def _remote(connection: ServerConnection) -> str:
    address = connection.remote_address
    if isinstance(address, tuple) and len(address) >= 2:
        host, port = address[0], address[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(address)
