"""Rewriting an OCPP capture or a CSV export with pseudonyms, so it can be shared with a vendor or researcher.

Captures (the JSON Lines format of the foundation issue): in frame lines the OCPP payload (CALL and
CALLRESULT payloads, CALLERROR description and details) goes through ``redact.redact_value`` with the
pseudonymiser - token fields become pseudonyms (so sessions of one card still link), secret fields and
secret configuration values become markers, other strings lose token-like substrings - while ``ts``,
``station``, ``ocpp``, ``from``, the message type, the message id and the action are kept as they are.
Connection lines keep their fields; ``detail`` is redacted the same way and ``remote`` is kept. A line that
is not JSON is written through ``redact_text`` and counted.

CSV: the named columns are pseudonymised; every other cell goes through ``redact_text``.

Input and output may be gzip (by magic number on input, by a ``.gz`` suffix on output). Output files are
created with mode 0600 and never overwrite an existing file.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, cast

import orjson

from chargeguard.errors import InputError
from chargeguard.vault.redact import redact_text, redact_value

_GZIP_MAGIC = b"\x1f\x8b"


@dataclass
class ShareReport:
    """Counts of what a rewrite did (no values)."""

    lines: int = 0
    frames: int = 0
    connection_lines: int = 0
    not_json: int = 0
    values_pseudonymised: int = 0


@contextmanager
def _open_in(path: Path) -> Iterator[BinaryIO]:
    try:
        with path.open("rb") as probe:
            head = probe.read(2)
        raw = path.open("rb")
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from exc
    with raw:
        if head == _GZIP_MAGIC:
            with gzip.GzipFile(fileobj=raw, mode="rb") as unzipped:
                yield cast(BinaryIO, unzipped)
        else:
            yield raw


@contextmanager
def _open_out(path: Path) -> Iterator[BinaryIO]:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise InputError(f"{path} already exists; refusing to overwrite it") from exc
    except OSError as exc:
        raise InputError(f"cannot create {path}: {exc.strerror}") from exc
    with os.fdopen(fd, "wb") as raw:
        if path.name.endswith(".gz"):
            with gzip.GzipFile(fileobj=raw, mode="wb", filename="", mtime=0) as zipped:
                yield cast(BinaryIO, zipped)
        else:
            yield raw


class _Counting:
    def __init__(self, pseudonymise: Callable[[str], str]) -> None:
        self._p = pseudonymise
        self.count = 0

    def __call__(self, raw: str) -> str:
        self.count += 1
        return self._p(raw)


def _frame(frame: list[Any], pseudonymise: _Counting) -> list[Any]:
    if not frame or not isinstance(frame[0], int):
        return redact_value(frame, pseudonymise=pseudonymise)  # type: ignore[no-any-return]
    kind = frame[0]
    out = list(frame)
    if kind in (2, 6) and len(out) >= 4:  # CALL / SEND: [t, id, action, payload]
        out[3] = redact_value(out[3], pseudonymise=pseudonymise)
    elif kind == 3 and len(out) >= 3:  # CALLRESULT: [3, id, payload]
        out[2] = redact_value(out[2], pseudonymise=pseudonymise)
    elif kind in (4, 5):  # CALLERROR / CALLRESULTERROR: [t, id, code, description, details]
        out[3:] = [redact_value(v, pseudonymise=pseudonymise) for v in out[3:]]
    else:
        out[2:] = [redact_value(v, pseudonymise=pseudonymise) for v in out[2:]]
    if len(out) > 1 and not isinstance(out[1], str):
        out[1] = redact_value(out[1])
    return out


def _line(record: Any, pseudonymise: _Counting, report: ShareReport) -> Any:
    if not isinstance(record, dict):
        return redact_value(record, pseudonymise=pseudonymise)
    out: dict[str, Any] = {}
    for key, value in record.items():
        if key == "frame" and isinstance(value, list):
            out[key] = _frame(value, pseudonymise)
            report.frames += 1
        elif key in ("ts", "station", "ocpp", "from", "event", "remote", "security_profile"):
            out[key] = value
        else:
            out[key] = redact_value({key: value}, pseudonymise=pseudonymise)[key]
    if "event" in record and "frame" not in record:
        report.connection_lines += 1
    return out


def pseudonymise_capture(src: Path, dst: Path, pseudonymise: Callable[[str], str]) -> ShareReport:
    """Rewrite a capture (JSON Lines) with pseudonyms and redactions; see the module docstring."""
    report = ShareReport()
    counting = _Counting(pseudonymise)
    with _open_in(src) as inp, _open_out(dst) as out:
        try:
            for raw in inp:
                report.lines += 1
                stripped = raw.strip()
                if not stripped:
                    out.write(b"\n")
                    continue
                try:
                    record = orjson.loads(stripped)
                except orjson.JSONDecodeError:
                    report.not_json += 1
                    text = redact_text(stripped.decode("utf-8", errors="replace"))
                    out.write(text.encode("utf-8") + b"\n")
                    continue
                out.write(orjson.dumps(_line(record, counting, report)) + b"\n")
        except (OSError, EOFError) as exc:  # truncated gzip: what was read is written, then report it
            raise InputError(f"{src} is truncated or unreadable after line {report.lines}") from exc
    report.values_pseudonymised = counting.count
    return report


def pseudonymise_csv(
    src: Path, dst: Path, pseudonymise: Callable[[str], str], columns: Sequence[str]
) -> ShareReport:
    """Rewrite a CSV export: the named columns become pseudonyms, other cells are redacted."""
    if not columns:
        raise InputError("name at least one column to pseudonymise (--column NAME)")
    report = ShareReport()
    with (
        _open_in(src) as raw_in,
        _open_out(dst) as raw_out,
        io.TextIOWrapper(raw_in, encoding="utf-8-sig", newline="") as text_in,
        io.TextIOWrapper(raw_out, encoding="utf-8", newline="") as text_out,
    ):
        reader = csv.reader(text_in)
        writer = csv.writer(text_out)
        try:
            header = next(reader)
        except StopIteration:
            raise InputError(f"{src} is empty") from None
        wanted = {c.strip().lower() for c in columns}
        index = {i for i, name in enumerate(header) if name.strip().lower() in wanted}
        missing = wanted - {header[i].strip().lower() for i in index}
        if missing:
            raise InputError(f"{src} has no column(s) {sorted(missing)}; it has {header}")
        writer.writerow(header)
        for row in reader:
            report.lines += 1
            new_row: list[str] = []
            for i, cell in enumerate(row):
                if i in index and cell.strip():
                    new_row.append(pseudonymise(cell))
                    report.values_pseudonymised += 1
                else:
                    new_row.append(redact_text(cell))
            writer.writerow(new_row)
    return report
