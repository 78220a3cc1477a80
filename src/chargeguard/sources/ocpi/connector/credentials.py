"""The credentials module: token A/B/C handshake (as registered and as registering party), rotation, unregistering."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
import structlog
from fastapi import APIRouter, Request
from fastapi.responses import Response

from chargeguard.sources.ocpi.connector.context import (
    Connector,
    authenticate,
    connector_of,
    ocpi_response,
)
from chargeguard.sources.ocpi.connector.envelope import (
    INVALID_PARAMETERS,
    SUCCESS,
    OcpiError,
    PartnerError,
)
from chargeguard.sources.ocpi.connector.store import Partner
from chargeguard.sources.ocpi.connector.versions import fetch_endpoints

log = structlog.get_logger("chargeguard.ocpi.credentials")
router = APIRouter()
PATH = "/ocpi/2.2.1/credentials"


class CredentialsRole(msgspec.Struct, kw_only=True):
    role: Annotated[str, msgspec.Meta(max_length=20)]
    party_id: Annotated[str, msgspec.Meta(min_length=3, max_length=3)]
    country_code: Annotated[str, msgspec.Meta(min_length=2, max_length=2)]
    business_details: dict[str, Any]


class Credentials(msgspec.Struct, kw_only=True):
    """mod_credentials Credentials: token string(64), url, roles (at least one)."""

    token: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    url: Annotated[str, msgspec.Meta(max_length=255)]
    roles: Annotated[list[CredentialsRole], msgspec.Meta(min_length=1)]


def _decode(body: bytes) -> Credentials:
    try:
        return msgspec.json.decode(body, type=Credentials)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise OcpiError(
            INVALID_PARAMETERS, f"invalid credentials object: {str(exc).splitlines()[0][:150]}"
        ) from None


async def _adopt(connector: Connector, partner: Partner, creds: Credentials) -> None:
    """Read the partner's versions with its token, keep its endpoints, roles and (sealed) token."""
    try:
        _details, found = await fetch_endpoints(connector.client, creds.url, creds.token)
    except PartnerError as exc:
        raise OcpiError(exc.status_code if exc.status_code >= 3000 else 3001, str(exc)) from exc
    partner.versions_url = creds.url
    partner.version = "2.2.1"
    partner.endpoints = found
    partner.roles = [msgspec.to_builtins(r) for r in creds.roles]
    connector.store.update(partner)
    connector.store.set_outgoing(partner.partner_id, creds.token)


@router.get(PATH)
async def get_credentials(request: Request) -> Response:
    caller = authenticate(request, registration_ok=True)
    return ocpi_response(request, connector_of(request).credentials(caller.token))


@router.post(PATH)
async def post_credentials(request: Request) -> Response:
    """Registration with TOKEN_A: answer with TOKEN_C; TOKEN_A dies. A registered caller gets 405."""
    caller = authenticate(request, registration_ok=True)
    if caller.kind != "registration" or caller.partner.registered:
        raise OcpiError(
            2000, "already registered: use PUT to update or DELETE to unregister", http_status=405
        )
    connector = connector_of(request)
    creds = _decode(await request.body())
    await _adopt(connector, caller.partner, creds)
    token_c = connector.store.issue_token(caller.partner.partner_id, "access")
    caller.partner.registered = True
    connector.store.update(caller.partner)
    connector.store.revoke_partner_tokens(caller.partner.partner_id, keep=token_c)
    log.info(
        "ocpi.credentials.registered",
        partner=caller.partner.name,
        parties=[str(p) for p in caller.partner.parties],
    )
    return ocpi_response(request, connector.credentials(token_c))


