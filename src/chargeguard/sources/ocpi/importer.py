"""Import OCPI objects from files (JSON array, OCPI response envelope, or JSON Lines) for offline analysis.

Each record is decoded into its 2.2.1 model on its own: a bad record becomes an ``InputError`` naming the file,
the line (JSON Lines, 1-based), the record index (0-based) and the object's id when readable, is counted, and the
rest are imported. Token uids,
contract ids and visual numbers are replaced by pseudonyms here, before the object leaves this module; an error
about a Token names it by its pseudonym, never by its uid.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Generic, Literal, Protocol, TypeVar

import msgspec
import structlog

from chargeguard.errors import InputError
from chargeguard.sources.ocpi.models import (
    Cdr,
    CdrToken,
    Location,
    Session,
    Tariff,
    Token,
    check_consistent,
    check_nonempty,
)

log = structlog.get_logger("chargeguard.sources.ocpi")

ObjectKind = Literal["cdr", "session", "tariff", "location", "token"]
MODELS: dict[str, type[Any]] = {
    "cdr": Cdr,
    "session": Session,
    "tariff": Tariff,
    "location": Location,
    "token": Token,
}
T = TypeVar("T")

_raw_list = msgspec.json.Decoder(list[msgspec.Raw])
_envelope = msgspec.json.Decoder(dict[str, msgspec.Raw])
_peek = msgspec.json.Decoder(dict[str, Any])


class TokenPseudonymiser(Protocol):
    """What the importer needs: ``chargeguard.vault.pseudonyms.Pseudonymiser`` or a sealing ``TokenVault``."""

    def pseudonymise(self, raw: str) -> str: ...


@dataclass(slots=True)
class ImportResult(Generic[T]):
    objects: list[T] = field(default_factory=list)
    errors: list[InputError] = field(default_factory=list)

    @property
    def bad(self) -> int:
        return len(self.errors)


def iter_records(path: Path) -> Iterator[tuple[int, bytes]]:
    """(index, raw JSON) of every record: a JSON array, an OCPI envelope ``{"data": [...]}``, or JSON Lines."""
    for index, raw, _ in iter_located(path):
        yield index, raw


def iter_located(path: Path) -> Iterator[tuple[int, bytes, str]]:
    """(index, raw JSON, where) of every record; ``where`` is ``file:line record i`` for JSON Lines, else
    ``file record i``. JSON Lines are streamed line by line (memory stays flat however big the file); arrays and
    envelopes are read whole."""
    try:
        with path.open("rb") as stream:
            consumed, nonblank = _head_lines(stream)
            if len(nonblank) == 2 and nonblank[0].startswith(b"{") and nonblank[0].endswith(b"}"):
                yield from _lines(path, itertools.chain(consumed, stream))
                return
            data = b"".join(consumed) + stream.read()
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", source=str(path)) from exc
    head = data.lstrip()[:1]
    if head in (b"[", b"{") and not _is_jsonl(data):
        try:
            if head == b"{":
                body = _envelope.decode(data).get("data")
                if body is None:  # one object on its own
                    yield 0, data, f"{path} record 0"
                    return
                data = bytes(body)
            items = _raw_list.decode(data)
        except msgspec.DecodeError as exc:
            raise InputError(f"not a JSON array of OCPI objects: {exc}", source=str(path)) from exc
        for i, item in enumerate(items):
            yield i, bytes(item), f"{path} record {i}"
        return
    yield from _lines(path, data.splitlines())


def _head_lines(stream: IO[bytes]) -> tuple[list[bytes], list[bytes]]:
    """The lines read up to and including the second non-blank one, and those non-blank lines (stripped)."""
    consumed: list[bytes] = []
    nonblank: list[bytes] = []
    while len(nonblank) < 2:
        line = stream.readline()
        if not line:
            break
        consumed.append(line)
        if line.strip():
            nonblank.append(line.strip())
    return consumed, nonblank


def _lines(path: Path, lines: Iterable[bytes]) -> Iterator[tuple[int, bytes, str]]:
    index = 0
    for number, line in enumerate(lines, start=1):
        line = line.rstrip(b"\r\n")
        if line.strip():
            yield index, line, f"{path}:{number} record {index}"
            index += 1


def _is_jsonl(data: bytes) -> bool:
    first, _, rest = data.strip().partition(b"\n")
    return bool(rest.strip()) and first.rstrip().endswith(b"}") and first.lstrip().startswith(b"{")


def _readable_id(raw: bytes, kind: str, pseudonymiser: TokenPseudonymiser) -> str | None:
    try:
        obj = _peek.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    value = obj.get("uid") if kind == "token" else obj.get("id")
    if not isinstance(value, str | int) or isinstance(value, bool):
        return None
    text = str(value)[:64]
    return pseudonymiser.pseudonymise(text) if kind == "token" else text


def _pseudonymise_cdr_token(token: CdrToken, p: TokenPseudonymiser) -> CdrToken:
    return msgspec.structs.replace(
        token, uid=p.pseudonymise(token.uid), contract_id=p.pseudonymise(token.contract_id)
    )


def pseudonymise(obj: T, p: TokenPseudonymiser) -> T:
    """Replace every driver token a record carries by its pseudonym (idempotent: pseudonyms pass through)."""
    if isinstance(obj, Cdr | Session):
        return msgspec.structs.replace(obj, cdr_token=_pseudonymise_cdr_token(obj.cdr_token, p))
    if isinstance(obj, Token):
        visual = p.pseudonymise(obj.visual_number) if obj.visual_number else None
        return msgspec.structs.replace(
            obj,
            uid=p.pseudonymise(obj.uid),
            contract_id=p.pseudonymise(obj.contract_id),
            visual_number=visual,
        )
    return obj


def decode_record(raw: bytes, kind: ObjectKind, pseudonymiser: TokenPseudonymiser, *, source: str) -> Any:
    """One record -> its pseudonymised model, or ``InputError`` (source, index and id; never token content)."""
    model = MODELS[kind]
    try:
        obj = msgspec.json.decode(raw, type=model)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        ident = _readable_id(raw, kind, pseudonymiser)
        where = f"{source}" + (f" ({kind} {ident})" if ident else "")
        raise InputError(f"invalid OCPI {kind}: {_safe(exc)}", source=where) from None
    empty = check_nonempty(obj)
    problem = f"{empty} must not be empty" if empty is not None else check_consistent(obj)
    if problem is not None:
        ident = _readable_id(raw, kind, pseudonymiser)
        where = f"{source}" + (f" ({kind} {ident})" if ident else "")
        raise InputError(f"invalid OCPI {kind}: {problem}", source=where)
    return pseudonymise(obj, pseudonymiser)


def _safe(exc: Exception) -> str:
    """msgspec messages name the expected type and the JSON path, not the value; keep the first line only."""
    return str(exc).splitlines()[0][:200]


def import_file(path: Path, kind: ObjectKind, pseudonymiser: TokenPseudonymiser) -> ImportResult[Any]:
    """Every good record of ``path`` as a pseudonymised model; bad records as errors (counted, logged by index)."""
    result: ImportResult[Any] = ImportResult()
    for index, raw, where in iter_located(path):
        try:
            result.objects.append(decode_record(raw, kind, pseudonymiser, source=where))
        except InputError as exc:
            result.errors.append(exc)
            log.warning("ocpi.import.bad_record", file=str(path), record=index, kind=kind)
    return result
