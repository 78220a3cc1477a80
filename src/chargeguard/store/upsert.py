"""Dialect-specific INSERT ... ON CONFLICT statements (SQLite and PostgreSQL alike in SQLAlchemy)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from operator import itemgetter
from typing import Any

from sqlalchemy import ColumnElement, Connection, Dialect, Table, and_, case, delete, or_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.dml import Insert
from sqlalchemy.types import String, TypeEngine

from chargeguard.events import Alert
from chargeguard.store import records, schema
from chargeguard.store.clean import clean_text

_CHUNK = 500  # ids per IN (...) list, well under SQLite's bound parameter limit


def _insert(dialect: str, table: Table) -> Any:
    if dialect == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def replace_on(
    dialect: str,
    table: Table,
    keys: Sequence[str],
    *,
    where: ColumnElement[bool] | None = None,
) -> Insert:
    """INSERT that replaces every non-key column of the row with the same ``keys`` (last write wins)."""
    stmt = _insert(dialect, table)
    updates = {
        c.name: stmt.excluded[c.name] for c in table.columns if c.name not in keys and not c.primary_key
    }
    result: Insert = stmt.on_conflict_do_update(index_elements=list(keys), index_where=where, set_=updates)
    return result


def ignore_on(dialect: str, table: Table, keys: Sequence[str]) -> Insert:
    """INSERT that leaves an existing row with the same ``keys`` alone."""
    result: Insert = _insert(dialect, table).on_conflict_do_nothing(index_elements=list(keys))
    return result


def station_upsert(dialect: str) -> Insert:
    """Merge a station sighting: first/last seen widen; identity and profile follow the newest information.

    A boot (``last_boot`` set) replaces vendor/model/serial/firmware/ocpp when it is at least as new as the
    stored boot; a connection (``security_profile`` set) replaces the profile when it is at least as new as
    the last sighting. Replaying an old capture therefore never overwrites newer identity.
    """
    t = schema.stations
    stmt = _insert(dialect, t)
    new = stmt.excluded
    newer_boot = and_(
        new.last_boot.is_not(None), or_(t.c.last_boot.is_(None), new.last_boot >= t.c.last_boot)
    )
    newer_sighting = and_(new.security_profile.is_not(None), new.last_seen >= t.c.last_seen)
    updates: dict[str, Any] = {
        name: case((newer_boot, new[name]), else_=t.c[name])
        for name in ("ocpp", "vendor", "model", "serial", "firmware", "last_boot")
    }
    updates["security_profile"] = case((newer_sighting, new.security_profile), else_=t.c.security_profile)
    updates["first_seen"] = case((new.first_seen < t.c.first_seen, new.first_seen), else_=t.c.first_seen)
    updates["last_seen"] = case((new.last_seen > t.c.last_seen, new.last_seen), else_=t.c.last_seen)
    result: Insert = stmt.on_conflict_do_update(index_elements=["station"], set_=updates)
    return result


def upsert_alerts(conn: Connection, alerts: Iterable[Alert], now: datetime) -> None:
    """Replace alerts by id, with their stations and transactions (children are rewritten, order kept)."""
    latest = list(alerts)
    rows = [records.alert_row(a, now) for a in latest]
    station_rows = [
        {"alert_id": a.id, "position": i, "station": s} for a in latest for i, s in enumerate(a.stations)
    ]
    tx_rows = [
        {"alert_id": a.id, "position": i, "transaction_id": t}
        for a in latest
        for i, t in enumerate(a.transactions)
    ]
    execute_rows(conn, replace_on(conn.dialect.name, schema.alerts, ["id"]), rows)
    s, x = schema.alert_stations, schema.alert_transactions
    ids = [a.id for a in latest]
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        conn.execute(delete(s).where(s.c.alert_id.in_(chunk)))
        conn.execute(delete(x).where(x.c.alert_id.in_(chunk)))
    execute_rows(conn, s.insert(), station_rows)
    execute_rows(conn, x.insert(), tx_rows)


def upsert_transactions(
    conn: Connection, started: list[dict[str, Any]], unstarted: list[dict[str, Any]]
) -> None:
    """Upsert transaction rows: unique on (station, transaction_id, started_at), or on the end when no start."""
    t = schema.transactions
    dialect = conn.dialect.name
    execute_rows(conn, replace_on(dialect, t, ["station", "transaction_id", "started_at"]), started)
    where = t.c.started_at.is_(None)
    execute_rows(
        conn, replace_on(dialect, t, ["station", "transaction_id", "ended_at"], where=where), unstarted
    )


def execute_rows(conn: Connection, stmt: Insert, rows: Sequence[Mapping[str, Any]]) -> None:
    """Execute ``stmt`` for many same-shaped rows through the driver's executemany.

    SQLAlchemy's per-row parameter handling costs about ten times the database's own work on bulk inserts; here
    the statement is compiled once for the rows' keys and each value goes through its column type's own bind
    processor (the same conversion SQLAlchemy applies), then straight to the DBAPI cursor.
    """
    if not rows:
        return
    keys = list(rows[0])
    dialect = conn.dialect
    compiled = stmt.compile(dialect=dialect, column_keys=keys)
    table = stmt.table
    columns = table.columns
    names = list(compiled.positiontup or ()) if compiled.positional else keys
    convert = [
        (i, p) for i, name in enumerate(names) if (p := _processor(columns[name].type, dialect)) is not None
    ]
    # attacker-controlled text: NUL and lone surrogates would fail the whole batch (see store.clean)
    convert += [(i, clean_text) for i, name in enumerate(names) if isinstance(columns[name].type, String)]
    get = itemgetter(*names)
    params: list[Any] = []
    for row in rows:
        values = list(get(row)) if len(names) > 1 else [get(row)]
        for i, process in convert:
            values[i] = process(values[i])
        params.append(tuple(values) if compiled.positional else dict(zip(names, values, strict=True)))
    conn.exec_driver_sql(str(compiled), params)


def _processor(type_: TypeEngine[Any], dialect: Dialect) -> Callable[[Any], Any] | None:
    processor: Callable[[Any], Any] | None = type_.dialect_impl(dialect).bind_processor(dialect)
    return processor
