"""Import OCPI objects from files (JSON array, OCPI response envelope, or JSON Lines) for offline analysis.

Each record is decoded into its 2.2.1 model on its own: a bad record becomes an ``InputError`` naming the file,
the line (JSON Lines, 1-based), the record index (0-based) and the object's id when readable, is counted, and the
rest are imported. Token uids,
contract ids and visual numbers are replaced by pseudonyms here, before the object leaves this module; an error
about a Token names it by its pseudonym, never by its uid.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Literal, Protocol, TypeVar

import msgspec
import structlog

from chargeguard.errors import InputError
from chargeguard.sources.ocpi.models import Cdr, CdrToken, Location, Session, Tariff, Token, check_nonempty

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
    ``file record i``."""
    try:
        data = path.read_bytes()
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
    index = 0
    for number, line in enumerate(data.splitlines(), start=1):
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
    if empty is not None:
        ident = _readable_id(raw, kind, pseudonymiser)
        where = f"{source}" + (f" ({kind} {ident})" if ident else "")
        raise InputError(f"invalid OCPI {kind}: {empty} must not be empty", source=where)
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
