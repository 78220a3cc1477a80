"""Sanitising OCPP frames before they are written anywhere: tokens become pseudonyms, secrets are redacted.

Tokens (pseudonymised with :class:`~chargeguard.vault.pseudonyms.Pseudonymiser`, wherever they appear in a
payload): ``idTag``, ``parentIdTag``, ``idToken`` when a string (the value inside an IdTokenType, including
``groupIdToken.idToken``), ``additionalIdToken``. Empty strings (2.0.1 NoAuthorization) stay empty.

Secrets (replaced by ``"<redacted>"``): the value of ChangeConfiguration ``AuthorizationKey`` and of any
configuration key / variable named AuthorizationKey or BasicAuthPassword (SetVariables, GetVariables results,
GetConfiguration results), SetNetworkProfile ``apnPassword``, ``simPin``, VPN ``password`` and ``key``, and the
``user:password@`` part of any URL-valued string.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from chargeguard.vault.pseudonyms import Pseudonymiser

REDACTED = "<redacted>"
TOKEN_KEYS = frozenset({"idTag", "parentIdTag", "idToken", "additionalIdToken"})
SECRET_KEYS = frozenset({"apnPassword", "simPin", "password", "key"})
SECRET_NAMES = frozenset({"authorizationkey", "basicauthpassword"})
_URL_USERINFO = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.\-]*://)[^/@\s]*@")


def redact_url(value: str) -> str:
    """``ftp://user:pw@host/x`` -> ``ftp://<redacted>@host/x``; other strings unchanged."""
    return _URL_USERINFO.sub(lambda m: m.group(1) + REDACTED + "@", value)


def sanitise_payload(payload: Any, pseudonymise: Callable[[str], str]) -> Any:
    """A copy of ``payload`` with tokens pseudonymised and secrets redacted (the input is not modified)."""
    return _walk(payload, pseudonymise, None)


def _walk(node: Any, pseudonymise: Callable[[str], str], parent_key: str | None) -> Any:
    if isinstance(node, dict):
        secret_entry = _names_secret(node)
        out: dict[str, Any] = {}
        for key, value in node.items():
            if isinstance(value, str):
                if key in TOKEN_KEYS:
                    out[key] = pseudonymise(value) if value else value
                elif (secret_entry and key in ("value", "attributeValue")) or (
                    key in SECRET_KEYS and parent_key in ("apn", "vpn")
                ):
                    out[key] = REDACTED
                elif "://" in value:
                    out[key] = redact_url(value)
                else:
                    out[key] = value
            else:
                out[key] = _walk(value, pseudonymise, key)
        return out
    if isinstance(node, list):
        return [_walk(item, pseudonymise, parent_key) for item in node]
    return node


def _names_secret(node: dict[str, Any]) -> bool:
    """An entry naming a password: {"key": "AuthorizationKey", "value": ...} or {"variable": {"name": ...}}."""
    key = node.get("key")
    if isinstance(key, str) and key.lower() in SECRET_NAMES:
        return True
    variable = node.get("variable")
    if isinstance(variable, dict):
        name = variable.get("name")
        return isinstance(name, str) and name.lower() in SECRET_NAMES
    return False


def sanitise_frame(frame: list[Any], pseudonymiser: Pseudonymiser) -> list[Any]:
    """A copy of an OCPP-J array with its payload (CALL/SEND/CALLRESULT) or details (errors) sanitised."""
    if len(frame) == 4 and isinstance(frame[3], dict):
        return [frame[0], frame[1], frame[2], sanitise_payload(frame[3], pseudonymiser)]
    if len(frame) == 3:
        return [frame[0], frame[1], sanitise_payload(frame[2], pseudonymiser)]
    if len(frame) == 5:
        return [frame[0], frame[1], frame[2], frame[3], sanitise_payload(frame[4], pseudonymiser)]
    return [sanitise_payload(item, pseudonymiser) for item in frame]
