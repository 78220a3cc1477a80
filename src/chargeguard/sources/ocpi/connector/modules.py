"""Sender and receiver sides of locations, sessions, cdrs, tariffs and tokens, and real-time authorisation.

Everything received is decoded into the 2.2.1 models and pseudonymised by
``chargeguard.sources.ocpi.importer.decode_record`` before it is stored or handed on; a token uid that arrives in a
URL is pseudonymised before any lookup or log.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import msgspec
import orjson
import structlog
from fastapi import APIRouter, Request
from fastapi.responses import Response

from chargeguard.errors import InputError
from chargeguard.sources.ocpi.connector import headers as h
from chargeguard.sources.ocpi.connector.context import (
    Caller,
    Connector,
    connector_of,
    module_caller,
    ocpi_response,
)
from chargeguard.sources.ocpi.connector.decision import AuthorizeRequest, decide_within
from chargeguard.sources.ocpi.connector.envelope import (
    INVALID_PARAMETERS,
    SERVER_ERROR,
    UNKNOWN_LOCATION,
    UNKNOWN_TOKEN,
    OcpiError,
    drop_nulls,
)
from chargeguard.sources.ocpi.connector.repository import KIND_OF, key_of
from chargeguard.sources.ocpi.importer import decode_record
from chargeguard.sources.ocpi.models import Cdr, Token, utc

log = structlog.get_logger("chargeguard.ocpi.modules")
router = APIRouter()
BASE = "/ocpi/2.2.1"
_SENDER_MODULES = ("locations", "sessions", "cdrs", "tariffs")
_RECEIVER_MODULES = ("locations", "sessions", "tariffs")
_TOKEN_TYPES = frozenset({"AD_HOC_USER", "APP_USER", "OTHER", "RFID"})


def _role(request: Request, role: str) -> Connector:
    connector = connector_of(request)
    if role not in connector.config.roles:
        raise OcpiError(2000, f"this platform does not act as {role}", http_status=404)
    return connector


def _date(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        return utc(datetime.fromisoformat(value.replace("Z", "+00:00")))
    except ValueError:
        raise OcpiError(INVALID_PARAMETERS, f"{name} is not an OCPI DateTime") from None


def _int(value: str | None, name: str, default: int) -> int:
    if value is None:
        return default
    if not value.isdigit():
        raise OcpiError(INVALID_PARAMETERS, f"{name} must be a non-negative integer")
    return int(value)


def _page(request: Request, connector: Connector, module: str) -> Response:
    """GET list with offset/limit/date_from/date_to; X-Total-Count, X-Limit and a Link to the next page."""
    q = request.query_params
    offset = _int(q.get("offset"), "offset", 0)
    limit = min(_int(q.get("limit"), "limit", connector.config.page_limit), connector.config.page_limit)
    items, total = connector.published.page(
        module,
        offset=offset,
        limit=limit,
        date_from=_date(q.get("date_from"), "date_from"),
        date_to=_date(q.get("date_to"), "date_to"),
    )
    headers = {h.TOTAL_COUNT: str(total), h.LIMIT: str(limit)}
    if limit > 0 and offset + limit < total:
        base = connector.config.base_url.rstrip("/") + request.url.path
        params = dict(q)
        params.update(offset=str(offset + limit), limit=str(limit))
        headers[h.LINK] = h.next_link(base + "?" + urlencode(params))
    return ocpi_response(request, list(items), extra_headers=headers)


def _decode(request_body: bytes, module: str, connector: Connector, where: str) -> Any:
    try:
        parsed = orjson.loads(request_body)
    except orjson.JSONDecodeError:
        raise OcpiError(INVALID_PARAMETERS, f"{where}: body is not JSON") from None
    try:
        return decode_record(
            orjson.dumps(drop_nulls(parsed)), KIND_OF[module], connector.pseudonymiser, source=where
        )
    except InputError as exc:
        raise OcpiError(INVALID_PARAMETERS, exc.message) from None


def _check_path(obj: Any, country_code: str, party_id: str, ident: str, caller: Caller) -> None:
    cc, pid, oid = key_of(obj)
    if (cc, pid, oid) != (country_code.upper(), party_id.upper(), ident.upper()):
        raise OcpiError(INVALID_PARAMETERS, "country_code, party_id and id in the URL and the object differ")
    parties = caller.partner.parties
    if parties and h.Party(cc, pid) not in parties:
        raise OcpiError(INVALID_PARAMETERS, f"party {cc}*{pid} does not belong to this credentials token")


def _store(connector: Connector, module: str, obj: Any, caller: Caller) -> None:
    try:
        connector.received.put(module, obj)
    except OverflowError:
        raise OcpiError(SERVER_ERROR, "receiver storage is full", http_status=503) from None
    connector.on_received(module, obj, caller.partner)


# --- CPO: sender side of locations, sessions, cdrs, tariffs ---------------------------------------------


@router.get(BASE + "/cpo/{module}")
async def cpo_list(request: Request, module: str) -> Response:
    module_caller(request)
    if module not in _SENDER_MODULES:
        raise OcpiError(2000, f"no such CPO module {module[:20]!r}", http_status=404)
    return _page(request, _role(request, "CPO"), module)


@router.get(BASE + "/cpo/locations/{location_id}")
async def cpo_location(request: Request, location_id: str) -> Response:
    module_caller(request)
    location = _role(request, "CPO").published.find("locations", location_id)
    if location is None:
        raise OcpiError(UNKNOWN_LOCATION, "unknown location", http_status=404)
    return ocpi_response(request, location)


# --- eMSP: receiver side of locations, sessions, tariffs (PUT / PATCH / GET) and cdrs (POST / GET) ------


def _receiver_module(module: str) -> str:
    if module not in _RECEIVER_MODULES:
        raise OcpiError(2000, f"no such eMSP receiver module {module[:20]!r}", http_status=404)
    return module


@router.get(BASE + "/emsp/{module}/{country_code}/{party_id}/{object_id}")
async def emsp_get(
    request: Request, module: str, country_code: str, party_id: str, object_id: str
) -> Response:
    module_caller(request)
    connector = _role(request, "EMSP")
    if module not in (*_RECEIVER_MODULES, "cdrs"):
        raise OcpiError(2000, f"no such eMSP receiver module {module[:20]!r}", http_status=404)
    obj = connector.received.get(module, country_code, party_id, object_id)
    if obj is None:
        raise OcpiError(UNKNOWN_LOCATION, f"unknown {KIND_OF[module]}", http_status=404)
    return ocpi_response(request, obj)


@router.put(BASE + "/emsp/{module}/{country_code}/{party_id}/{object_id}")
async def emsp_put(
    request: Request, module: str, country_code: str, party_id: str, object_id: str
) -> Response:
    caller = module_caller(request)
    connector = _role(request, "EMSP")
    module = _receiver_module(module)
    obj = _decode(await request.body(), module, connector, f"PUT {module}")
    _check_path(obj, country_code, party_id, object_id, caller)
    _store(connector, module, obj, caller)
    return ocpi_response(request)


def _merge(connector: Connector, module: str, existing: Any, patch: bytes) -> Any:
    try:
        changes = orjson.loads(patch)
    except orjson.JSONDecodeError:
        raise OcpiError(INVALID_PARAMETERS, "PATCH body is not JSON") from None
    if not isinstance(changes, dict) or "last_updated" not in changes:
        raise OcpiError(INVALID_PARAMETERS, "PATCH body must be an object with last_updated")
    for fixed in ("country_code", "party_id", "id", "uid"):
        changes.pop(fixed, None)
    merged = msgspec.to_builtins(existing) | changes
    return _decode(orjson.dumps(merged), module, connector, f"PATCH {module}")


@router.patch(BASE + "/emsp/{module}/{country_code}/{party_id}/{object_id}")
async def emsp_patch(
    request: Request, module: str, country_code: str, party_id: str, object_id: str
) -> Response:
    caller = module_caller(request)
    connector = _role(request, "EMSP")
    module = _receiver_module(module)
    existing = connector.received.get(module, country_code, party_id, object_id)
    if existing is None:
        raise OcpiError(UNKNOWN_LOCATION, f"unknown {KIND_OF[module]}: PUT it first", http_status=404)
    obj = _merge(connector, module, existing, await request.body())
    _store(connector, module, obj, caller)
    return ocpi_response(request)


@router.delete(BASE + "/emsp/tariffs/{country_code}/{party_id}/{object_id}")
async def emsp_delete_tariff(request: Request, country_code: str, party_id: str, object_id: str) -> Response:
    """mod_tariffs receiver DELETE: a tariff is withdrawn; only its own party may withdraw it."""
    caller = module_caller(request)
    connector = _role(request, "EMSP")
    existing = connector.received.get("tariffs", country_code, party_id, object_id)
    if existing is None:
        raise OcpiError(UNKNOWN_LOCATION, "unknown tariff", http_status=404)
    _check_path(existing, country_code, party_id, object_id, caller)
    connector.received.delete("tariffs", key_of(existing))
    connector.on_received("tariffs.deleted", existing, caller.partner)
    return ocpi_response(request)


@router.post(BASE + "/emsp/cdrs")
async def emsp_post_cdr(request: Request) -> Response:
    """A new CDR; CDRs are immutable: the same id again is accepted only when identical (else 2001)."""
    caller = module_caller(request)
    connector = _role(request, "EMSP")
    cdr = _decode(await request.body(), "cdrs", connector, "POST cdr")
    assert isinstance(cdr, Cdr)
    _check_path(cdr, cdr.country_code, cdr.party_id, cdr.id, caller)
    cc, pid, oid = key_of(cdr)
    location = {"Location": f"{connector.config.details_url}/emsp/cdrs/{cc}/{pid}/{cdr.id}"}
    existing = connector.received.get("cdrs", cc, pid, oid)
    if existing is not None:
        if existing == cdr:
            return ocpi_response(request, extra_headers=location)
        connector.on_received("cdrs.duplicate_id", cdr, caller.partner)
        log.warning("ocpi.cdr.duplicate_id", partner=caller.partner.name, cdr_id=cdr.id[:39])
        raise OcpiError(INVALID_PARAMETERS, f"CDR {cc}*{pid} {cdr.id} already exists with other content")
    _store(connector, "cdrs", cdr, caller)
    return ocpi_response(request, extra_headers=location)


# --- CPO: receiver side of tokens ------------------------------------------------------------------------


def _token_type(request: Request) -> str:
    value = request.query_params.get("type", "RFID")
    if value not in _TOKEN_TYPES:
        raise OcpiError(INVALID_PARAMETERS, "type must be one of " + ", ".join(sorted(_TOKEN_TYPES)))
    return value


@router.put(BASE + "/cpo/tokens/{country_code}/{party_id}/{token_uid}")
async def cpo_put_token(request: Request, country_code: str, party_id: str, token_uid: str) -> Response:
    caller = module_caller(request)
    connector = _role(request, "CPO")
    token = _decode(await request.body(), "tokens", connector, "PUT token")
    assert isinstance(token, Token)
    if token.type != _token_type(request):
        raise OcpiError(INVALID_PARAMETERS, "token type in the URL and the object differ")
    _check_path(token, country_code, party_id, connector.pseudonymiser(token_uid), caller)
    _store(connector, "tokens", token, caller)
    return ocpi_response(request)


@router.patch(BASE + "/cpo/tokens/{country_code}/{party_id}/{token_uid}")
async def cpo_patch_token(request: Request, country_code: str, party_id: str, token_uid: str) -> Response:
    caller = module_caller(request)
    connector = _role(request, "CPO")
    existing = connector.received.get("tokens", country_code, party_id, connector.pseudonymiser(token_uid))
    if existing is None or existing.type != _token_type(request):
        raise OcpiError(UNKNOWN_TOKEN, "unknown token: PUT it first", http_status=404)
    token = _merge(connector, "tokens", existing, await request.body())
    _store(connector, "tokens", token, caller)
    return ocpi_response(request)


@router.get(BASE + "/cpo/tokens/{country_code}/{party_id}/{token_uid}")
async def cpo_get_token(request: Request, country_code: str, party_id: str, token_uid: str) -> Response:
    module_caller(request)
    connector = _role(request, "CPO")
    token = connector.received.get("tokens", country_code, party_id, connector.pseudonymiser(token_uid))
    if token is None or token.type != _token_type(request):
        raise OcpiError(UNKNOWN_TOKEN, "unknown token", http_status=404)
    return ocpi_response(request, token)


# --- eMSP: sender side of tokens and real-time authorisation ---------------------------------------------


@router.get(BASE + "/emsp/tokens")
async def emsp_tokens(request: Request) -> Response:
    module_caller(request)
    return _page(request, _role(request, "EMSP"), "tokens")


@router.post(BASE + "/emsp/tokens/{token_uid}/authorize")
async def emsp_authorize(request: Request, token_uid: str) -> Response:
    """Real-time authorisation: chargeguard's fraud decision on the token pseudonym, within the time budget.

    The answer's Token echoes the uid the CPO put in the URL (it has it already); every other token field is
    the stored (pseudonymised) one. Unknown token: 2004 with HTTP 404.
    """
    caller = module_caller(request)
    connector = _role(request, "EMSP")
    token_type = _token_type(request)
    pseudonym = connector.pseudonymiser(token_uid)
    body = await request.body()
    location: dict[str, Any] | None = None
    if body.strip():
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise OcpiError(INVALID_PARAMETERS, "LocationReferences body is not JSON") from None
        if not isinstance(parsed, dict) or not isinstance(parsed.get("location_id"), str):
            raise OcpiError(INVALID_PARAMETERS, "LocationReferences needs location_id")
        location = {"location_id": parsed["location_id"][:36]}
        evse_uids = parsed.get("evse_uids")
        if isinstance(evse_uids, list):
            location["evse_uids"] = [str(e)[:36] for e in evse_uids]
    assert connector.decision is not None
    decision = await decide_within(
        connector.decision,
        connector.fallback,
        AuthorizeRequest(pseudonym, token_type, location, caller.partner.name),
        connector.config.authorize_budget_s,
    )
    token = connector.lookup_token(pseudonym, token_type)
    if decision is None or token is None:
        log.info("ocpi.authorize.unknown_token", token=pseudonym, partner=caller.partner.name)
        raise OcpiError(UNKNOWN_TOKEN, "unknown token", http_status=404)
    log.info("ocpi.authorize.decided", token=pseudonym, allowed=decision.allowed, partner=caller.partner.name)
    info: dict[str, Any] = {
        "allowed": decision.allowed,
        "token": msgspec.to_builtins(msgspec.structs.replace(token, uid=token_uid)),
        "authorization_reference": secrets.token_hex(18),
        "info": {"language": "en", "text": decision.reason[:255]},
    }
    if location is not None:
        info["location"] = location
    return ocpi_response(request, info)
