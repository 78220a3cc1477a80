"""OCPI 2.2.1 HTTP headers: ``Authorization: Token <base64>``, request/correlation ids, routing and pagination."""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from dataclasses import dataclass

AUTHORIZATION = "Authorization"
REQUEST_ID = "X-Request-ID"
CORRELATION_ID = "X-Correlation-ID"
TOTAL_COUNT = "X-Total-Count"
LIMIT = "X-Limit"
LINK = "Link"
FROM_COUNTRY = "OCPI-from-country-code"
FROM_PARTY = "OCPI-from-party-id"
TO_COUNTRY = "OCPI-to-country-code"
TO_PARTY = "OCPI-to-party-id"
_MAX_ID = 64
_LINK_RE = re.compile(r'<([^>]*)>\s*;[^,]*?rel\s*=\s*"?([^",;]+)"?')


def encode_token(token: str) -> str:
    """The Authorization header value for a credentials token (2.2.1: the token is base64 encoded)."""
    return "Token " + base64.b64encode(token.encode("utf-8")).decode("ascii")


def decode_authorization(value: str | None) -> str | None:
    """The credentials token of an Authorization header, or None when absent or not ``Token <...>``.

    2.2.1 requires base64; tokens sent unencoded by 2.1.1-style peers are accepted when the value is not valid
    base64 of UTF-8 text (the token is then the value itself).
    """
    if not value:
        return None
    scheme, _, credential = value.strip().partition(" ")
    credential = credential.strip()
    if scheme.lower() != "token" or not credential:
        return None
    try:
        decoded = base64.b64decode(credential, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return credential
    return decoded if decoded.isprintable() and decoded else credential


def new_request_id() -> str:
    return str(uuid.uuid4())


def safe_id(value: str | None) -> str | None:
    """A request/correlation id from a partner, kept only when short and printable (it is echoed and logged)."""
    if value is None:
        return None
    value = value.strip()
    if not value or len(value) > _MAX_ID or not value.isprintable():
        return None
    return value


@dataclass(frozen=True, slots=True)
class Party:
    """An OCPI party: ISO 3166 alpha-2 country code and 3-character party id (compared case-insensitively)."""

    country_code: str
    party_id: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "country_code", self.country_code.upper())
        object.__setattr__(self, "party_id", self.party_id.upper())

    def __str__(self) -> str:
        return f"{self.country_code}*{self.party_id}"


def routing_headers(sender: Party, receiver: Party) -> dict[str, str]:
    """The four routing headers 2.2.1 puts on module requests (never on versions or credentials)."""
    return {
        FROM_COUNTRY: sender.country_code,
        FROM_PARTY: sender.party_id,
        TO_COUNTRY: receiver.country_code,
        TO_PARTY: receiver.party_id,
    }


def next_link(url: str) -> str:
    return f'<{url}>; rel="next"'


def parse_next_link(value: str | None) -> str | None:
    """The URL of ``rel="next"`` in a Link header (RFC 8288), or None."""
    if not value:
        return None
    for match in _LINK_RE.finditer(value):
        if "next" in match.group(2).lower().split():
            return match.group(1).strip()
    return None
