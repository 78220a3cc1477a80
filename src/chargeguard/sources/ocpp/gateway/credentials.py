"""Learned station passwords: what a rotation looks like on the wire, and the salted scrypt hashes that survive a
restart, in one JSON file the gateway owns.

When a station accepts a password rotation the CSMS sent (1.6 ``ChangeConfiguration AuthorizationKey``, 2.0.1
``SetVariables BasicAuthPassword``), the gateway hashes the new password at once (``auth.hash_password``) and
writes only that hash here, so a restarted gateway admits the station with its new password and refuses the old
one. The raw password is never written, logged or kept.

File (``learned_credentials`` in the gateway configuration, mode 0600, replaced atomically)::

    {"version": 1, "stations": {"CP-1": {"hash": "scrypt$16384$8$1$<salt>$<hash>",
                                         "replaces": "<sha256 of the configured hash it superseded>",
                                         "learned_at": "2026-03-01T08:00:00Z"}}}

``replaces`` keeps the operator in charge: when the configured ``password_hash`` of a station is changed after a
rotation was learned (the operator set a new password by hand), the configuration wins and the learned entry is
ignored (and dropped at the next write).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson
import structlog

from chargeguard.errors import ConfigError
from chargeguard.private_file import write_private_file
from chargeguard.sources.ocpp.gateway.auth import PasswordHash

log = structlog.get_logger("chargeguard.gateway.credentials")

_FORMAT_VERSION = 1


def configured_fingerprint(encoded_hash: str | None) -> str:
    """A short stable reference to the configured hash a learned one superseded (empty when none)."""
    if not encoded_hash:
        return ""
    return hashlib.sha256(encoded_hash.encode("utf-8")).hexdigest()[:32]


class LearnedCredentials:
    """The learned-password file: :meth:`effective` at start, :meth:`record` after every accepted rotation."""

    def __init__(self, path: Path, configured: Mapping[str, str | None]) -> None:
        self.path = path
        self._configured = {identity: configured_fingerprint(h) for identity, h in configured.items()}
        self._entries: dict[str, dict[str, str]] = {}
        self._load()

    def _load(self) -> None:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return
        except OSError as exc:
            raise ConfigError(f"cannot read learned credentials {self.path}: {exc.strerror}") from exc
        try:
            data: Any = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ConfigError(f"learned credentials {self.path} are not valid JSON") from exc
        stations = data.get("stations") if isinstance(data, dict) else None
        if (
            not isinstance(data, dict)
            or data.get("version") != _FORMAT_VERSION
            or not isinstance(stations, dict)
        ):
            raise ConfigError(f"learned credentials {self.path}: unknown format")
        for identity, entry in stations.items():
            if not isinstance(entry, dict) or not isinstance(entry.get("hash"), str):
                raise ConfigError(f"learned credentials {self.path}: bad entry for a station")
            PasswordHash.parse(entry["hash"])  # ConfigError when unusable
            if identity not in self._configured:
                log.warning("gateway.credentials.unknown_station")
                continue
            if entry.get("replaces", "") != self._configured[identity]:
                log.warning("gateway.credentials.superseded_by_configuration", station=identity)
                continue
            self._entries[identity] = {k: str(v) for k, v in entry.items()}

    def effective(self) -> dict[str, str]:
        """Identity -> the learned hash that replaces the configured one."""
        return {identity: entry["hash"] for identity, entry in self._entries.items()}

    def record(self, identity: str, encoded_hash: str, now: dt.datetime) -> None:
        """Persist a rotation the station accepted (``encoded_hash`` from ``auth.hash_password``)."""
        PasswordHash.parse(encoded_hash)
        self._entries[identity] = {
            "hash": encoded_hash,
            "replaces": self._configured.get(identity, ""),
            "learned_at": now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        self._write()

    def _write(self) -> None:
        data = orjson.dumps(
            {"version": _FORMAT_VERSION, "stations": self._entries}, option=orjson.OPT_INDENT_2
        )
        write_private_file(self.path, data)
        log.info("gateway.credentials.saved", stations=len(self._entries))


def rotated_password(action: str | None, payload: Any) -> str | None:
    """The new station password a CSMS CALL sets (1.6 ChangeConfiguration AuthorizationKey, 2.0.1 SetVariables
    BasicAuthPassword), or None."""
    if not isinstance(payload, dict):
        return None
    if action == "ChangeConfiguration" and payload.get("key") == "AuthorizationKey":
        value = payload.get("value")
        return value if isinstance(value, str) else None
    if action == "SetVariables":
        for entry in payload.get("setVariableData") or []:
            if not isinstance(entry, dict):
                continue
            variable = entry.get("variable")
            if isinstance(variable, dict) and variable.get("name") == "BasicAuthPassword":
                value = entry.get("attributeValue")
                return value if isinstance(value, str) else None
    return None


def rotation_accepted(payload: Any) -> bool:
    """Whether the station's answer accepted the password change."""
    if not isinstance(payload, dict):
        return False
    if payload.get("status") == "Accepted":
        return True
    results = payload.get("setVariableResult")
    if isinstance(results, list):
        return any(
            isinstance(r, dict)
            and isinstance(r.get("variable"), dict)
            and r["variable"].get("name") == "BasicAuthPassword"
            and r.get("attributeStatus") == "Accepted"
            for r in results
        )
    return False
