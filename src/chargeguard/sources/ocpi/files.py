"""OCPI files for a scan: Locations, Tariffs, Tokens, Sessions and CDRs -> events in event-time order, with a report.

Every file is read with the importer (JSON array, OCPI envelope, one object, or JSON Lines; tokens pseudonymised
before anything else sees them). A bad record is named by file, line (JSON Lines) and record index, counted, and
the rest go on; a file that cannot be read at all is reported and the other files still go through. Locations are
read first: they give the station mapping (``StationMapping``) and the time zones the other objects need.

Token records in files may carry a chargeguard extension field ``received_at`` (RFC 3339): when the CPO received
that version of the token (from its push log). Without it the version counts as received at its ``last_updated``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeAlias

import msgspec
import structlog

from chargeguard.errors import InputError
from chargeguard.sources.ocpi.events import CdrReceived, SessionReported, TariffKnown, TokenStatus
from chargeguard.sources.ocpi.importer import ObjectKind, TokenPseudonymiser, decode_record, iter_located
from chargeguard.sources.ocpi.models import Cdr, Location, Session, Tariff, Token
from chargeguard.sources.ocpi.normalize import (
    MappingMode,
    StationMapping,
    cdr_event,
    session_event,
    tariff_event,
    token_event,
)

log = structlog.get_logger("chargeguard.sources.ocpi.files")

OcpiEvent: TypeAlias = CdrReceived | SessionReported | TariffKnown | TokenStatus
MAX_EXAMPLES = 5
_ORDER: tuple[ObjectKind, ...] = ("location", "tariff", "token", "session", "cdr")


class _Received(msgspec.Struct):
    received_at: datetime | None = None


_received = msgspec.json.Decoder(_Received)


@dataclass(frozen=True, slots=True)
class OcpiInputs:
    """The OCPI files of one scan, per object kind (each may list several files)."""

    cdrs: Sequence[Path] = ()
    sessions: Sequence[Path] = ()
    tariffs: Sequence[Path] = ()
    tokens: Sequence[Path] = ()
    locations: Sequence[Path] = ()

    def by_kind(self) -> dict[ObjectKind, Sequence[Path]]:
        return {
            "location": self.locations,
            "tariff": self.tariffs,
            "token": self.tokens,
            "session": self.sessions,
            "cdr": self.cdrs,
        }

    def __bool__(self) -> bool:
        return any(self.by_kind().values())


@dataclass(slots=True)
class OcpiLoad:
    """What the OCPI files gave: events sorted by ``ts``, Locations, counts, and the problems met."""

    events: list[OcpiEvent] = field(default_factory=list)
    locations: list[Location] = field(default_factory=list)
    mapping: StationMapping = field(default_factory=StationMapping)
    files: list[str] = field(default_factory=list)
    objects: Counter[str] = field(default_factory=Counter)
    bad: Counter[str] = field(default_factory=Counter)
    bad_examples: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)

    @property
    def bad_total(self) -> int:
        return sum(self.bad.values())


def _decode(raw: bytes, kind: ObjectKind, p: TokenPseudonymiser, where: str) -> tuple[Any, datetime | None]:
    obj = decode_record(raw, kind, p, source=where)
    if kind != "token":
        return obj, None
    try:
        received = _received.decode(raw).received_at
    except (msgspec.DecodeError, msgspec.ValidationError):
        ident = f" (token {obj.uid})" if isinstance(obj, Token) else ""
        raise InputError("received_at is not an RFC 3339 date-time", source=where + ident) from None
    return obj, received


def _read(path: Path, kind: ObjectKind, p: TokenPseudonymiser, load: OcpiLoad) -> list[tuple[Any, Any]]:
    """(object, received_at) of every good record of one file; problems go to ``load``."""
    load.files.append(str(path))
    good: list[tuple[Any, Any]] = []
    try:
        for index, raw, where in iter_located(path):
            try:
                good.append(_decode(raw, kind, p, where))
            except InputError as exc:
                load.bad[kind] += 1
                if len(load.bad_examples) < MAX_EXAMPLES:
                    load.bad_examples.append(str(exc))
                log.warning("ocpi.import.bad_record", file=str(path), record=index, kind=kind)
    except InputError as exc:  # the file as a whole: unreadable, or not JSON at all
        load.unreadable.append(str(exc))
        log.warning("ocpi.import.unreadable", file=str(path), kind=kind)
    load.objects[kind] += len(good)
    return good


def load_ocpi(
    inputs: OcpiInputs,
    pseudonymiser: TokenPseudonymiser,
    *,
    mode: MappingMode = "evse_uid",
    table: Mapping[str, str] | None = None,
) -> OcpiLoad:
    """Read every file of ``inputs`` (Locations first) into one time-ordered list of OCPI events."""
    load = OcpiLoad()
    read: dict[str, list[tuple[Any, Any]]] = {}
    for kind, paths in inputs.by_kind().items():
        for path in paths:
            read.setdefault(kind, []).extend(_read(Path(path), kind, pseudonymiser, load))
    load.locations = [obj for obj, _ in read.get("location", ()) if isinstance(obj, Location)]
    load.mapping = StationMapping.from_locations(load.locations, mode=mode, table=table)
    events: list[OcpiEvent] = []
    for kind in _ORDER:
        for obj, received in read.get(kind, ()):
            if isinstance(obj, Tariff):
                events.append(tariff_event(obj))
            elif isinstance(obj, Token):
                events.append(token_event(obj, received))
            elif isinstance(obj, Session):
                events.append(session_event(obj, load.mapping))
            elif isinstance(obj, Cdr):
                events.append(cdr_event(obj, load.mapping))
    # stable: at equal times tariffs and tokens come before the sessions and CDRs that need them
    events.sort(key=lambda e: e.ts)
    load.events = events
    return load
