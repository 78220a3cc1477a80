"""OCPP payload validation against the official JSON schemas shipped in the ``ocpp`` package, fast.

Public API (called by ``frames.py`` on every CALL and CALLRESULT)::

    VERSIONS                                  the OCPP versions the installed ``ocpp`` package has schemas for
    known_actions(version)                    the actions of a version (from its schema files)
    call_senders(version, action)             {"station"}, {"csms"} or both: who may send this CALL
    PayloadValidator().validate(version, action, "call" | "result", payload) -> None | "<$.path>: <rule>"

(an OCPP 2.1 SEND frame is validated as a "call").

The action is looked up in the set of known actions before any schema is touched, so an action such as
``"../../v201/schemas/X"`` can never select another version's schema (the ``ocpp`` package builds its schema
path from the action name unchecked). Each schema is compiled once, on first use, into two validators:

* a msgspec type (``schemas_fast``) that accepts a payload only if the schema does - the hot path, about the
  cost of an ``orjson.loads`` of the same payload;
* an exact validator (``schemas_exact``) with ``jsonschema``'s semantics, which decides every payload the
  fast type refuses and writes the description of the first rule broken (path and rule, never the value).

Unlike the ``ocpp`` package, formats are enforced: ``date-time`` is RFC 3339 with a zone (naive times and
years beyond 9999 are invalid), ``uri`` is RFC 3986. ``validate`` never raises, whatever the payload.

The OCPP 1.6 security extension messages (SecurityEventNotification, SignCertificate, CertificateSigned,
InstallCertificate, DeleteCertificate, GetInstalledCertificateIds, GetLog, LogStatusNotification,
SignedUpdateFirmware, SignedFirmwareStatusNotification, ExtendedTriggerMessage) ship with ``ocpp``
(``v16``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from importlib import resources
from typing import Any, Literal

import msgspec
import orjson
import structlog

from chargeguard.sources.ocpp.schemas_exact import SchemaCompileError, compile_exact
from chargeguard.sources.ocpp.schemas_fast import FastType, compile_fast, dec_hook
from chargeguard.sources.ocpp.schemas_senders import senders

log = structlog.get_logger("chargeguard.ocpp.schemas")

_PACKAGE_DIRS: dict[str, str] = {"1.6": "v16", "2.0.1": "v201", "2.1": "v21"}
Kind = Literal["call", "result"]


def _schema_dir(version: str) -> Any:
    directory = resources.files("ocpp") / _PACKAGE_DIRS[version] / "schemas"
    return directory if directory.is_dir() else None


VERSIONS: tuple[str, ...] = tuple(version for version in _PACKAGE_DIRS if _schema_dir(version) is not None)
"""The OCPP versions the installed ``ocpp`` package has schemas for, oldest first."""


def _list_schema_files(version: str) -> dict[tuple[str, Kind], str]:
    """(action, kind) -> schema file name, from the file names of the version's schema directory."""
    files: dict[tuple[str, Kind], str] = {}
    for entry in _schema_dir(version).iterdir():
        name = entry.name
        if not name.endswith(".json"):
            continue
        stem = name.removesuffix(".json")
        if stem.endswith("Response"):
            files[(stem.removesuffix("Response"), "result")] = name
        elif version != "1.6" and stem.endswith("Request"):
            files[(stem.removesuffix("Request"), "call")] = name
        else:  # an OCPP 1.6 request, or an OCPP 2.1 SEND message (NotifyPeriodicEventStream)
            files[(stem, "call")] = name
    return files


@functools.cache
def _catalogue() -> dict[str, tuple[frozenset[str], dict[tuple[str, Kind], str]]]:
    """Per known version: its actions and its schema files (built once; keyed by known versions only)."""
    catalogue: dict[str, tuple[frozenset[str], dict[tuple[str, Kind], str]]] = {}
    for version in VERSIONS:
        files = _list_schema_files(version)
        catalogue[version] = (frozenset(action for action, kind in files if kind == "call"), files)
    return catalogue


def _schema_files(version: str) -> dict[tuple[str, Kind], str]:
    return _catalogue()[version][1] if version in VERSIONS else {}


def known_actions(version: str) -> frozenset[str]:
    """The actions ``version`` defines (those with a request schema); empty for an unknown version."""
    entry = _catalogue().get(version) if isinstance(version, str) else None
    return entry[0] if entry is not None else frozenset()


def call_senders(version: str, action: str) -> frozenset[str]:
    """Who may initiate ``action`` as a CALL: ``{"station"}``, ``{"csms"}`` or both; empty when unknown."""
    if action not in known_actions(version):
        return frozenset()
    return senders(version, action)


