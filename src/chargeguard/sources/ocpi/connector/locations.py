"""Locations receiver below the Location: PUT / PATCH / GET of one EVSE or one Connector (mod_locations 2.2.1).

The sub-object is merged into the stored Location, whose ``last_updated`` follows the newest change, and the
whole Location is validated again, so a bad EVSE or Connector is refused (2001) and nothing stored changes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from chargeguard.sources.ocpi.connector.context import Connector, module_caller, ocpi_response
from chargeguard.sources.ocpi.connector.envelope import (
    INVALID_PARAMETERS,
    UNKNOWN_LOCATION,
    OcpiError,
    drop_nulls,
)
from chargeguard.sources.ocpi.connector.modules import BASE, _check_path, _decode, _role, _store
from chargeguard.sources.ocpi.models import utc

router = APIRouter()
_LOC = BASE + "/emsp/locations/{country_code}/{party_id}/{location_id}/{evse_uid}"


def _location(connector: Connector, country_code: str, party_id: str, location_id: str) -> dict[str, Any]:
    existing = connector.received.get("locations", country_code, party_id, location_id)
    if existing is None:
        raise OcpiError(UNKNOWN_LOCATION, "unknown location: PUT the Location first", http_status=404)
    doc: dict[str, Any] = msgspec.to_builtins(existing)
    return doc


def _body(raw: bytes, *, patch: bool) -> dict[str, Any]:
    try:
        body = drop_nulls(orjson.loads(raw))
    except orjson.JSONDecodeError:
        raise OcpiError(INVALID_PARAMETERS, "body is not JSON") from None
    if not isinstance(body, dict) or not isinstance(body.get("last_updated"), str):
        raise OcpiError(INVALID_PARAMETERS, "body must be an object with last_updated")
    if patch:
        body.pop("uid", None)
        body.pop("id", None)
    return body


def _find(items: list[dict[str, Any]], field: str, ident: str) -> int | None:
    return next(
        (i for i, item in enumerate(items) if str(item.get(field, "")).upper() == ident.upper()), None
    )


async def _write(
    request: Request, country_code: str, party_id: str, location_id: str, doc: dict[str, Any]
) -> Response:
    caller = module_caller(request)
    connector = _role(request, "EMSP")
    location = _decode(orjson.dumps(doc), "locations", connector, "PUT/PATCH location part")
    _check_path(location, country_code, party_id, location_id, caller)
    _store(connector, "locations", location, caller)
    return ocpi_response(request)


def _when(value: object) -> datetime | None:
    try:
        return utc(datetime.fromisoformat(str(value).replace("Z", "+00:00")))
    except ValueError:
        return None


def _newest(doc: dict[str, Any], stamp: str) -> None:
    """The parent's last_updated follows a newer child (a bad stamp is refused later by validation)."""
    new, old = _when(stamp), _when(doc.get("last_updated"))
    if new is None or old is None or new > old:
        doc["last_updated"] = stamp


@router.get(_LOC)
async def get_evse(
    request: Request, country_code: str, party_id: str, location_id: str, evse_uid: str
) -> Response:
    module_caller(request)
    doc = _location(_role(request, "EMSP"), country_code, party_id, location_id)
    index = _find(doc.get("evses", []), "uid", evse_uid)
    if index is None:
        raise OcpiError(UNKNOWN_LOCATION, "unknown EVSE", http_status=404)
    return ocpi_response(request, doc["evses"][index])


@router.api_route(_LOC, methods=["PUT", "PATCH"])
async def put_evse(
    request: Request, country_code: str, party_id: str, location_id: str, evse_uid: str
) -> Response:
    module_caller(request)
    doc = _location(_role(request, "EMSP"), country_code, party_id, location_id)
    patch = request.method == "PATCH"
    body = _body(await request.body(), patch=patch)
    evses: list[dict[str, Any]] = doc.setdefault("evses", [])
    index = _find(evses, "uid", evse_uid)
    if patch:
        if index is None:
            raise OcpiError(UNKNOWN_LOCATION, "unknown EVSE: PUT it first", http_status=404)
        evses[index] = evses[index] | body
    else:
        if str(body.get("uid", "")).upper() != evse_uid.upper():
            raise OcpiError(INVALID_PARAMETERS, "EVSE uid in the URL and the object differ")
        if index is None:
            evses.append(body)
        else:
            evses[index] = body
    _newest(doc, body["last_updated"])
    return await _write(request, country_code, party_id, location_id, doc)


@router.get(_LOC + "/{connector_id}")
async def get_connector(
    request: Request, country_code: str, party_id: str, location_id: str, evse_uid: str, connector_id: str
) -> Response:
    module_caller(request)
    doc = _location(_role(request, "EMSP"), country_code, party_id, location_id)
    evse = _find(doc.get("evses", []), "uid", evse_uid)
    found = None if evse is None else _find(doc["evses"][evse].get("connectors", []), "id", connector_id)
    if evse is None or found is None:
        raise OcpiError(UNKNOWN_LOCATION, "unknown EVSE or connector", http_status=404)
    return ocpi_response(request, doc["evses"][evse]["connectors"][found])


@router.api_route(_LOC + "/{connector_id}", methods=["PUT", "PATCH"])
async def put_connector(
    request: Request, country_code: str, party_id: str, location_id: str, evse_uid: str, connector_id: str
) -> Response:
    module_caller(request)
    doc = _location(_role(request, "EMSP"), country_code, party_id, location_id)
    patch = request.method == "PATCH"
    body = _body(await request.body(), patch=patch)
    evse = _find(doc.get("evses", []), "uid", evse_uid)
    if evse is None:
        raise OcpiError(UNKNOWN_LOCATION, "unknown EVSE: PUT it first", http_status=404)
    connectors: list[dict[str, Any]] = doc["evses"][evse].setdefault("connectors", [])
    index = _find(connectors, "id", connector_id)
    if patch:
        if index is None:
            raise OcpiError(UNKNOWN_LOCATION, "unknown connector: PUT it first", http_status=404)
        connectors[index] = connectors[index] | body
    else:
        if str(body.get("id", "")).upper() != connector_id.upper():
            raise OcpiError(INVALID_PARAMETERS, "connector id in the URL and the object differ")
        if index is None:
            connectors.append(body)
        else:
            connectors[index] = body
    _newest(doc["evses"][evse], body["last_updated"])
    _newest(doc, body["last_updated"])
    return await _write(request, country_code, party_id, location_id, doc)
