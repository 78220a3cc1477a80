"""Reading ground-truth incidents and alerts (JSON Lines) into typed records, collecting bad lines as errors.

Truth line (issue 3): ``{"kind", "stations", "transactions", "start", "end", "detectable_at", "note"}`` plus
optional ``"also_acceptable": [kinds]`` and ``"subtle": true``. Alert line: the public alert format of
docs/formats.md (``id``, ``kind``, ``ts``, ``station``, ``stations``, ``transactions``, optional ``last_ts``).

A bad line (not JSON, not an object, unknown kind, missing or mistyped field, a time without a zone) becomes
an :class:`~chargeguard.errors.InputError` naming ``file:line``; it is counted and the rest still counts.
Nothing from a line's content is echoed into messages (lines may carry tokens).
"""

from __future__ import annotations

import gzip
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Generic, TypeVar

import orjson

from chargeguard.errors import CaptureError, InputError
from chargeguard.eval.kinds import known_kinds

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Incident:
    """One labelled incident of the ground truth."""

    kind: str
    stations: frozenset[str]
    transactions: frozenset[str]
    start: datetime
    end: datetime
    detectable_at: datetime
    note: str = ""
    also_acceptable: frozenset[str] = frozenset()
    subtle: bool = False
    line: int = 0

    def accepts(self, kind: str) -> bool:
        return kind == self.kind or kind in self.also_acceptable


@dataclass(frozen=True, slots=True)
class AlertRecord:
    """The fields of an alert line that matching needs."""

    id: str
    kind: str
    ts: datetime
    stations: frozenset[str]
    transactions: frozenset[str]
    station: str | None = None
    last_ts: datetime | None = None
    line: int = 0


@dataclass(slots=True)
class Loaded(Generic[T]):
    """Records read from one file plus the bad lines (as errors naming file:line) and their count."""

    records: list[T] = field(default_factory=list)
    errors: list[InputError] = field(default_factory=list)

    @property
    def bad_lines(self) -> int:
        return len(self.errors)


def parse_time(value: object, *, name: str) -> datetime:
    """An RFC 3339 time with a zone (``Z`` or an offset); naive or malformed times are refused."""
    if not isinstance(value, str):
        raise ValueError(f"field {name} must be an RFC 3339 string")
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"field {name} is not an RFC 3339 time") from exc
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise ValueError(f"field {name} has no time zone (write Z or an offset)")
    return parsed


def _strings(value: object, *, name: str) -> frozenset[str]:
    if value is None:
        return frozenset()
    if not isinstance(value, list):
        raise ValueError(f"field {name} must be a list")
    out: set[str] = set()
    for item in value:
        if isinstance(item, bool) or not isinstance(item, str | int):
            raise ValueError(f"field {name} must list strings")
        out.add(str(item))
    return frozenset(out)


def _kind(value: object, *, name: str, kinds: frozenset[str]) -> str:
    if not isinstance(value, str):
        raise ValueError(f"field {name} must be a string")
    if value not in kinds:
        # the kind name is a short identifier, not a token, so naming it helps the reader
        raise ValueError(f"unknown kind {value[:60]!r} in field {name}")
    return value


def incident_from(obj: dict[str, Any], *, kinds: frozenset[str], line: int = 0) -> Incident:
    kind = _kind(obj.get("kind"), name="kind", kinds=kinds)
    also = obj.get("also_acceptable") or []
    if not isinstance(also, list):
        raise ValueError("field also_acceptable must be a list")
    also_kinds = frozenset(_kind(k, name="also_acceptable", kinds=kinds) for k in also)
    start = parse_time(obj.get("start"), name="start")
    end = parse_time(obj["end"], name="end") if obj.get("end") is not None else start
    if end < start:
        raise ValueError("field end is before start")
    detectable = (
        parse_time(obj["detectable_at"], name="detectable_at")
        if obj.get("detectable_at") is not None
        else start
    )
    subtle = obj.get("subtle", False)
    if not isinstance(subtle, bool):
        raise ValueError("field subtle must be true or false")
    note = obj.get("note") or ""
    return Incident(
        kind=kind,
        stations=_strings(obj.get("stations"), name="stations"),
        transactions=_strings(obj.get("transactions"), name="transactions"),
        start=start,
        end=end,
        detectable_at=detectable,
        note=note if isinstance(note, str) else "",
        also_acceptable=also_kinds,
        subtle=subtle,
        line=line,
    )


def alert_from(obj: dict[str, Any], *, kinds: frozenset[str], line: int = 0) -> AlertRecord:
    kind = _kind(obj.get("kind"), name="kind", kinds=kinds)
    ts = parse_time(obj.get("ts"), name="ts")
    last = parse_time(obj["last_ts"], name="last_ts") if obj.get("last_ts") is not None else None
    station = obj.get("station")
    if station is not None and not isinstance(station, str):
        raise ValueError("field station must be a string or null")
    stations = set(_strings(obj.get("stations"), name="stations"))
    if station:
        stations.add(station)
    ident = obj.get("id")
    return AlertRecord(
        id=str(ident) if isinstance(ident, str | int) else f"line-{line}",
        kind=kind,
        ts=ts,
        stations=frozenset(stations),
        transactions=_strings(obj.get("transactions"), name="transactions"),
        station=station,
        last_ts=last,
        line=line,
    )


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            yield from enumerate(handle, start=1)
    except FileNotFoundError as exc:
        raise CaptureError(f"{path} does not exist") from exc
    except (OSError, EOFError) as exc:
        raise CaptureError(f"{path} cannot be read completely: {exc.__class__.__name__}") from exc


def _load(path: Path, build: Callable[..., T], kinds: frozenset[str] | None) -> Loaded[T]:
    known = kinds if kinds is not None else known_kinds()
    loaded: Loaded[T] = Loaded()
    for number, raw in _lines(path):
        if not raw.strip():
            continue
        where = f"{path}:{number}"
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            loaded.errors.append(InputError("not JSON", source=where))
            continue
        if not isinstance(obj, dict):
            loaded.errors.append(InputError("not a JSON object", source=where))
            continue
        try:
            loaded.records.append(build(obj, kinds=known, line=number))
        except (ValueError, KeyError, TypeError) as exc:
            loaded.errors.append(InputError(str(exc), source=where))
    return loaded


def load_truth(path: Path, *, kinds: frozenset[str] | None = None) -> Loaded[Incident]:
    """Read a ground-truth JSON Lines file (plain or .gz)."""
    return _load(path, incident_from, kinds)


def load_alerts(path: Path, *, kinds: frozenset[str] | None = None) -> Loaded[AlertRecord]:
    """Read an alerts JSON Lines file (plain or .gz)."""
    return _load(path, alert_from, kinds)
