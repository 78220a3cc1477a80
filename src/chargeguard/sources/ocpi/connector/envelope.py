"""The OCPI 2.2.1 response envelope, its status codes and the connector's protocol errors (transport_and_format)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from chargeguard.errors import ChargeguardError

# status_codes.asciidoc
SUCCESS = 1000
CLIENT_ERROR = 2000
INVALID_PARAMETERS = 2001
NOT_ENOUGH_INFORMATION = 2002
UNKNOWN_LOCATION = 2003
UNKNOWN_TOKEN = 2004
SERVER_ERROR = 3000
UNABLE_TO_USE_CLIENT_API = 3001
UNSUPPORTED_VERSION = 3002
NO_MATCHING_ENDPOINTS = 3003
HUB_ERROR = 4000


class OcpiError(ChargeguardError):
    """A request that must be answered with an OCPI status code (and an HTTP status, 200 unless said otherwise).

    ``message`` goes to the partner in ``status_message``: it names fields and ids, never token values.
    """

    def __init__(self, status_code: int, message: str, *, http_status: int = 200) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.http_status = http_status


class PartnerError(ChargeguardError):
    """A partner could not be used: unreachable, 5xx after retries, bad envelope, pagination loop, bad version.

    ``status_code`` is the OCPI status code chargeguard reports for it (3001 unable to use the client's API,
    3002 unsupported version, 3003 no matching endpoints) or the partner's own non-1000 code.
    """

    def __init__(self, message: str, *, status_code: int = UNABLE_TO_USE_CLIENT_API) -> None:
        super().__init__(message)
        self.status_code = status_code


class PaginationLoopError(PartnerError):
    """A partner's Link headers lead back to a page already fetched, or pages never end."""


def timestamp(now: datetime | None = None) -> str:
    """An OCPI DateTime (UTC, 'Z', second precision as most peers expect)."""
    value = (now or datetime.now(UTC)).astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def envelope(data: Any = None, status_code: int = SUCCESS, message: str | None = None) -> dict[str, Any]:
    """The response body every OCPI answer carries: data?, status_code, status_message?, timestamp."""
    body: dict[str, Any] = {"status_code": status_code}
    if data is not None:
        body["data"] = data
    if message:
        body["status_message"] = message[:255]
    body["timestamp"] = timestamp()
    return body


def drop_nulls(value: Any, _depth: int = 0) -> Any:
    """Remove ``null`` object members, recursively (bounded depth): many peers send every unset optional field
    as null (pydantic ``.dict()``), which OCPI treats as absent; the 2.2.1 models want such fields absent."""
    if _depth > 32:
        return value
    if isinstance(value, dict):
        return {k: drop_nulls(v, _depth + 1) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [drop_nulls(v, _depth + 1) for v in value]
    return value
