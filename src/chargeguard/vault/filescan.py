"""Finding plaintext driver tokens (and secrets) in an operator's own files, reported without revealing them.

What is read: text files line by line (CSV with a header, JSON / JSON Lines, SQL dumps, OCPP logs), the same
inside gzip, and SQLite database files (every text or blob cell of every table, opened read-only). How tokens
are recognised:

* field-aware: in JSON, the values of token fields (``idTag``, ``parentIdTag``, ``idToken``, ``groupIdToken``,
  ``uid``, ``contract_id``, ``visual_number``, ``auth_id``, ...; see ``redact.TOKEN_FIELDS``); in CSV, the
  columns whose header names a token (the same names plus ``rfid``, ``card_uid``, ``token`` ...);
* format-aware: everywhere else, ``redact.find_sensitive`` (RFID UIDs, eMAIDs, OCPI tokens paths,
  ``name=value`` pairs, credentials in URLs and headers) - with the limits documented there.

Values that have the shape of a chargeguard pseudonym are not findings. A finding carries the file, the line
(or ``table.column`` and rowid), the character offset in the line, the field and a masked form: the first two
and last two characters for values of 8 characters or more, only the length for shorter ones.
"""

from __future__ import annotations

import bisect
import csv
import gzip
import io
import re
import sqlite3
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from chargeguard.vault.fields import ID_FIELDS, PSEUDONYM_SHAPE, SECRET_FIELDS, SECRET_KEYS, TOKEN_FIELDS
from chargeguard.vault.redact import find_sensitive

MAX_LINE_CHARS = 4 * 1024 * 1024
_CSV_TOKEN_HEADERS = TOKEN_FIELDS | {
    "rfid",
    "rfid_uid",
    "card",
    "card_id",
    "card_uid",
    "card_number",
    "token",
    "token_id",
    "id_tag_value",
    "tag",
    "tag_id",
}
_SQLITE_MAGIC = b"SQLite format 3\x00"
_GZIP_MAGIC = b"\x1f\x8b"


def mask(value: str) -> str:
    """First two and last two characters of values of 8+ characters, else only the length."""
    n = len(value)
    if n >= 8:
        return f"{value[:2]}{'*' * (n - 4)}{value[-2:]}"
    return f"<{n} chars>"


@dataclass(frozen=True, slots=True)
class Finding:
    """One plaintext token or secret: where it is and how it looks masked - never the value itself."""

    path: str
    location: str  # "line 12" or "table sessions.id_tag rowid 7"
    offset: int
    field: str | None
    kind: str
    masked: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "location": self.location,
            "offset": self.offset,
            "field": self.field,
            "kind": self.kind,
            "masked": self.masked,
        }


def _is_token_value(value: str) -> bool:
    value = value.strip()
    return bool(value) and value.lower() not in ("null", "none") and not PSEUDONYM_SHAPE.match(value)


def _names_secret(value: dict[Any, Any]) -> bool:
    if any(isinstance(value.get(k), str) and value.get(k) in SECRET_KEYS for k in ("key", "name")):
        return True
    variable = value.get("variable")
    return isinstance(variable, dict) and variable.get("name") in SECRET_KEYS


def _walk_json(value: Any, line: str, found: list[tuple[int, str | None, str, str]], depth: int = 0) -> None:
    """Collect (offset, field, kind, value) for token and secret fields; other strings go through find_sensitive."""
    if depth > 64:
        return
    if isinstance(value, dict):
        secret_object = _names_secret(value)
        for key, item in value.items():
            lower = key.lower() if isinstance(key, str) else ""
            if isinstance(item, str) and lower in TOKEN_FIELDS:
                if _is_token_value(item):
                    found.append((_offset(line, item), key, "field", item))
            elif isinstance(item, str | int) and (
                lower in SECRET_FIELDS or (secret_object and lower in ("value", "attributevalue"))
            ):
                text = str(item)
                if text and not text.startswith("[redacted:"):
                    found.append((_offset(line, text), key, "secret", text))
            elif lower in ID_FIELDS:
                continue
            else:
                _walk_json(item, line, found, depth + 1)
    elif isinstance(value, list):
        items = value
        if len(value) >= 3 and isinstance(value[0], int) and 2 <= value[0] <= 6 and isinstance(value[1], str):
            # an OCPP-J frame: the message id and the action/error code are not tokens
            items = value[3:] if value[0] in (2, 4, 5, 6) else value[2:]
        for item in items:
            _walk_json(item, line, found, depth + 1)
    elif isinstance(value, str):
        for hit in find_sensitive(value):
            found.append((_offset(line, value), hit.field, hit.kind, value[hit.start : hit.end]))