def load_schema(version: str, action: str, kind: Kind) -> dict[str, Any] | None:
    """The parsed JSON schema for a known (version, action, kind), or None."""
    if action not in known_actions(version):
        return None
    name = _schema_files(version).get((action, kind))
    if name is None:
        return None
    data = (_schema_dir(version) / name).read_bytes()
    schema: dict[str, Any] = orjson.loads(data.removeprefix(b"\xef\xbb\xbf"))
    return schema


class _Compiled(msgspec.Struct, frozen=True):
    fast: FastType | None  # None when the schema cannot be expressed as msgspec types
    exact: Callable[[object], str | None]


def _exact(compiled: _Compiled, version: str, action: str, payload: object) -> str | None:
    try:
        return compiled.exact(payload)
    except Exception as exc:  # a bug in the exact validator must not stop the pipeline
        log.warning("ocpp.schemas.validator_failed", version=version, action=action, error=type(exc).__name__)
        return "$: payload could not be validated"


def _bind(compiled: _Compiled, version: str, action: str) -> Check:
    """The check of one compiled schema: msgspec's conversion, and the exact validator when it refuses."""
    fast = compiled.fast
    if fast is None:
        return lambda payload: _exact(compiled, version, action, payload)
    target = fast.type
    # ``dec_hook`` costs ~1 us a call: passed only to types holding CheckedValue markers
    convert: Callable[..., object] = (
        functools.partial(msgspec.convert, dec_hook=dec_hook) if fast.needs_hook else msgspec.convert
    )

    def check(payload: object) -> str | None:
        try:
            convert(payload, target)
        except Exception:  # refused (or absurd nesting): the exact validator decides and describes
            return _exact(compiled, version, action, payload)
        return None

    return check


Check = Callable[[object], str | None]
"""A validator bound to one (version, action, kind): None when the payload is valid, else what is wrong."""


class PayloadValidator:
    """Validates OCPP payloads; schemas are compiled on first use per (version, action, kind) and kept."""

    def __init__(self) -> None:
        self._compiled: dict[tuple[str, str, str], _Compiled] = {}
        self._checks: dict[tuple[str, str, str], Check] = {}

    def validate(self, version: str, action: str, kind: Kind, payload: object) -> str | None:
        """None when ``payload`` is valid, else ``"<JSON path>: <rule broken>"``; never raises."""
        try:
            check = self._checks.get((version, action, kind))
        except TypeError:  # an unhashable version/action from a careless caller
            return "unknown OCPP version or action"
        if check is None:
            check = self.check_for(version, action, kind)
        return check(payload)

    def check_for(self, version: str, action: str, kind: Kind) -> Check:
        """``validate`` bound to one (version, action, kind), for a caller that checks many payloads of it (the
        normaliser keeps one per action it has seen: no key to build and look up per payload). Kept for known
        (version, action, kind) only: wire names cannot grow the table."""
        key = (version, action, kind)
        check = self._checks.get(key)
        if check is not None:
            return check
        found = self._compiled.get(key) or self._compile(version, action, kind)
        if isinstance(found, str):
            return lambda _payload: found
        check = _bind(found, version, action)
        self._checks[key] = check
        return check

    def _compile(self, version: str, action: str, kind: Kind) -> _Compiled | str:
        # only known (version, action, kind) are compiled and cached: wire names cannot grow the cache
        if not isinstance(version, str) or version not in VERSIONS:
            return "unknown OCPP version"
        if not isinstance(action, str) or action not in known_actions(version):
            return f"action not defined in OCPP {version}"
        if kind not in ("call", "result"):
            return "unknown message kind"
        schema = load_schema(version, action, kind)
        if schema is None:
            return f"{action} has no {'CALLRESULT' if kind == 'result' else 'CALL'} in OCPP {version}"
        try:
            exact = compile_exact(schema)
        except SchemaCompileError as exc:  # a newer ``ocpp`` package with constructs not implemented here
            log.error("ocpp.schemas.unsupported", version=version, action=action, kind=kind, reason=str(exc))
            return f"the schema of {action} in OCPP {version} cannot be checked"
        fast: FastType | None
        try:
            fast = compile_fast(schema, f"{action}{kind.title()}")
        except SchemaCompileError as exc:
            log.info(
                "ocpp.schemas.fast_unavailable", version=version, action=action, kind=kind, reason=str(exc)
            )
            fast = None
        compiled = _Compiled(fast=fast, exact=exact)
        self._compiled[(version, action, kind)] = compiled
        return compiled

    def compile_all(self) -> int:
        """Compile every schema of every version now (for a server that wants no first-use latency)."""
        count = 0
        for version in VERSIONS:
            for action, kind in _schema_files(version):
                if not isinstance(self._compile(version, action, kind), str):
                    count += 1
        return count
