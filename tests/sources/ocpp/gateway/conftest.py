"""Gateway test peers: a PKI generated per run, a real OCPP central system built with the ``ocpp`` library, and a
harness running the gateway between them on 127.0.0.1 (ephemeral ports only)."""

from __future__ import annotations

import asyncio
import datetime as dt
import http
import ipaddress
import json
import ssl
import warnings
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import ocpp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from ocpp.routing import on
from ocpp.v16 import ChargePoint as Cp16
from ocpp.v16 import call_result as r16
from ocpp.v16.enums import Action as Action16
from ocpp.v16.enums import RegistrationStatus
from ocpp.v201 import ChargePoint as Cp201
from ocpp.v201 import call_result as r201
from ocpp.v201.enums import Action as Action201
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.headers import build_authorization_basic

from chargeguard.sources.ocpp.gateway.auth import hash_password
from chargeguard.sources.ocpp.gateway.config import GatewayConfig, parse_config
from chargeguard.sources.ocpp.gateway.observer import CollectingObserver, ObserverFanout
from chargeguard.sources.ocpp.gateway.proxy import Gateway

OPERATOR = "Example CPO"
PW16 = "0123456789abcdef0123456789abcdef01234567"  # 20 bytes as 40 hex characters
PW201 = "correct-horse-battery-staple-1"
NOW = dt.datetime.now(dt.UTC)


# ---- PKI -------------------------------------------------------------------------------------------------------
def _name(cn: str, org: str | None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org is not None:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


def _cert(
    subject: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool = False,
    server: bool = False,
    serial: int | None = None,
    not_after: dt.datetime | None = None,
    not_before: dt.datetime | None = None,
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(serial or x509.random_serial_number())
        .not_valid_before(not_before or NOW - dt.timedelta(days=1))
        .not_valid_after(not_after or NOW + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


@dataclass
class Pki:
    dir: Path
    ca: Path
    server_cert: Path
    server_key: Path
    crl: Path
    clients: dict[str, tuple[Path, Path]] = field(default_factory=dict)

    def client_context(self, name: str | None, *, tls_max: ssl.TLSVersion | None = None) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(self.ca))
        if name is not None:
            cert, key = self.clients[name]
            ctx.load_cert_chain(cert, key)
        if tls_max is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                ctx.set_ciphers("DEFAULT:@SECLEVEL=0")  # the client itself would allow old versions
                ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
                ctx.maximum_version = tls_max
        return ctx


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d = tmp_path_factory.mktemp("pki")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("Test Root CA", OPERATOR)
    ca_cert = _cert(ca_name, ca_key, ca_name, ca_key, ca=True)
    (d / "ca.pem").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = _cert(_name("127.0.0.1", OPERATOR), server_key, ca_name, ca_key, server=True)
    (d / "server.pem").write_bytes(server.public_bytes(serialization.Encoding.PEM))
    _write_key(d / "server.key", server_key)
    other_key = ec.generate_private_key(ec.SECP256R1())
    other_name = _name("Rogue CA", OPERATOR)
    revoked_serial = x509.random_serial_number()
    specs: dict[str, dict[str, Any]] = {
        "good": {"cn": "SN-0001", "org": OPERATOR},
        "good2": {"cn": "CP-3", "org": OPERATOR},
        "wrong_o": {"cn": "SN-0001", "org": "Someone Else"},
        "wrong_cn": {"cn": "SN-9999", "org": OPERATOR},
        "expired": {"cn": "SN-0001", "org": OPERATOR, "not_after": NOW - dt.timedelta(days=1),
                    "not_before": NOW - dt.timedelta(days=10)},
        "revoked": {"cn": "SN-0001", "org": OPERATOR, "serial": revoked_serial},
        "rogue": {"cn": "SN-0001", "org": OPERATOR, "issuer": (other_name, other_key)},
    }  # fmt: skip
    pki = Pki(d, d / "ca.pem", d / "server.pem", d / "server.key", d / "ca.crl")
    for name, spec in specs.items():
        key = ec.generate_private_key(ec.SECP256R1())
        issuer_name, issuer_key = spec.get("issuer", (ca_name, ca_key))
        cert = _cert(
            _name(spec["cn"], spec["org"]),
            key,
            issuer_name,
            issuer_key,
            serial=spec.get("serial"),
            not_after=spec.get("not_after"),
            not_before=spec.get("not_before"),
        )
        (d / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(d / f"{name}.key", key)
        pki.clients[name] = (d / f"{name}.pem", d / f"{name}.key")
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca_name)
        .last_update(NOW - dt.timedelta(hours=1))
        .next_update(NOW + dt.timedelta(days=1))
        .add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(revoked_serial).revocation_date(NOW).build()
        )
        .sign(ca_key, hashes.SHA256())
    )
    (d / "ca.crl").write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    return pki