def _offset(line: str, value: str) -> int:
    at = line.find(orjson.dumps(value).decode()[1:-1])
    return max(at, 0)


def scan_line(line: str) -> list[tuple[int, str | None, str, str]]:
    """(offset, field, kind, value) of every token or secret in one line of text."""
    stripped = line.strip()
    if stripped[:1] in ("{", "[") and len(stripped) <= MAX_LINE_CHARS:
        try:
            parsed = orjson.loads(stripped)
        except orjson.JSONDecodeError:
            parsed = None
        if parsed is not None:
            found: list[tuple[int, str | None, str, str]] = []
            _walk_json(parsed, line, found)
            return found
    return [(h.start, h.field, h.kind, line[h.start : h.end]) for h in find_sensitive(line[:MAX_LINE_CHARS])]


def _open_text(path: Path) -> io.TextIOBase:
    with path.open("rb") as probe:
        head = probe.read(2)
    raw: Any = gzip.open(path, "rb") if head == _GZIP_MAGIC else path.open("rb")  # noqa: SIM115 - closed by the wrapper
    return io.TextIOWrapper(raw, encoding="utf-8", errors="replace", newline="")


def _scan_csv(path: Path, text: io.TextIOBase, header_line: str) -> Iterator[Finding]:
    header = next(csv.reader([header_line]))
    columns = {i: name for i, name in enumerate(header) if name.strip().lower() in _CSV_TOKEN_HEADERS}
    reader = csv.reader(text)
    for number, row in enumerate(reader, start=2):
        for i, cell in enumerate(row):
            if i in columns and _is_token_value(cell):
                yield Finding(str(path), f"line {number}", 0, columns[i], "column", mask(cell.strip()))
            elif i not in columns:
                column = header[i] if i < len(header) else None
                for offset, field, kind, value in scan_line(cell):
                    yield Finding(str(path), f"line {number}", offset, field or column, kind, mask(value))


def _scan_text(path: Path) -> Iterator[Finding]:
    with _open_text(path) as text:
        try:
            first = text.readline()
        except (OSError, EOFError, zlib.error) as exc:
            yield Finding(str(path), "file", 0, None, "unreadable", type(exc).__name__)
            return
        is_csv = path.name.lower().removesuffix(".gz").endswith(".csv") and "," in first
        try:
            if is_csv:
                yield from _scan_csv(path, text, first.rstrip("\r\n"))
                return
            for number, line in enumerate([first], start=1):
                for offset, field, kind, value in scan_line(line):
                    yield Finding(str(path), f"line {number}", offset, field, kind, mask(value))
            for number, line in enumerate(text, start=2):
                for offset, field, kind, value in scan_line(line):
                    yield Finding(str(path), f"line {number}", offset, field, kind, mask(value))
        except (OSError, EOFError, zlib.error) as exc:  # truncated gzip: report, keep what was found
            yield Finding(str(path), "file", 0, None, "unreadable", type(exc).__name__)


def _scan_sqlite(path: Path) -> Iterator[Finding]:
    live = _LiveValues()
    for finding, value in _scan_sqlite_rows(path):
        live.add(value)
        yield finding
    yield from _scan_sqlite_pages(path, live)


class _LiveValues:
    """Values found in live rows (held in memory for the scan only), to tell page leftovers from live data.

    Cells are stored back to back in a page, so a live value may show up in the page bytes cut short or run
    together with its neighbour; a page hit that is a prefix or suffix of a live value is that live value.
    """

    def __init__(self) -> None:
        self._exact: set[str] = set()
        self._forward: list[str] = []
        self._backward: list[str] = []
        self._sorted = True

    def add(self, value: str) -> None:
        value = value.strip()
        if value and value not in self._exact:
            self._exact.add(value)
            self._forward.append(value)
            self._backward.append(value[::-1])
            self._sorted = False

    def covers(self, value: str) -> bool:
        if value in self._exact:
            return True
        if not self._sorted:
            self._forward.sort()
            self._backward.sort()
            self._sorted = True
        for values, needle in ((self._forward, value), (self._backward, value[::-1])):
            i = bisect.bisect_left(values, needle)
            if i < len(values) and values[i].startswith(needle):
                return True
        return False


