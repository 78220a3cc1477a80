"""Where the store keeps pseudonyms, and how they are listed and replaced for key rotation.

Pseudonyms live in columns (``alerts.token_ref``, ``transactions.token_ref`` / ``stop_token_ref``, token
``allow_entries.value``) and inside alert evidence (JSON written by detectors, e.g. the tokens a station
tried). Columns are listed and rewritten in SQL; evidence is searched as JSON text for the pseudonym pattern and
rewritten in Python. Implements what ``chargeguard.vault.rotation.PseudonymRekeyStore`` asks for.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson
from sqlalchemy import (
    ColumnElement,
    Connection,
    Text,
    bindparam,
    cast,
    func,
    literal_column,
    or_,
    select,
    union,
    update,
)

from chargeguard.store import schema

# a whole pseudonym: "tok<v>_" plus body and check characters, 20 characters in all
PSEUDONYM_IN_TEXT = re.compile(r"\btok(?:[1-9]_[a-z2-7]{15}|[1-9][0-9]_[a-z2-7]{14})\b", re.IGNORECASE)
_CHUNK = 500


def _version_of(pseudonym: str) -> int:
    return int(pseudonym[3 : pseudonym.index("_")])


def _prefix_like(version: int) -> str:
    return f"tok{version}\\_%"


def _column_values() -> Any:
    """Every pseudonym-holding column as one ``value`` column (UNION removes duplicates)."""
    a, t, e = schema.alerts, schema.transactions, schema.allow_entries
    return union(
        select(a.c.token_ref.label("value")).where(a.c.token_ref.is_not(None)),
        select(t.c.token_ref.label("value")).where(t.c.token_ref.is_not(None)),
        select(t.c.stop_token_ref.label("value")).where(t.c.stop_token_ref.is_not(None)),
        select(e.c.value.label("value")).where(e.c.subject == "token"),
    ).subquery("refs")


def evidence_rows(conn: Connection, versions: Iterable[int] | None = None) -> list[tuple[str, str]]:
    """(alert id, evidence as JSON text) of alerts whose evidence mentions a pseudonym of ``versions``."""
    a = schema.alerts
    text = cast(a.c.evidence, Text)
    condition: ColumnElement[bool]
    if versions is None:
        condition = text.like("%tok%")
    else:
        condition = or_(*(text.like("%" + _prefix_like(v), escape="\\") for v in sorted(set(versions))))
    return [(row[0], row[1]) for row in conn.execute(select(a.c.id, text).where(condition))]


def evidence_pseudonyms(conn: Connection) -> set[str]:
    found: set[str] = set()
    for _id, text in evidence_rows(conn):
        found.update(m.lower() for m in PSEUDONYM_IN_TEXT.findall(text))
    return found


def pseudonym_versions(conn: Connection, evidence: set[str]) -> dict[int, int]:
    """Key version -> number of distinct pseudonyms stored under it (columns and evidence)."""
    refs = _column_values()
    distinct: set[str] = {v.lower() for (v,) in conn.execute(select(refs.c.value)) if v}
    distinct |= evidence
    counts: dict[int, int] = {}
    for value in distinct:
        if PSEUDONYM_IN_TEXT.fullmatch(value):
            version = _version_of(value)
            counts[version] = counts.get(version, 0) + 1
    return counts


def pseudonyms_under(
    conn: Connection, evidence: set[str], version: int, *, after: str | None, limit: int
) -> list[str]:
    """Up to ``limit`` distinct pseudonyms of ``version``, ascending, all greater than ``after``."""
    refs = _column_values()
    value: Any = func.lower(refs.c.value)
    if conn.dialect.name == "postgresql":
        value = value.collate("C")  # byte order, as Python sorts and as the rotation's "after" assumes
    query = select(value).where(refs.c.value.like(_prefix_like(version), escape="\\"))
    if after is not None:
        query = query.where(value > after.lower())
    query = query.order_by(literal_column("1")).limit(limit)
    found = {v for (v,) in conn.execute(query) if PSEUDONYM_IN_TEXT.fullmatch(v)}
    prefix = f"tok{version}_"
    found |= {v for v in evidence if v.startswith(prefix) and (after is None or v > after.lower())}
    return sorted(found)[:limit]


def rekey(conn: Connection, mapping: Mapping[str, str]) -> int:
    """Replace each old pseudonym by its new one everywhere; returns the number of rows changed."""
    pairs = [
        {"old": old.lower(), "new": new.lower()} for old, new in mapping.items() if old.lower() != new.lower()
    ]
    if not pairs:
        return 0
    olds = [p["old"] for p in pairs]
    changed = 0
    a, t, e = schema.alerts, schema.transactions, schema.allow_entries
    targets: list[tuple[Any, Any, Any]] = [
        (a, a.c.token_ref, None),
        (t, t.c.token_ref, None),
        (t, t.c.stop_token_ref, None),
        (e, e.c.value, e.c.subject == "token"),
    ]
    for table, column, extra in targets:
        for chunk in _chunks(olds):
            where = column.in_(chunk) if extra is None else (column.in_(chunk) & extra)
            changed += conn.execute(select(func.count()).select_from(table).where(where)).scalar_one()
        stmt = update(table).where(column == bindparam("old")).values({column.key: bindparam("new")})
        if extra is not None:
            stmt = stmt.where(extra)
        conn.execute(stmt, pairs)
    changed += _rekey_evidence(conn, {p["old"]: p["new"] for p in pairs})
    return changed


def _rekey_evidence(conn: Connection, mapping: Mapping[str, str]) -> int:
    versions = {_version_of(old) for old in mapping}
    updates: list[dict[str, Any]] = []
    for alert_id, text in evidence_rows(conn, versions):
        new_text = PSEUDONYM_IN_TEXT.sub(lambda m: mapping.get(m.group(0).lower(), m.group(0)), text)
        if new_text != text:
            updates.append({"alert_id": alert_id, "evidence": orjson.loads(new_text)})
    if updates:
        a = schema.alerts
        conn.execute(
            update(a).where(a.c.id == bindparam("alert_id")).values(evidence=bindparam("evidence")), updates
        )
    return len(updates)


def _chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]