@router.put(PATH)
async def put_credentials(request: Request) -> Response:
    """Credential rotation / version update by a registered partner: new TOKEN_C, the old one dies."""
    caller = authenticate(request, registration_ok=True)
    if caller.kind != "access" or not caller.partner.registered:
        raise OcpiError(2000, "not registered: use POST with the registration token", http_status=405)
    connector = connector_of(request)
    creds = _decode(await request.body())
    await _adopt(connector, caller.partner, creds)
    token_c = connector.store.issue_token(caller.partner.partner_id, "access")
    connector.store.revoke_partner_tokens(caller.partner.partner_id, keep=token_c)
    log.info("ocpi.credentials.rotated", partner=caller.partner.name)
    return ocpi_response(request, connector.credentials(token_c))


@router.delete(PATH)
async def delete_credentials(request: Request) -> Response:
    caller = authenticate(request, registration_ok=True)
    if caller.kind != "access" or not caller.partner.registered:
        raise OcpiError(2000, "not registered", http_status=405)
    connector_of(request).store.remove_partner(caller.partner.partner_id)
    log.info("ocpi.credentials.unregistered", partner=caller.partner.name)
    return ocpi_response(request, None, status_code=SUCCESS)


# --- the registering side ------------------------------------------------------------------------------


def _credentials_url(partner: Partner) -> str:
    url = partner.endpoint("credentials", "RECEIVER") or partner.endpoint("credentials", "SENDER")
    if url is None:
        url = next((e.url for e in partner.endpoints if e.identifier == "credentials"), None)
    if url is None:
        raise PartnerError("partner lists no credentials endpoint", status_code=3003)
    return url


def _adopt_answer(connector: Connector, partner: Partner, data: Any) -> None:
    try:
        answer = msgspec.convert(data, type=Credentials)
    except msgspec.ValidationError as exc:
        raise PartnerError(f"partner answered an invalid credentials object: {str(exc)[:150]}") from None
    partner.roles = [msgspec.to_builtins(r) for r in answer.roles]
    connector.store.update(partner)
    connector.store.set_outgoing(partner.partner_id, answer.token)


async def register(connector: Connector, name: str, versions_url: str, token_a: str) -> Partner:
    """Register with a partner that issued us ``token_a``: our TOKEN_B out, its TOKEN_C back (kept sealed)."""
    store = connector.store
    partner = store.create_partner(name)
    token_b = store.issue_token(partner.partner_id, "access")
    try:
        _details, found = await fetch_endpoints(connector.client, versions_url, token_a)
        partner.versions_url, partner.version, partner.endpoints = versions_url, "2.2.1", found
        store.update(partner)
        data = await connector.client.call(
            "POST", _credentials_url(partner), token=token_a, json=connector.credentials(token_b)
        )
        _adopt_answer(connector, partner, data)
    except BaseException:
        store.remove_partner(partner.partner_id)
        raise
    partner.registered = True
    store.update(partner)
    log.info("ocpi.credentials.registered_with", partner=name, parties=[str(p) for p in partner.parties])
    return partner


async def rotate(connector: Connector, partner_id: str) -> None:
    """PUT new credentials: a fresh TOKEN_B for the partner, a fresh TOKEN_C from it; old ones die."""
    store = connector.store
    partner = store.get(partner_id)
    new_b = store.issue_token(partner_id, "access")
    try:
        data = await connector.client.call(
            "PUT",
            _credentials_url(partner),
            token=store.outgoing(partner_id),
            json=connector.credentials(new_b),
        )
        _adopt_answer(connector, partner, data)
    except BaseException:
        store.revoke(new_b)
        raise
    store.revoke_partner_tokens(partner_id, keep=new_b)
    log.info("ocpi.credentials.rotated_with", partner=partner.name)


async def unregister(connector: Connector, partner_id: str) -> None:
    """DELETE our credentials at the partner, then forget it (its token and the tokens we issued)."""
    partner = connector.store.get(partner_id)
    await connector.client.call(
        "DELETE", _credentials_url(partner), token=connector.store.outgoing(partner_id)
    )
    connector.store.remove_partner(partner_id)
    log.info("ocpi.credentials.unregistered_with", partner=partner.name)