@pytest.fixture(scope="session")
def hashes_by_password() -> Callable[[str], str]:
    """Fast (n=2**10) scrypt hashes for tests, one per password."""
    return cache(lambda password: hash_password(password, n=2**10))


# ---- schema validator over the schemas the ocpp package ships -------------------------------------------------------
_SCHEMAS = Path(ocpp.__file__).parent


class SchemaValidator:
    """The PayloadValidator contract implemented with format-checking jsonschema (slow, for tests)."""

    @cache  # noqa: B019 - one instance per test session
    def _validator(self, version: str, action: str, kind: str) -> jsonschema.protocols.Validator | None:
        if version == "1.6":
            path = _SCHEMAS / "v16" / "schemas" / f"{action}{'Response' if kind == 'result' else ''}.json"
        else:
            path = (
                _SCHEMAS
                / "v201"
                / "schemas"
                / f"{action}{'Response' if kind == 'result' else 'Request'}.json"
            )
        if not path.exists():
            return None
        schema = json.loads(path.read_text(encoding="utf-8"))
        cls = jsonschema.validators.validator_for(schema)
        return cls(schema, format_checker=cls.FORMAT_CHECKER)  # type: ignore[no-any-return]

    def validate(self, version: str, action: str, kind: str, payload: object) -> str | None:
        validator = self._validator(version, action, kind)
        if validator is None:
            return "unknown action"
        error = jsonschema.exceptions.best_match(validator.iter_errors(payload))
        return None if error is None else error.message[:200]


# ---- the central system ---------------------------------------------------------------------------------------------
class Csms16(Cp16):
    """A minimal OCPP 1.6 central system."""

    def __init__(self, identity: str, connection: Any, csms: Csms) -> None:
        super().__init__(identity, connection)
        self.csms = csms

    @on(Action16.boot_notification)
    async def on_boot(self, **kwargs: Any) -> r16.BootNotification:
        return r16.BootNotification(
            current_time=NOW.isoformat(), interval=300, status=RegistrationStatus.accepted
        )

    @on(Action16.heartbeat)
    async def on_heartbeat(self) -> r16.Heartbeat:
        await self.csms.pause()
        return r16.Heartbeat(current_time=dt.datetime.now(dt.UTC).isoformat())

    @on(Action16.authorize)
    async def on_authorize(self, id_tag: str) -> r16.Authorize:
        return r16.Authorize(id_tag_info={"status": self.csms.status_of(id_tag)})

    @on(Action16.start_transaction)
    async def on_start(self, id_tag: str, **kwargs: Any) -> r16.StartTransaction:
        await self.csms.pause()
        self.csms.transactions += 1
        return r16.StartTransaction(
            transaction_id=4710 + self.csms.transactions, id_tag_info={"status": self.csms.status_of(id_tag)}
        )

    @on(Action16.status_notification)
    async def on_status(self, **kwargs: Any) -> r16.StatusNotification:
        return r16.StatusNotification()

    @on(Action16.security_event_notification)
    async def on_security_event(self, **kwargs: Any) -> r16.SecurityEventNotification:
        return r16.SecurityEventNotification()

    @on(Action16.meter_values)
    async def on_meter(self, **kwargs: Any) -> r16.MeterValues:
        return r16.MeterValues()

    @on(Action16.stop_transaction)
    async def on_stop(self, **kwargs: Any) -> r16.StopTransaction:
        return r16.StopTransaction()


class Csms201(Cp201):
    """A minimal OCPP 2.0.1 central system."""

    def __init__(self, identity: str, connection: Any, csms: Csms) -> None:
        super().__init__(identity, connection)
        self.csms = csms

    @on(Action201.boot_notification)
    async def on_boot(self, **kwargs: Any) -> r201.BootNotification:
        return r201.BootNotification(current_time=NOW.isoformat(), interval=300, status="Accepted")

    @on(Action201.heartbeat)
    async def on_heartbeat(self) -> r201.Heartbeat:
        await self.csms.pause()
        return r201.Heartbeat(current_time=dt.datetime.now(dt.UTC).isoformat())

    @on(Action201.transaction_event)
    async def on_tx(self, **kwargs: Any) -> r201.TransactionEvent:
        await self.csms.pause()
        return r201.TransactionEvent()

    @on(Action201.authorize)
    async def on_authorize(self, id_token: dict[str, Any], **kwargs: Any) -> r201.Authorize:
        return r201.Authorize(id_token_info={"status": "Accepted"})


