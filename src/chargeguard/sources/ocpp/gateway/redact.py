"""Sanitising OCPP frames before the gateway writes them: tokens become pseudonyms, secrets are redacted.

The field vocabulary is the project's (:mod:`chargeguard.vault.fields`), matched case-insensitively:

* token fields (``idTag``, ``parentIdTag``, ``idToken`` when a string - the value inside an IdTokenType,
  including ``groupIdToken.idToken`` -, ``additionalIdToken``, ``emaid``, ``contractId`` ...) are pseudonymised
  with :class:`~chargeguard.vault.pseudonyms.Pseudonymiser` (the pseudonyms ``chargeguard scan`` makes, so a
  replay gives the same alerts; a pseudonym passes through unchanged). Empty strings (2.0.1 NoAuthorization)
  stay empty.
* secrets become ``[redacted:secret]``: the value of any configuration key / variable named in
  ``SECRET_KEYS`` (ChangeConfiguration AuthorizationKey, SetVariables / GetVariables BasicAuthPassword,
  GetConfiguration results), fields named in ``SECRET_FIELDS`` (SetNetworkProfile ``apnPassword``,
  ``simPin``, VPN ``password``) and the VPN ``key``;
* URL-valued strings lose ``user:password@`` and credential query parameters
  (:func:`chargeguard.vault.urls.redact_url`: UpdateFirmware, GetDiagnostics, GetLog locations).

Other strings are kept as sent (serial numbers, firmware versions and vendor data are evidence for the
detectors); :func:`chargeguard.vault.redact.redact_text` is the stricter free-text filter for logs.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from chargeguard.vault.fields import SECRET_FIELDS, SECRET_KEYS, TOKEN_FIELDS, marker
from chargeguard.vault.pseudonyms import Pseudonymiser
from chargeguard.vault.redact import redact_text
from chargeguard.vault.urls import redact_url as _redact_url

REDACTED = marker("secret")
_SECRET_NAMES = frozenset(name.lower() for name in SECRET_KEYS)
_MAX_DEPTH = 64
_DIGIT = re.compile(r"[0-9]")
_TIMESTAMP = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?(?:Z|[+-][0-9]{2}:[0-9]{2})"
)


def redact_url(value: str) -> str:
    """``ftp://user:pw@host/x`` without its credentials; other strings unchanged."""
    return _redact_url(value)[0]


def sanitise_payload(payload: Any, pseudonymise: Callable[[str], str]) -> Any:
    """A copy of ``payload`` with tokens pseudonymised and secrets redacted (the input is not modified)."""
    return _walk(payload, pseudonymise, None, 0)


def _walk(node: Any, pseudonymise: Callable[[str], str], parent_key: str | None, depth: int) -> Any:
    """The sanitised node; the very same object when nothing in it changes (no copy on the common path)."""
    if depth > _MAX_DEPTH:
        return marker("too_deep")
    if type(node) is dict:
        secret_entry = _names_secret(node)
        out: dict[str, Any] | None = None
        for key, value in node.items():
            lower = key.lower() if type(key) is str else ""
            if type(value) is str:
                if lower in TOKEN_FIELDS:
                    new = pseudonymise(value) if value else value
                elif (secret_entry and lower in ("value", "attributevalue")) or _secret_field(
                    lower, parent_key
                ):
                    new = REDACTED if value else value
                elif "://" in value:
                    new = redact_url(value)
                else:
                    new = _free_text(value)
            elif type(value) is dict or type(value) is list:
                new = _walk(value, pseudonymise, lower, depth + 1)
            else:
                new = value
            if out is not None:
                out[key] = new
            elif new is not value:
                out = dict(node)  # first change: copy, so the caller's frame is never modified
                out[key] = new
        return node if out is None else out
    if type(node) is list:
        items = [_walk(item, pseudonymise, parent_key, depth + 1) for item in node]
        return node if all(a is b for a, b in zip(items, node, strict=True)) else items
    return node


def _free_text(value: str) -> str:
    """Vendor fields and descriptions can carry a card (DataTransfer data, CALLERROR text): the token net runs on
    any string long enough, and with a digit, to hold an RFID UID or eMAID. Cheap pre-checks on the hot path (C
    regexes): no digit, or exactly an RFC 3339 time (every MeterValues / StatusNotification carries one), is kept."""
    if len(value) < 8 or _DIGIT.search(value) is None or _TIMESTAMP.fullmatch(value) is not None:
        return value
    return redact_text(value)


def _secret_field(lower: str, parent_key: str | None) -> bool:
    return lower in SECRET_FIELDS or (lower == "key" and parent_key == "vpn")


def _names_secret(node: dict[str, Any]) -> bool:
    """An entry naming a password: {"key": "AuthorizationKey", "value": ...} or {"variable": {"name": ...}}."""
    key = node.get("key")
    if isinstance(key, str) and key.lower() in _SECRET_NAMES:
        return True
    variable = node.get("variable")
    if isinstance(variable, dict):
        name = variable.get("name")
        return isinstance(name, str) and name.lower() in _SECRET_NAMES
    return False


def sanitise_frame(frame: list[Any], pseudonymiser: Pseudonymiser) -> list[Any]:
    """A copy of an OCPP-J array with its payload (CALL/SEND/CALLRESULT) or details (errors) sanitised."""
    if len(frame) == 4 and isinstance(frame[3], dict):
        return [frame[0], frame[1], frame[2], sanitise_payload(frame[3], pseudonymiser)]
    if len(frame) == 3:
        return [frame[0], frame[1], sanitise_payload(frame[2], pseudonymiser)]
    if len(frame) == 5:
        description = _free_text(frame[3]) if isinstance(frame[3], str) else frame[3]
        return [frame[0], frame[1], frame[2], description, sanitise_payload(frame[4], pseudonymiser)]
    return [sanitise_payload(item, pseudonymiser) for item in frame]