_PRINTABLE_RUN = re.compile(rb"[\x20-\x7e]{8,}")
# in page bytes cells run together: a hex run one character longer than an RFID UID may be a UID plus one
# byte of a neighbouring cell, on either side
_PAGE_HEX_RUN = re.compile(r"(?<![0-9A-Fa-f])[0-9A-Fa-f]{8,21}(?![0-9A-Fa-f])")
_UID_LENGTHS = (8, 14, 20)


def _page_hits(text: str, live: _LiveValues) -> Iterator[tuple[int, str | None, str, str]]:
    spans: list[tuple[int, int]] = []
    for hit in find_sensitive(text):
        spans.append((hit.start, hit.end))
        yield hit.start, hit.field, hit.kind, text[hit.start : hit.end]
    for m in _PAGE_HEX_RUN.finditer(text):
        run = m.group(0)
        if any(s < m.end() and m.start() < e for s, e in spans):
            continue
        if len(run) in _UID_LENGTHS:
            candidates = [(m.start(), run)]
        elif len(run) - 1 in _UID_LENGTHS:
            candidates = [(m.start(), run[:-1]), (m.start() + 1, run[1:])]
        else:
            continue
        candidates = [(at, c) for at, c in candidates if re.search(r"[0-9]", c) and re.search(r"[A-Fa-f]", c)]
        if candidates and not any(live.covers(c) for _, c in candidates):
            yield candidates[0][0], None, "rfid", candidates[0][1]


def _scan_sqlite_pages(path: Path, live: _LiveValues) -> Iterator[Finding]:
    """Tokens left in the file's bytes but in no live row: deleted rows, free pages, unvacuumed space."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        yield Finding(str(path), "file", 0, None, "unreadable", exc.strerror or type(exc).__name__)
        return
    for run in _PRINTABLE_RUN.finditer(data):
        text = run.group(0).decode("ascii")
        for offset, field, kind, value in _page_hits(text, live):
            if not live.covers(value):
                live.add(value)
                yield Finding(str(path), "free space", run.start() + offset, field, kind, mask(value))


def _scan_sqlite_rows(path: Path) -> Iterator[tuple[Finding, str]]:
    try:
        con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        yield Finding(str(path), "file", 0, None, "unreadable", type(exc).__name__), ""
        return
    try:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            quoted = '"' + table.replace('"', '""') + '"'
            cursor = con.execute(f"SELECT rowid, * FROM {quoted}")  # noqa: S608 - table names from the file itself
            names = [d[0] for d in cursor.description][1:]
            for row in cursor:
                rowid, cells = row[0], row[1:]
                for name, cell in zip(names, cells, strict=True):
                    if isinstance(cell, bytes):
                        cell = cell.decode("utf-8", errors="replace")
                    if not isinstance(cell, str):
                        continue
                    where = f"table {table}.{name} rowid {rowid}"
                    if name.lower() in _CSV_TOKEN_HEADERS and _is_token_value(cell) and len(cell) <= 64:
                        yield Finding(str(path), where, 0, name, "column", mask(cell.strip())), cell
                        continue
                    for offset, field, kind, value in scan_line(cell):
                        yield Finding(str(path), where, offset, field, kind, mask(value)), value
    except sqlite3.Error as exc:
        yield Finding(str(path), "file", 0, None, "unreadable", type(exc).__name__), ""
    finally:
        con.close()


def _files(paths: Iterable[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file())
        else:
            yield path


def scan_paths(paths: Iterable[Path]) -> Iterator[Finding]:
    """Every finding in the given files and directories (recursively), file by file."""
    for path in _files(paths):
        try:
            with path.open("rb") as probe:
                head = probe.read(16)
        except OSError as exc:
            yield Finding(str(path), "file", 0, None, "unreadable", exc.strerror or type(exc).__name__)
            continue
        if head == _SQLITE_MAGIC:
            yield from _scan_sqlite(path)
        else:
            yield from _scan_text(path)