class Csms:
    """A real central system on 127.0.0.1 speaking OCPP 1.6 and 2.0.1 through the ocpp library."""

    def __init__(self, subprotocols: tuple[str, ...] = ("ocpp2.0.1", "ocpp1.6")) -> None:
        self.subprotocols = subprotocols
        self.delay_s = 0.0
        self.connections: list[ServerConnection] = []
        self.requests: list[dict[str, Any]] = []  # path, subprotocol, authorization header
        self.received: list[tuple[str, Any]] = []  # (identity, raw frame) as received
        self.points: dict[str, Cp16 | Cp201] = {}
        self.server: Server | None = None
        self.port = 0
        self.scheme = "ws"
        self.wake = asyncio.Event()
        self.refuse: set[str] = set()  # identities the central system answers 404
        self.blocked: set[str] = set()  # tokens the central system answers Blocked
        self.transactions = 0

    def status_of(self, token: str) -> str:
        return "Blocked" if token in self.blocked else "Accepted"

    async def pause(self) -> None:
        """Answer after ``delay_s`` (cut short when the central system crashes or stops)."""
        if self.delay_s > 0:
            with suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), self.delay_s)

    async def start(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self.server = await serve(
            self._handle,
            "127.0.0.1",
            0,
            subprotocols=list(self.subprotocols),  # type: ignore[arg-type]
            ssl=ssl_context,
            process_request=self._refuse_some,
        )
        self.port = self.server.sockets[0].getsockname()[1]
        self.scheme = "wss" if ssl_context is not None else "ws"

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}/csms"

    def _refuse_some(self, connection: ServerConnection, request: Any) -> Any:
        if request.path.rsplit("/", 1)[-1] in self.refuse:
            return connection.respond(http.HTTPStatus.NOT_FOUND, "unknown station\n")
        return None

    async def _handle(self, connection: ServerConnection) -> None:
        assert connection.request is not None
        identity = connection.request.path.rsplit("/", 1)[-1]
        self.requests.append(
            {
                "path": connection.request.path,
                "subprotocol": connection.subprotocol,
                "authorization": connection.request.headers.get("Authorization"),
            }
        )
        self.connections.append(connection)
        ssl_object = connection.transport.get_extra_info("ssl_object")
        self.requests[-1]["client_cert"] = None if ssl_object is None else ssl_object.getpeercert()
        recorder = _Recorder(connection, identity, self.received)
        point: Cp16 | Cp201
        if connection.subprotocol == "ocpp1.6":
            point = Csms16(identity, recorder, self)
        else:
            point = Csms201(identity, recorder, self)
        self.points[identity] = point
        with suppress(Exception):
            await point.start()

    def crash(self) -> None:
        """Die abruptly: stop listening and drop every TCP connection without a close frame."""
        assert self.server is not None
        self.wake.set()
        self.server.close(close_connections=False)
        for connection in self.connections:
            connection.transport.abort()

    async def stop(self) -> None:
        self.wake.set()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


class _Recorder:
    """Wraps a connection so the central system records every frame it receives, as received."""

    def __init__(self, connection: ServerConnection, identity: str, sink: list[tuple[str, Any]]) -> None:
        self._connection = connection
        self._identity = identity
        self._sink = sink

    async def recv(self) -> str | bytes:
        message = await self._connection.recv()
        self._sink.append((self._identity, json.loads(message)))
        return message

    async def send(self, message: str) -> None:
        await self._connection.send(message)


