"""Retention and erasure of the personal data the store holds (what ``vault.retention`` asks a store for).

Pseudonymised data is personal data. Retention deletes alerts and transactions older than a cutoff (event time).
Erasure removes everything linked to a driver's pseudonyms: transactions naming them, alerts about them, the
pseudonyms inside other alerts' evidence (replaced by ``[erased]`` - an enumeration alert about a station stays,
minus that card), and the value of token allow entries (redacted and marked removed, so the trail of who added
what and why survives without the link to the person).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import orjson
from sqlalchemy import Connection, bindparam, delete, func, or_, select, update

from chargeguard.store import schema
from chargeguard.store.rekey import PSEUDONYM_IN_TEXT, evidence_rows

ERASED = "[erased]"
ERASED_BY = "erasure"
_CHUNK = 500


def delete_alerts_older_than(conn: Connection, cutoff: datetime) -> int:
    """Alerts whose latest evidence is before ``cutoff`` (their stations and transactions go with them)."""
    a = schema.alerts
    old = select(a.c.id).where(func.coalesce(a.c.last_ts, a.c.ts) < cutoff)
    ids = [row[0] for row in conn.execute(old)]
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        conn.execute(delete(schema.alert_stations).where(schema.alert_stations.c.alert_id.in_(chunk)))
        conn.execute(delete(schema.alert_transactions).where(schema.alert_transactions.c.alert_id.in_(chunk)))
        conn.execute(delete(a).where(a.c.id.in_(chunk)))
    return len(ids)


def delete_transactions_older_than(conn: Connection, cutoff: datetime) -> int:
    t = schema.transactions
    return int(conn.execute(delete(t).where(t.c.ended_at < cutoff)).rowcount)


def erase(conn: Connection, pseudonyms: Sequence[str], now: datetime) -> tuple[int, int, int]:
    """Erase the pseudonyms everywhere; returns (alerts deleted or redacted, transactions deleted, allow entries)."""
    wanted = sorted({p.strip().lower() for p in pseudonyms if p.strip()})
    if not wanted:
        return 0, 0, 0
    a, t, e = schema.alerts, schema.transactions, schema.allow_entries
    transactions = alerts = allows = 0
    for start in range(0, len(wanted), _CHUNK):
        chunk = wanted[start : start + _CHUNK]
        transactions += conn.execute(
            delete(t).where(or_(t.c.token_ref.in_(chunk), t.c.stop_token_ref.in_(chunk)))
        ).rowcount
        ids = [row[0] for row in conn.execute(select(a.c.id).where(a.c.token_ref.in_(chunk)))]
        if ids:
            conn.execute(delete(schema.alert_stations).where(schema.alert_stations.c.alert_id.in_(ids)))
            conn.execute(
                delete(schema.alert_transactions).where(schema.alert_transactions.c.alert_id.in_(ids))
            )
            conn.execute(delete(a).where(a.c.id.in_(ids)))
        alerts += len(ids)
        allows += conn.execute(
            update(e)
            .where(e.c.subject == "token", e.c.value.in_(chunk))
            .values(
                value=ERASED,
                removed_at=func.coalesce(e.c.removed_at, now),
                removed_by=func.coalesce(e.c.removed_by, ERASED_BY),
            )
        ).rowcount
    alerts += _redact_evidence(conn, set(wanted))
    return alerts, transactions, allows


def _redact_evidence(conn: Connection, wanted: set[str]) -> int:
    versions = {int(p[3 : p.index("_")]) for p in wanted if PSEUDONYM_IN_TEXT.fullmatch(p)}
    if not versions:
        return 0
    updates = []
    for alert_id, text in evidence_rows(conn, versions):
        new_text = PSEUDONYM_IN_TEXT.sub(
            lambda m: ERASED if m.group(0).lower() in wanted else m.group(0), text
        )
        if new_text != text:
            updates.append({"alert_id": alert_id, "evidence": orjson.loads(new_text)})
    if updates:
        a = schema.alerts
        stmt = update(a).where(a.c.id == bindparam("alert_id")).values(evidence=bindparam("evidence"))
        conn.execute(stmt, updates)
    return len(updates)
