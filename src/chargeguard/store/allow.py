"""Allow entries in the store: checks before insert, removal that keeps the trail, and the "in force" query.

Nothing is hard-deleted by the allow-list API: removal stamps ``removed_at`` / ``removed_by`` (only erasure of a
person's data redacts a token entry's value, see ``chargeguard.store.personal``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Select, or_, select, update

from chargeguard.allowlist import AllowEntry
from chargeguard.errors import ConfigError
from chargeguard.store import records, schema


class AllowEntryNotFoundError(ConfigError):
    """``remove_allow`` named an entry that does not exist or was already removed."""


def insert(conn: Connection, entry: AllowEntry, now: datetime) -> tuple[int, dict[str, Any]]:
    """Check and insert ``entry``; returns its id and the row as stored."""
    records.check_allow_entry(entry)
    row = {
        "kind": entry.kind,
        "subject": entry.subject,
        "value": entry.value.lower() if entry.subject == "token" else entry.value.strip(),
        "expires": entry.expires,
        "reason": entry.reason.strip(),
        "added_by": entry.added_by.strip(),
        "added_at": entry.added_at or now,
    }
    t = schema.allow_entries
    new_id = conn.execute(t.insert().returning(t.c.id), row).scalar_one()
    return int(new_id), row


def mark_removed(conn: Connection, entry_id: int, removed_by: str, when: datetime) -> records.AllowRecord:
    """Stamp the removal; refuses unknown and already removed entries (saying who removed them)."""
    by = removed_by.strip()
    if not 0 < len(by) <= records.MAX_NAME_LEN:
        raise ConfigError(
            f"removing an allow entry needs who removes it (1..{records.MAX_NAME_LEN} characters)"
        )
    t = schema.allow_entries
    done = conn.execute(
        update(t).where(t.c.id == entry_id, t.c.removed_at.is_(None)).values(removed_at=when, removed_by=by)
    )
    row = conn.execute(select(t).where(t.c.id == entry_id)).first()
    if row is None:
        raise AllowEntryNotFoundError(f"allow entry {entry_id} does not exist")
    record = records.allow_record_from_row(row._mapping)
    if done.rowcount == 0:
        raise AllowEntryNotFoundError(
            f"allow entry {entry_id} was already removed"
            f" by {record.removed_by} at {record.removed_at:%Y-%m-%dT%H:%M:%SZ}"
        )
    return record


def query(*, include_removed: bool, active_at: datetime | None) -> Select[Any]:
    """Entries oldest first; ``active_at`` keeps those in force then (added, not expired, not yet removed)."""
    t = schema.allow_entries
    stmt = select(t).order_by(t.c.id)
    if active_at is not None:
        return stmt.where(
            t.c.added_at <= active_at,
            t.c.expires > active_at,
            or_(t.c.removed_at.is_(None), t.c.removed_at > active_at),
        )
    return stmt if include_removed else stmt.where(t.c.removed_at.is_(None))
