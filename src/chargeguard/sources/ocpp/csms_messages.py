"""Central system -> station messages -> events: every CALL is a CommandIssued; configuration writes also become
ConfigurationChange events and configuration reads ConfigurationReport events.

Secrets never leave this module: AuthorizationKey / BasicAuthPassword values and every configuration key whose
name says password, secret, key material or PIN become ``"[redacted]"``; SetNetworkProfile credentials (APN
password, SIM PIN, VPN password and key) are dropped; user:password in URLs is removed (``url_credentials`` says it
was there). Tokens in commands (RemoteStart, ReserveNow, SendLocalList, CustomerInformation) become pseudonyms.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

import orjson

from chargeguard.events import CommandIssued, ConfigurationChange, ConfigurationReport, Event
from chargeguard.sources.capture import FrameRecord
from chargeguard.vault.redact import redact_url

if TYPE_CHECKING:
    from chargeguard.sources.ocpp.normalize import Normaliser

REDACTED = "[redacted]"
_SECRET_WORDS = ("password", "authorizationkey", "secret", "pin", "privatekey", "passphrase")
_PER_STATION_KEYS = frozenset(
    {
        "connectorId",
        "evseId",
        "transactionId",
        "chargingProfileId",
        "requestId",
        "remoteStartId",
        "id",
        "stackLevel",
    }
)
_URL_FIELDS = {
    "UpdateFirmware": (("location",), ("firmware", "location")),
    "SignedUpdateFirmware": (("firmware", "location"),),
    "GetDiagnostics": (("location",),),
    "GetLog": (("log", "remoteLocation"),),
    "PublishFirmware": (("location",),),
}


def is_secret_key(key: str) -> bool:
    """True for configuration keys whose values are secrets (compared case-insensitively on the variable name)."""
    name = key.rsplit(".", 1)[-1].split("/", 1)[0].lower()
    return any(word in name for word in _SECRET_WORDS)


def config_value(key: str, value: Any) -> str | None:
    """A configuration value safe to keep: secrets redacted, long values cut."""
    if value is None:
        return None
    if is_secret_key(key):
        return REDACTED
    text = value if isinstance(value, str) else orjson.dumps(value).decode()
    if "://" in text:
        text = redact_url(text)[0]
    return text[:500]


def _fingerprint(action: str, payload: dict[str, Any]) -> str:
    """Digest of what a command asks for, without the ids that differ per station or per request."""

    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k not in _PER_STATION_KEYS}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    body = orjson.dumps([action, strip(payload)], option=orjson.OPT_SORT_KEYS)
    return hashlib.blake2b(body, digest_size=10).hexdigest()


def _dig(payload: dict[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = payload
    for part in path:
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _token_refs(norm: Normaliser, action: str, payload: dict[str, Any]) -> tuple[str, ...]:
    refs: list[str] = []
    if action == "SendLocalList":
        for entry in payload.get("localAuthorizationList") or ():
            if not isinstance(entry, dict):
                continue
            raw = entry.get("idTag")
            info = entry.get("idTagInfo")
            if raw is None and isinstance(entry.get("idToken"), dict):
                raw = entry["idToken"].get("idToken")
                info = entry.get("idTokenInfo")
            # only entries that grant charging matter for a stale list; a Blocked entry is the list doing its job
            status = info.get("status") if isinstance(info, dict) else None
            if status in ("Accepted", "ConcurrentTx"):
                ref = norm.token(raw)
                if ref:
                    refs.append(ref)
        return tuple(refs)
    for field_name in ("idTag", "idToken", "groupIdToken"):
        raw = payload.get(field_name)
        if isinstance(raw, dict):
            raw = raw.get("idToken")
        ref = norm.token(raw)
        if ref:
            refs.append(ref)
    return tuple(refs)


def on_call(
    norm: Normaliser,
    rec: FrameRecord,
    message_id: str,
    action: str,
    payload: dict[str, Any],
    out: list[Event],
) -> None:
    urls: list[str] = []
    credentials = False
    for path in _URL_FIELDS.get(action, ()):
        raw = _dig(payload, path)
        if isinstance(raw, str):
            safe, had = redact_url(raw)
            urls.append(safe[:500])
            credentials = credentials or had
    details: dict[str, Any] = {}
    connector = payload.get("connectorId", payload.get("evseId"))
    if action == "ChangeConfiguration":
        key = str(payload["key"])[:100]
        out.append(
            ConfigurationChange(
                rec.ts,
                rec.station,
                rec.ocpp,
                action,
                key,
                config_value(key, payload.get("value")),
                message_id,
            )
        )
        details["key"] = key
    elif action == "SetVariables":
        for item in payload["setVariableData"]:
            component = item["component"]
            variable = item["variable"]
            key = f"{component['name']}.{variable['name']}"
            instance = variable.get("instance") or component.get("instance")
            if instance:
                key = f"{key}/{instance}"
            if item.get("attributeType", "Actual") != "Actual":
                continue
            out.append(
                ConfigurationChange(
                    rec.ts,
                    rec.station,
                    rec.ocpp,
                    action,
                    key,
                    config_value(key, item.get("attributeValue")),
                    message_id,
                )
            )
        details["variables"] = len(payload["setVariableData"])
    elif action == "SetNetworkProfile":
        slot = payload.get("configurationSlot")
        data = payload.get("connectionData") or {}
        url_raw = data.get("ocppCsmsUrl")
        safe_url, had = redact_url(url_raw) if isinstance(url_raw, str) else (None, False)
        credentials = credentials or had
        profile_details = {
            "ocppCsmsUrl": safe_url,
            "securityProfile": data.get("securityProfile"),
            "ocppVersion": data.get("ocppVersion"),
            "ocppInterface": data.get("ocppInterface"),
            "configurationSlot": slot,
            "vpn": isinstance(data.get("vpn"), dict),
        }
        out.append(
            ConfigurationChange(
                rec.ts,
                rec.station,
                rec.ocpp,
                action,
                f"NetworkConnectionProfile/{slot}",
                safe_url,
                message_id,
                profile_details,
            )
        )
        details.update(profile_details)
        if safe_url:
            urls.append(safe_url)
    elif action in ("Reset", "ChangeAvailability", "TriggerMessage", "UnlockConnector", "ClearCache"):
        for name in ("type", "operationalStatus", "requestedMessage"):
            if name in payload:
                details[name] = str(payload[name])[:40]
    elif action == "SendLocalList":
        details["updateType"] = str(payload.get("updateType"))[:20]
        details["entries"] = len(payload.get("localAuthorizationList") or ())
    out.append(
        CommandIssued(
            ts=rec.ts,
            station=rec.station,
            ocpp=rec.ocpp,
            action=action,
            message_id=message_id,
            urls=tuple(urls),
            url_credentials=credentials,
            token_refs=_token_refs(norm, action, payload),
            fingerprint=_fingerprint(action, payload) if action not in ("Heartbeat",) else None,
            connector=str(connector) if connector is not None else None,
            details=details,
        )
    )


def on_result(
    norm: Normaliser,
    rec: FrameRecord,
    action: str,
    call: dict[str, Any],
    result: dict[str, Any],
    out: list[Event],
) -> str | None:
    """Events from a station's answer to a command; returns the answer's status for CommandAnswered."""
    del norm
    if action == "GetConfiguration":
        for item in result.get("configurationKey") or ():
            key = str(item.get("key"))[:100]
            out.append(
                ConfigurationReport(rec.ts, rec.station, rec.ocpp, key, config_value(key, item.get("value")))
            )
        return "Accepted"
    if action == "GetVariables":
        for item in result.get("getVariableResult") or ():
            if item.get("attributeStatus") != "Accepted" or item.get("attributeType", "Actual") != "Actual":
                continue
            key = f"{item['component']['name']}.{item['variable']['name']}"
            out.append(
                ConfigurationReport(
                    rec.ts, rec.station, rec.ocpp, key, config_value(key, item.get("attributeValue"))
                )
            )
        return "Accepted"
    if action == "SetVariables":
        statuses = sorted({str(r.get("attributeStatus")) for r in result.get("setVariableResult") or ()})
        return ",".join(statuses)[:60] or None
    del call
    status = result.get("status")
    return str(status)[:40] if status is not None else None
