"""OCPP capture files (JSON Lines, plain or gzip, file or stdin) -> typed capture records.

Reading never crashes on bad input and never loses what was already read: each unusable line becomes a
``BadLine`` (file:line and a reason, never the line's content), oversize lines are skipped in bounded memory, a
truncated gzip stream ends the file with one ``BadLine`` for the truncation. See docs/formats.md for the format.
"""

from __future__ import annotations

import gzip
import io
import sys
import zlib
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import IO, Annotated, Any, Literal

import msgspec
import orjson

from chargeguard.errors import CaptureError
from chargeguard.events import Direction
from chargeguard.sources.timeparse import ZonedDateTime, as_utc, parse_rfc3339

KNOWN_OCPP = frozenset({"1.6", "2.0.1", "2.1"})
CONNECTION_EVENTS = frozenset({"connect", "disconnect", "auth_failed", "action"})
MAX_STATION_ID = 48
DEFAULT_MAX_LINE_BYTES = 4 * 1024 * 1024
_CHUNK = 1 << 20


class FrameRecord(msgspec.Struct, frozen=True, gc=False):
    """One OCPP-J frame line; ``frame`` is the decoded JSON array (not yet checked); ``t`` is ``ts`` in epoch seconds.

    ``gc=False``: records hold decoded JSON (acyclic) and are never part of a reference cycle, so the cyclic
    garbage collector need not track the million a scan makes.
    """

    ts: datetime
    t: float
    station: str
    ocpp: str
    direction: Direction
    frame: Any
    size: int
    source: str


class ConnectionRecord(msgspec.Struct, frozen=True, gc=False):
    """A connection line; ``t`` is ``ts`` in epoch seconds."""

    ts: datetime
    t: float
    station: str
    event: str
    remote: str | None
    security_profile: int | None
    detail: dict[str, Any] = msgspec.field(default_factory=dict)
    source: str = ""


class BadLine(msgspec.Struct, frozen=True, gc=False):
    """A line that could not be used. ``station``/``ts`` are set when they could be read (ocpp.malformed evidence)."""

    source: str
    reason: str
    message: str
    station: str | None = None
    ts: datetime | None = None
    ocpp: str | None = None
    direction: Direction | None = None
    size: int = 0


CaptureItem = FrameRecord | ConnectionRecord | BadLine
_MISSING = object()
_DIRECTIONS = {"station": Direction.STATION, "csms": Direction.CSMS}


class _FrameLine(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """A well-formed frame line, decoded and checked by msgspec in one pass (the scan's common case).

    Any line this type refuses - a connection line, a wrong or missing field, an extra field, anything that is not
    JSON - is read again by the general path (``orjson`` and ``record_from_obj``), which names the problem, so
    both paths give the same record for every line. The frame itself stays raw here and is decoded by ``orjson``,
    as the gateway decodes frames (the two JSON decoders differ on integers beyond 64 bits).
    """

    ts: ZonedDateTime
    station: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_STATION_ID)]
    ocpp: Literal["1.6", "2.0.1", "2.1"]
    from_: Literal["station", "csms"] = msgspec.field(name="from")
    frame: msgspec.Raw


_decode_frame_line = msgspec.json.Decoder(_FrameLine).decode


def _open_binary(path: str) -> tuple[IO[bytes], IO[bytes]]:
    """(reader, underlying file): gzip is detected by its magic bytes; close both when done."""
    if path == "-":
        raw: IO[bytes] = sys.stdin.buffer
    else:
        try:
            raw = Path(path).open("rb")  # noqa: SIM115 - closed by the reader
        except FileNotFoundError as exc:
            raise CaptureError(f"capture {path} does not exist") from exc
        except IsADirectoryError as exc:
            raise CaptureError(f"capture {path} is a directory") from exc
        except OSError as exc:
            raise CaptureError(f"capture {path} cannot be opened: {exc.strerror}") from exc
    buffered: io.BufferedReader = (
        raw if isinstance(raw, io.BufferedReader) else io.BufferedReader(raw)  # type: ignore[arg-type]
    )
    magic = buffered.peek(2)[:2]
    if magic == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=buffered, mode="rb"), buffered  # type: ignore[return-value]
    return buffered, buffered


def _skip_rest(handle: IO[bytes]) -> None:
    """Consume the rest of an oversize line without holding it."""
    while True:
        rest = handle.readline(_CHUNK)
        if not rest or rest.endswith(b"\n"):
            return


