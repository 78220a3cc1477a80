"""OCPI files for a scan: Locations, Tariffs, Tokens, Sessions and CDRs -> events in event-time order, with a report.

Every file is read with the importer (JSON array, OCPI envelope, one object, or JSON Lines; tokens pseudonymised
before anything else sees them). A bad record is named by file, line (JSON Lines) and record index, counted, and
the rest go on; a file that cannot be read at all is reported and the other files still go through. Locations are
read first: they give the station mapping (``StationMapping``) and the time zones the other objects need.
Sessions and CDRs - the big files - are indexed by event time and kept as raw JSON until the scan consumes them, one
decoded object at a time.

Token records in files may carry a chargeguard extension field ``received_at`` (RFC 3339): when the CPO received
that version of the token (from its push log). Without it the version counts as received at its ``last_updated``.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeAlias

import msgspec
import structlog

from chargeguard.errors import InputError
from chargeguard.sources.ocpi.events import CdrReceived, SessionReported, TariffKnown, TokenStatus
from chargeguard.sources.ocpi.importer import ObjectKind, TokenPseudonymiser, decode_record, iter_located
from chargeguard.sources.ocpi.models import Cdr, Location, Session, Tariff, Token, utc
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


class _Received(msgspec.Struct):
    received_at: datetime | None = None


class _Times(msgspec.Struct):
    last_updated: datetime
    end_date_time: datetime | None = None


_received = msgspec.json.Decoder(_Received)
_times = msgspec.json.Decoder(_Times)


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


_Pending = tuple[datetime, int, int, ObjectKind, bytes, str, int, str]


@dataclass(slots=True)
class OcpiLoad:
    """What the OCPI files gave: Locations, the event stream (:meth:`events`), counts, and the problems met.

    Counts and bad records of Sessions and CDRs are complete once :meth:`events` has been consumed.
    """

    pseudonymiser: TokenPseudonymiser
    locations: list[Location] = field(default_factory=list)
    mapping: StationMapping = field(default_factory=StationMapping)
    files: list[str] = field(default_factory=list)
    objects: Counter[str] = field(default_factory=Counter)
    bad: Counter[str] = field(default_factory=Counter)
    bad_examples: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)

    _early: list[OcpiEvent] = field(default_factory=list)
    _pending: list[_Pending] = field(default_factory=list)

    @property
    def bad_total(self) -> int:
        return sum(self.bad.values())

    def events(self) -> Iterator[OcpiEvent]:
        """Every event in ``ts`` order, Sessions and CDRs decoded one at a time; can be consumed once."""
        early, self._early = self._early, []
        pending, self._pending = self._pending, []
        return heapq.merge(early, self._decoded(pending), key=lambda e: e.ts)

    def _decoded(self, pending: list[_Pending]) -> Iterator[OcpiEvent]:
        for _, _, _, kind, raw, where, index, path in pending:
            try:
                obj, _ = _decode(raw, kind, self.pseudonymiser, where)
            except InputError as exc:
                _bad(self, kind, Path(path), index, exc)
                continue
            self.objects[kind] += 1
            event = _event(obj, None, self.mapping)
            if event is not None:
                yield event


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


def _bad(load: OcpiLoad, kind: str, path: Path, index: int, exc: InputError) -> None:
    load.bad[kind] += 1
    if len(load.bad_examples) < MAX_EXAMPLES:
        load.bad_examples.append(str(exc))
    log.warning("ocpi.import.bad_record", file=str(path), record=index, kind=kind)


def _records(path: Path, kind: ObjectKind, load: OcpiLoad) -> Iterator[tuple[int, bytes, str]]:
    load.files.append(str(path))
    try:
        yield from iter_located(path)
    except InputError as exc:  # the file as a whole: unreadable, or not JSON at all
        load.unreadable.append(str(exc))
        log.warning("ocpi.import.unreadable", file=str(path), kind=kind)


def _event(obj: Any, received: datetime | None, mapping: StationMapping) -> OcpiEvent | None:
    if isinstance(obj, Tariff):
        return tariff_event(obj)
    if isinstance(obj, Token):
        return token_event(obj, received)
    if isinstance(obj, Session):
        return session_event(obj, mapping)
    if isinstance(obj, Cdr):
        return cdr_event(obj, mapping)
    return None


def _peek_ts(raw: bytes, kind: ObjectKind) -> datetime | None:
    """The event time of a session or CDR record without decoding it (None when it cannot be read)."""
    try:
        times = _times.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    ts = utc(times.last_updated)
    if kind == "cdr" and times.end_date_time is not None:
        ts = max(ts, utc(times.end_date_time))
    return ts


def load_ocpi(
    inputs: OcpiInputs,
    pseudonymiser: TokenPseudonymiser,
    *,
    mode: MappingMode = "evse_uid",
    table: Mapping[str, str] | None = None,
) -> OcpiLoad:
    """Read the Locations, Tariffs and Tokens of ``inputs``, and index its Sessions and CDRs by event time.

    Sessions and CDRs stay raw JSON (a fraction of their decoded size) until :meth:`OcpiLoad.events` decodes them
    one at a time in event-time order.
    """
    load = OcpiLoad(pseudonymiser=pseudonymiser)
    by_kind = inputs.by_kind()
    decoded: list[tuple[Any, datetime | None]] = []
    small: tuple[ObjectKind, ...] = ("location", "tariff", "token")
    for kind in small:
        for path in by_kind[kind]:
            for index, raw, where in _records(Path(path), kind, load):
                try:
                    decoded.append(_decode(raw, kind, pseudonymiser, where))
                    load.objects[kind] += 1
                except InputError as exc:
                    _bad(load, kind, Path(path), index, exc)
    load.locations = [obj for obj, _ in decoded if isinstance(obj, Location)]
    load.mapping = StationMapping.from_locations(load.locations, mode=mode, table=table)
    early = [e for e in (_event(obj, received, load.mapping) for obj, received in decoded) if e is not None]
    big: tuple[ObjectKind, ...] = ("session", "cdr")
    for rank, kind in enumerate(big):
        for path in by_kind[kind]:
            for index, raw, where in _records(Path(path), kind, load):
                ts = _peek_ts(raw, kind)
                if ts is not None:
                    load._pending.append((ts, rank, len(load._pending), kind, raw, where, index, str(path)))
                    continue
                try:  # no readable time: decoding it says what is wrong
                    obj, _ = _decode(raw, kind, pseudonymiser, where)
                except InputError as exc:
                    _bad(load, kind, Path(path), index, exc)
                    continue
                load.objects[kind] += 1
                event = _event(obj, None, load.mapping)
                if event is not None:
                    early.append(event)
    # stable: at equal times tariffs and tokens come before the sessions and CDRs that need them
    early.sort(key=lambda e: e.ts)
    load._early = early
    load._pending.sort(key=lambda p: p[:3])
    return load
