"""The connector's shared state (config, partner store, repositories, client, decision) and its request guards."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import msgspec
from fastapi import Request
from fastapi.responses import Response

from chargeguard.sources.ocpi.connector import headers as h
from chargeguard.sources.ocpi.connector.client import OcpiClient
from chargeguard.sources.ocpi.connector.decision import FraudDecision, TokenStatusDecision
from chargeguard.sources.ocpi.connector.envelope import (
    CLIENT_ERROR,
    INVALID_PARAMETERS,
    SUCCESS,
    OcpiError,
    envelope,
)
from chargeguard.sources.ocpi.connector.repository import ObjectRepository
from chargeguard.sources.ocpi.connector.store import Partner, PartnerStore, TokenKind
from chargeguard.sources.ocpi.models import Token
from chargeguard.vault.pseudonyms import Pseudonymiser

VERSION = "2.2.1"
OnReceived = Callable[[str, Any, Partner], None]
_encoder = msgspec.json.Encoder(decimal_format="number")


@dataclass(frozen=True, slots=True)
class ConnectorConfig:
    """Who this platform is and how it serves: one party, acting as CPO, eMSP or both."""

    base_url: str
    party: h.Party
    roles: frozenset[str] = frozenset({"CPO", "EMSP"})
    business_name: str = "chargeguard"
    page_limit: int = 100
    require_routing_headers: bool = False
    authorize_budget_s: float = 0.2
    registration_ttl: timedelta = timedelta(days=7)

    @property
    def versions_url(self) -> str:
        return self.base_url.rstrip("/") + "/ocpi/versions"

    @property
    def details_url(self) -> str:
        return self.base_url.rstrip("/") + f"/ocpi/{VERSION}"


def _ignore(_module: str, _obj: Any, _partner: Partner) -> None:
    return None


@dataclass
class Connector:
    config: ConnectorConfig
    store: PartnerStore
    client: OcpiClient
    pseudonymiser: Pseudonymiser
    published: ObjectRepository = field(default_factory=ObjectRepository)
    received: ObjectRepository = field(default_factory=ObjectRepository)
    decision: FraudDecision | None = None
    on_received: OnReceived = _ignore

    def __post_init__(self) -> None:
        self.fallback: FraudDecision = TokenStatusDecision(self.lookup_token)
        if self.decision is None:
            self.decision = self.fallback

    def lookup_token(self, pseudonym: str, token_type: str) -> Token | None:
        """A token this platform publishes as eMSP, by pseudonymised uid (type must match when known)."""
        token = self.published.find("tokens", pseudonym)
        if isinstance(token, Token) and (not token_type or token.type == token_type):
            return token
        return None

    def credentials(self, token: str) -> dict[str, Any]:
        """This platform's Credentials object carrying ``token`` (the one the partner will use toward us)."""
        party = self.config.party
        return {
            "token": token,
            "url": self.config.versions_url,
            "roles": [
                {
                    "role": role,
                    "country_code": party.country_code,
                    "party_id": party.party_id,
                    "business_details": {"name": self.config.business_name},
                }
                for role in sorted(self.config.roles)
            ],
        }


@dataclass(frozen=True, slots=True)
class Caller:
    partner: Partner
    kind: TokenKind
    token: str


def connector_of(request: Request) -> Connector:
    connector: Connector = request.app.state.connector
    return connector


def authenticate(request: Request, *, registration_ok: bool) -> Caller:
    """401 (OCPI envelope) for a missing, unknown or expired token, and for TOKEN_A outside versions/credentials."""
    token = h.decode_authorization(request.headers.get(h.AUTHORIZATION))
    if token is None:
        raise OcpiError(CLIENT_ERROR, "missing Authorization: Token header", http_status=401)
    result = connector_of(request).store.authenticate(token)
    if result.status == "expired":
        raise OcpiError(CLIENT_ERROR, "credentials token expired", http_status=401)
    if result.status != "ok" or result.partner is None or result.token is None:
        raise OcpiError(CLIENT_ERROR, "unknown credentials token", http_status=401)
    if result.token.kind == "registration" and not registration_ok:
        raise OcpiError(
            CLIENT_ERROR,
            "a registration token (TOKEN_A) is only valid on versions and credentials",
            http_status=401,
        )
    return Caller(result.partner, result.token.kind, token)


def module_caller(request: Request) -> Caller:
    """Guard for module endpoints: an access token of a registered partner, and consistent routing headers."""
    caller = authenticate(request, registration_ok=False)
    if not caller.partner.registered:
        raise OcpiError(CLIENT_ERROR, "partner registration is not complete", http_status=401)
    connector = connector_of(request)
    hdr = request.headers
    sender = (hdr.get(h.FROM_COUNTRY), hdr.get(h.FROM_PARTY))
    receiver = (hdr.get(h.TO_COUNTRY), hdr.get(h.TO_PARTY))
    if all(sender) and all(receiver):
        to = h.Party(str(receiver[0]), str(receiver[1]))
        if to != connector.config.party:
            raise OcpiError(CLIENT_ERROR, f"OCPI-to party {to} is not served here")
        frm = h.Party(str(sender[0]), str(sender[1]))
        if caller.partner.parties and frm not in caller.partner.parties:
            raise OcpiError(CLIENT_ERROR, f"OCPI-from party {frm} does not belong to this credentials token")
        request.state.routing = (frm, to)
    elif connector.config.require_routing_headers:
        raise OcpiError(INVALID_PARAMETERS, "routing headers OCPI-from/to-country-code/party-id are required")
    return caller


def ocpi_response(
    request: Request,
    data: Any = None,
    *,
    status_code: int = SUCCESS,
    message: str | None = None,
    http_status: int = 200,
    extra_headers: dict[str, str] | None = None,
) -> Response:
    """An OCPI envelope (Structs encoded with exact decimals); routing headers mirrored on module answers."""
    response = Response(
        _encoder.encode(envelope(data, status_code, message)),
        status_code=http_status,
        media_type="application/json",
    )
    routing = getattr(request.state, "routing", None)
    if routing is not None:
        response.headers.update(h.routing_headers(routing[1], routing[0]))
    if extra_headers:
        response.headers.update(extra_headers)
    return response