def read_capture(path: str, *, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> Iterator[CaptureItem]:
    """Yield the records of one capture file (``-`` for stdin) in file order; blank lines are skipped."""
    handle, underlying = _open_binary(path)
    name = "<stdin>" if path == "-" else path
    readline = handle.readline
    limit = max_line_bytes + 1
    loads = orjson.loads
    decode_fast = _decode_frame_line
    directions = _DIRECTIONS
    number = 0
    try:
        while True:
            number += 1
            try:
                line = readline(limit)
                if len(line) > max_line_bytes and not line.endswith(b"\n"):
                    _skip_rest(handle)
                    yield BadLine(f"{name}:{number}", "oversize", f"line longer than {max_line_bytes} bytes")
                    continue
            except (EOFError, zlib.error, gzip.BadGzipFile, OSError) as exc:
                problem = f"file ends in a broken compressed stream ({type(exc).__name__})"
                yield BadLine(f"{name}:{number}", "truncated", problem)
                return
            if not line:
                return
            record: FrameRecord | None
            # the common case: a well-formed frame line, checked while it is decoded; anything else goes through
            # the general path below, which says what the line is or why it is unusable
            try:
                fast = decode_fast(line)
                ts = as_utc(fast.ts)
                record = FrameRecord(
                    ts,
                    ts.timestamp(),
                    fast.station,
                    fast.ocpp,
                    directions[fast.from_],
                    loads(memoryview(fast.frame)),
                    len(line),
                    f"{name}:{number}",
                )
            except (msgspec.DecodeError, msgspec.ValidationError, orjson.JSONDecodeError):
                record = None
            if record is not None:
                yield record
                continue
            try:
                obj = loads(line)
            except orjson.JSONDecodeError as exc:
                if not line.strip():
                    continue
                yield _undecodable(exc, f"{name}:{number}")
                continue
            yield record_from_obj(obj, f"{name}:{number}", len(line))
    finally:
        if path != "-":
            handle.close()
            underlying.close()


def _undecodable(exc: orjson.JSONDecodeError, source: str) -> BadLine:
    if "utf-8" in str(exc).lower():
        return BadLine(source, "bad_encoding", "not valid UTF-8")
    return BadLine(source, "not_json", "not a JSON object")


def parse_line(line: bytes, source: str) -> CaptureItem:
    """Decode one capture line into a record, or a BadLine saying why not."""
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        return _undecodable(exc, source)
    return record_from_obj(obj, source, len(line))


def parse_ts(value: object) -> tuple[datetime, float] | None:
    """``parse_rfc3339`` plus the epoch seconds of the result (``datetime.timestamp()``)."""
    ts = parse_rfc3339(value)
    if ts is None:
        return None
    return ts, ts.timestamp()


def record_from_obj(obj: Any, source: str, size: int = 0) -> CaptureItem:
    """A capture record from an already decoded line (the gateway hands lines over as dicts)."""
    if type(obj) is not dict:
        return BadLine(source, "bad_shape", "line is JSON but not an object")
    station = obj.get("station")
    if type(station) is not str or not 0 < len(station) <= MAX_STATION_ID:
        return BadLine(source, "bad_station", "station missing, not a string or longer than 48 characters")
    parsed = parse_ts(obj.get("ts"))
    if parsed is None:
        return BadLine(source, "bad_ts", "ts missing or not an RFC 3339 timestamp with zone", station=station)
    ts, t = parsed
    frame = obj.get("frame", _MISSING)
    if frame is not _MISSING:
        ocpp = obj.get("ocpp")
        if ocpp not in KNOWN_OCPP:
            return BadLine(source, "bad_ocpp", "ocpp must be 1.6, 2.0.1 or 2.1", station=station, ts=ts)
        direction = _DIRECTIONS.get(obj.get("from"))  # type: ignore[arg-type]
        if direction is None:
            return BadLine(
                source, "bad_from", 'from must be "station" or "csms"', station=station, ts=ts, ocpp=ocpp
            )
        return FrameRecord(ts, t, station, ocpp, direction, frame, size, source)
    event = obj.get("event")
    if event in CONNECTION_EVENTS:
        remote = obj.get("remote")
        profile = obj.get("security_profile")
        detail = obj.get("detail")
        if remote is not None and not isinstance(remote, str):
            return BadLine(source, "bad_shape", "remote must be a string", station=station, ts=ts)
        if profile is not None and (isinstance(profile, bool) or profile not in (0, 1, 2, 3)):
            return BadLine(source, "bad_shape", "security_profile must be 0..3", station=station, ts=ts)
        if detail is not None and not isinstance(detail, dict):
            return BadLine(source, "bad_shape", "detail must be an object", station=station, ts=ts)
        return ConnectionRecord(ts, t, station, event, remote, profile, detail or {}, source)
    return BadLine(source, "bad_shape", "neither a frame line nor a connection line", station=station, ts=ts)
