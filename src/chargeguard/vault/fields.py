"""The vocabulary of redaction: which field names carry driver tokens, secrets or mere identifiers.

Shared by the redaction layer, the file scanner and payload rewriting, so that all three agree.
"""

from __future__ import annotations

import re

REDACTED = "REDACTED"


def marker(kind: str) -> str:
    """The text that replaces a redacted value of the given kind."""
    return f"[redacted:{kind}]"


#: OCPP configuration keys (1.6) and device-model variables (2.0.1) whose values are secrets.
SECRET_KEYS: frozenset[str] = frozenset(
    {
        "AuthorizationKey",  # 1.6 security whitepaper: HTTP Basic password of the station
        "BasicAuthPassword",  # 2.0.1 SecurityCtrlr.BasicAuthPassword
        "CentralSystemPassword",  # vendor spelling seen in 1.6 firmwares
        "ChargePointPassword",
        "WebSocketPassword",
        "NetworkProfilePassword",
    }
)

#: Payload field names (OCPP SetNetworkProfile APN/VPN, OCPI credentials, generic) whose values are secrets.
SECRET_FIELDS: frozenset[str] = frozenset(
    {
        "password",
        "passwd",
        "pwd",
        "secret",
        "client_secret",
        "apnpassword",
        "simpin",
        "authorizationkey",
        "basicauthpassword",
        "api_key",
        "apikey",
        "access_token",
        "refresh_token",
        "auth_token",
        "token",
        "private_key",
        "privatekey",
    }
)

#: Payload field names (OCPP 1.6 / 2.0.1, OCPI) whose values are driver tokens.
TOKEN_FIELDS: frozenset[str] = frozenset(
    {
        "idtag",
        "parentidtag",
        "idtoken",
        "groupidtoken",
        "additionalidtoken",
        "id_tag",
        "id_token",
        "uid",
        "token_uid",
        "contract_id",
        "contractid",
        "visual_number",
        "visualnumber",
        "auth_id",
        "emaid",
    }
)


#: Field names whose values are identifiers (message, transaction, trace ids, hashes), never tokens.
ID_FIELDS: frozenset[str] = frozenset(
    {
        "message_id",
        "messageid",
        "msg_id",
        "msgid",
        "unique_id",
        "uniqueid",
        "request_id",
        "requestid",
        "trace_id",
        "traceid",
        "span_id",
        "spanid",
        "correlation_id",
        "correlationid",
        "transaction_id",
        "transactionid",
        "session_id",
        "sessionid",
        "cdr_id",
        "alert_id",
        "commit",
        "sha",
        "sha1",
        "sha256",
        "hash",
        "digest",
    }
)

#: The shape of a chargeguard pseudonym (the check characters need the key, which redaction never has).
PSEUDONYM_SHAPE = re.compile(r"^tok[1-9][0-9]?_[A-Za-z2-7]{14,15}$")