# ---- gateway harness ------------------------------------------------------------------------------------------------
@dataclass
class Harness:
    gateway: Gateway
    csms: Csms
    observer: CollectingObserver
    pki: Pki

    def url(self, identity: str, *, tls: bool = False) -> str:
        if tls:
            return f"wss://127.0.0.1:{self.gateway.tls_port}/ocpp/{identity}"
        return f"ws://127.0.0.1:{self.gateway.plain_port}/ocpp/{identity}"

    async def connect(
        self,
        identity: str,
        *,
        password: str | None = None,
        username: str | None = None,
        subprotocols: list[str] | tuple[str, ...] = ("ocpp1.6",),
        tls: bool = False,
        client_cert: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        **kwargs: Any,
    ) -> ClientConnection:
        headers = {}
        if password is not None:
            headers["Authorization"] = build_authorization_basic(username or identity, password)
        ctx = ssl_context
        if tls and ctx is None:
            ctx = self.pki.client_context(client_cert)
        return await connect(
            self.url(identity, tls=tls),
            subprotocols=list(subprotocols) or None,  # type: ignore[arg-type]
            additional_headers=headers,
            ssl=ctx,
            proxy=None,
            open_timeout=5,
            **kwargs,
        )


def make_config(
    pki: Pki,
    csms_url: str,
    stations: dict[str, dict[str, Any]],
    upstream: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
    listen: dict[str, Any] | None = None,
    top: dict[str, Any] | None = None,
    **policy: Any,
) -> GatewayConfig:
    data: dict[str, Any] = {
        "listen": {"host": "127.0.0.1", "plain_port": 0, "tls_port": 0, "path": "/ocpp", **(listen or {})},
        "tls": {
            "cert": str(pki.server_cert),
            "key": str(pki.server_key),
            "client_ca": str(pki.ca),
            "crl": str(pki.crl),
            "operator": OPERATOR,
        },
        "upstream": {
            "url": csms_url,
            "open_timeout_s": 2.0,
            "call_timeout_s": policy.pop("call_timeout_s", 30.0),
            **(upstream or {}),
        },
        "stations": stations,
        "policy": {"duplicate_ping_timeout_s": 0.5, "drain_timeout_s": 2.0, **policy},
        **(top or {}),
    }
    return parse_config(data, env=env or {})


@pytest.fixture
def default_stations(hashes_by_password: Callable[[str], str]) -> dict[str, dict[str, Any]]:
    return {
        "CP-1": {"security_profile": 1, "allow_plain": True, "password_hash": hashes_by_password(PW16)},
        "CP-2": {"security_profile": 2, "password_hash": hashes_by_password(PW201)},
        "CP-3": {"security_profile": 3, "serial_number": "SN-0001"},
        "CP-NOSUB": {"security_profile": 1, "allow_plain": True, "ocpp": "1.6",
                     "password_hash": hashes_by_password(PW16)},
    }  # fmt: skip


@pytest.fixture
def harness(pki: Pki, default_stations: dict[str, dict[str, Any]]) -> Callable[..., Any]:
    """``async with harness(**policy) as h:`` runs a CSMS and a gateway in front of it."""

    @asynccontextmanager
    async def run(
        *,
        stations: dict[str, dict[str, Any]] | None = None,
        validator: Any = None,
        clock: Callable[[], float] | None = None,
        csms_ssl: ssl.SSLContext | None = None,
        upstream: dict[str, Any] | None = None,
        env: dict[str, str] | None = None,
        listen: dict[str, Any] | None = None,
        csms_subprotocols: tuple[str, ...] = ("ocpp2.0.1", "ocpp1.6"),
        observers: tuple[Any, ...] = (),
        rewriter: Any = None,
        top: dict[str, Any] | None = None,
        wall_clock: Callable[[], dt.datetime] | None = None,
        csms: Csms | None = None,
        cache_clearer: Any = None,
        **policy: Any,
    ) -> AsyncIterator[Harness]:
        own_csms = csms is None
        if csms is None:
            csms = Csms(csms_subprotocols)
            await csms.start(csms_ssl)
        config = make_config(
            pki, csms.url, stations or default_stations, upstream, env, listen, top, **policy
        )
        observer = CollectingObserver()
        extra: dict[str, Any] = {"clock": clock} if clock is not None else {}
        if wall_clock is not None:
            extra["wall_clock"] = wall_clock
        fanout = ObserverFanout([observer, *observers]) if observers else observer
        gateway = Gateway(
            config, fanout, validator=validator, rewriter=rewriter, cache_clearer=cache_clearer, **extra
        )
        await gateway.start()
        try:
            yield Harness(gateway, csms, observer, pki)
        finally:
            await gateway.stop()
            if own_csms:
                await csms.stop()

    return run


@pytest.fixture(scope="session")
def schema_validator() -> SchemaValidator:
    return SchemaValidator()


@pytest.fixture
def central_system() -> type[Csms]:
    """The test central system class, for tests that keep one CSMS across several gateway instances."""
    return Csms
