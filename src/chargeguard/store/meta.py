"""The ``meta`` table: whether the store holds pseudonymised data, and under which pseudonym key versions.

The vault reads it at start-up: a store with data and no key must refuse to start (a new key would orphan every
stored pseudonym).
"""

from __future__ import annotations

import orjson
from sqlalchemy import Connection, exists, or_, select, update

from chargeguard.store import schema, upsert

PSEUDONYMISED = "pseudonymised"
KEY_VERSIONS = "pseudonym_key_versions"


def read_versions(conn: Connection) -> set[int]:
    m = schema.meta
    text = conn.execute(select(m.c.value).where(m.c.key == KEY_VERSIONS)).scalar_one_or_none()
    return set(orjson.loads(text)) if text else set()


def has_data(conn: Connection) -> bool:
    """Marked as pseudonymised, or holding any alert or transaction (evidence may carry pseudonyms)."""
    m = schema.meta
    marked = conn.execute(select(m.c.value).where(m.c.key == PSEUDONYMISED)).scalar_one_or_none()
    if marked == "true":
        return True
    rows = select(or_(exists(select(schema.alerts.c.id)), exists(select(schema.transactions.c.id))))
    return bool(conn.execute(rows).scalar())


def note_versions(conn: Connection, versions: set[int]) -> set[int]:
    """Mark the store pseudonymised and merge ``versions`` into the recorded ones; returns the merged set."""
    m = schema.meta
    conn.execute(
        upsert.ignore_on(conn.dialect.name, m, ["key"]),
        [{"key": PSEUDONYMISED, "value": "true"}, {"key": KEY_VERSIONS, "value": "[]"}],
    )
    # lock the row before read-modify-write (PostgreSQL; SQLite writers are already serialised)
    current = conn.execute(select(m.c.value).where(m.c.key == KEY_VERSIONS).with_for_update()).scalar_one()
    merged = set(orjson.loads(current)) | versions
    conn.execute(update(m).where(m.c.key == KEY_VERSIONS).values(value=orjson.dumps(sorted(merged)).decode()))
    conn.execute(update(m).where(m.c.key == PSEUDONYMISED).values(value="true"))
    return merged
