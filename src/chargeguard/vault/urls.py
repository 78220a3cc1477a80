"""Redacting URLs: ``user:password@`` in the authority and credential-carrying query parameters.

``redact_url`` never raises: URLs that ``urllib`` refuses are handled by plain string surgery.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit, urlunsplit

from chargeguard.vault.fields import REDACTED

_SENSITIVE_QUERY = frozenset(
    {
        "password",
        "passwd",
        "pwd",
        "pass",
        "token",
        "access_token",
        "auth",
        "auth_token",
        "authorization",
        "secret",
        "client_secret",
        "key",
        "apikey",
        "api_key",
        "sig",
        "signature",
        "credential",
        "credentials",
        "x-amz-signature",
        "x-amz-credential",
        "x-amz-security-token",
        "x-goog-signature",
        "x-goog-credential",
    }
)
_QUERY_SPLIT = re.compile(r"([&;])")
_SCHEMELESS_AUTHORITY = re.compile(r"^(//)([^/?#]*)@")


def _redact_query(query: str) -> tuple[str, bool]:
    found = False
    out: list[str] = []
    for piece in _QUERY_SPLIT.split(query):
        name, sep, _value = piece.partition("=")
        if sep and unquote(name).strip().lower() in _SENSITIVE_QUERY:
            out.append(f"{name}={REDACTED}")
            found = True
        else:
            out.append(piece)
    return "".join(out), found


def _redact_url(url: str) -> tuple[str, bool]:
    parts = urlsplit(url)
    found = False
    netloc = parts.netloc
    if "@" in netloc:
        netloc = netloc.rpartition("@")[2]
        found = True
    query, query_found = _redact_query(parts.query)
    fragment, fragment_found = _redact_query(parts.fragment)
    found = found or query_found or fragment_found
    if not found:
        return url, False
    return urlunsplit((parts.scheme, netloc, parts.path, query, fragment)), True


def redact_url(url: str) -> tuple[str, bool]:
    """Remove user:password and credential query parameters from ``url``; never raises.

    Returns ``(safe_url, credentials_were_present)``.
    """
    try:
        return _redact_url(url)
    except (ValueError, TypeError, UnicodeError):
        # urlsplit refuses some garbage (unbalanced IPv6 brackets...): fall back to plain string surgery.
        text = str(url)
        found = False
        head, sep, rest = text.partition("://")
        if sep:
            authority, slash, tail = rest.partition("/")
            if "@" in authority:
                authority = authority.rpartition("@")[2]
                found = True
            rest = authority + slash + tail
            text = head + sep + rest
        base, qsep, query = text.partition("?")
        if qsep:
            query, query_found = _redact_query(query)
            found = found or query_found
            text = base + qsep + query
        elif m := _SCHEMELESS_AUTHORITY.match(text):
            text = m.group(1) + text[m.end() :]
            found = True
        return text, found
