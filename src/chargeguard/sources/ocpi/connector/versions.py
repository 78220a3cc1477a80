"""The versions module (version information and version details endpoints) and reading a partner's versions."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from chargeguard.sources.ocpi.connector.client import OcpiClient
from chargeguard.sources.ocpi.connector.context import (
    VERSION,
    authenticate,
    connector_of,
    ocpi_response,
)
from chargeguard.sources.ocpi.connector.envelope import (
    NO_MATCHING_ENDPOINTS,
    UNSUPPORTED_VERSION,
    PartnerError,
)
from chargeguard.sources.ocpi.connector.store import Endpoint

router = APIRouter()

# module -> (path under /ocpi/2.2.1, interface role) for each platform role (mod_*.asciidoc interfaces)
_ENDPOINTS: dict[str, list[tuple[str, str, str]]] = {
    "CPO": [
        ("locations", "SENDER", "cpo/locations"),
        ("sessions", "SENDER", "cpo/sessions"),
        ("cdrs", "SENDER", "cpo/cdrs"),
        ("tariffs", "SENDER", "cpo/tariffs"),
        ("tokens", "RECEIVER", "cpo/tokens"),
    ],
    "EMSP": [
        ("locations", "RECEIVER", "emsp/locations"),
        ("sessions", "RECEIVER", "emsp/sessions"),
        ("cdrs", "RECEIVER", "emsp/cdrs"),
        ("tariffs", "RECEIVER", "emsp/tariffs"),
        ("tokens", "SENDER", "emsp/tokens"),
    ],
}


def endpoints(details_url: str, roles: frozenset[str]) -> list[dict[str, str]]:
    out = [{"identifier": "credentials", "role": "RECEIVER", "url": f"{details_url}/credentials"}]
    for role in sorted(roles):
        for identifier, interface, path in _ENDPOINTS.get(role, []):
            out.append({"identifier": identifier, "role": interface, "url": f"{details_url}/{path}"})
    return out


@router.get("/ocpi/versions")
async def get_versions(request: Request) -> Response:
    authenticate(request, registration_ok=True)
    config = connector_of(request).config
    return ocpi_response(request, [{"version": VERSION, "url": config.details_url}])


@router.get(f"/ocpi/{VERSION}")
async def get_version_details(request: Request) -> Response:
    authenticate(request, registration_ok=True)
    config = connector_of(request).config
    return ocpi_response(
        request, {"version": VERSION, "endpoints": endpoints(config.details_url, config.roles)}
    )


async def fetch_endpoints(client: OcpiClient, versions_url: str, token: str) -> tuple[str, list[Endpoint]]:
    """Read a partner's versions, pick 2.2.1 and return its version details URL and endpoints.

    Raises PartnerError 3002 when the partner does not offer 2.2.1, 3003 when its details list no endpoints.
    """
    versions = await client.call("GET", versions_url, token=token)
    if not isinstance(versions, list):
        raise PartnerError("versions: data is not a list")
    url = next(
        (v.get("url") for v in versions if isinstance(v, dict) and str(v.get("version")) == VERSION), None
    )
    if not isinstance(url, str):
        offered = sorted(str(v.get("version"))[:10] for v in versions if isinstance(v, dict))
        raise PartnerError(
            f"partner offers OCPI versions {offered}, not {VERSION}", status_code=UNSUPPORTED_VERSION
        )
    details: Any = await client.call("GET", url, token=token)
    raw = details.get("endpoints") if isinstance(details, dict) else None
    found = [
        Endpoint(str(e["identifier"]), str(e.get("role", "")), str(e["url"]))
        for e in raw or []
        if isinstance(e, dict) and isinstance(e.get("identifier"), str) and isinstance(e.get("url"), str)
    ]
    if not found:
        raise PartnerError(f"version {VERSION} details list no endpoints", status_code=NO_MATCHING_ENDPOINTS)
    return url, found
