"""The store's tables (SQLAlchemy Core): the single source the Alembic migrations must agree with.

Design notes (the dashboard and API read these tables directly):

* Times are aware UTC datetimes on the Python side (``UTCDateTime``); PostgreSQL stores ``timestamptz``,
  SQLite stores naive UTC text that sorts chronologically.
* ``alerts.stations`` and ``alerts.transactions`` are normalised into ``alert_stations`` and
  ``alert_transactions`` (their order kept in ``position``) rather than JSON arrays: "every alert involving
  station X" and "the alerts about transaction T" are the dashboard's most common drill-downs and need an
  index on both databases, which JSON arrays cannot portably have.
  Evidence stays JSON: it is free-form and only ever shown whole.
* Severity is stored as its integer (0 info .. 4 critical) so ``ORDER BY severity`` and ``>=`` filters work.
* Tokens appear only as pseudonyms (``token_ref``); ``meta`` records that the store holds them and under which
  key versions.
* Nothing is hard-deleted from ``allow_entries``: removal sets ``removed_at`` / ``removed_by``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

# identities on the wire are short; generous bounds keep a hostile station id from failing a whole batch
STATION_LEN = 255
TOKEN_REF_LEN = 32
KIND_LEN = 64


class UTCDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime on the Python side, whatever the database keeps; naive datetimes are refused."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("naive datetime refused: the store keeps aware UTC datetimes only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)
        return _sqlite_utc_text  # the bulk path: one call per value instead of three

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _sqlite_utc_text(value: datetime | None) -> str | None:
    """An aware datetime as SQLAlchemy's SQLite text (``YYYY-MM-DD HH:MM:SS.ffffff``, UTC, no offset)."""
    if value is None:
        return None
    offset = value.utcoffset()
    if offset is None:
        raise ValueError("naive datetime refused: the store keeps aware UTC datetimes only")
    if offset:
        value = value - offset
    return value.isoformat(" ", "microseconds")[:26]


def _json() -> Any:
    return JSON().with_variant(JSONB(), "postgresql")


def _id() -> Any:
    # SQLite only auto-increments an INTEGER PRIMARY KEY
    return BigInteger().with_variant(Integer(), "sqlite")


alerts = Table(
    "alerts",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("kind", String(KIND_LEN), nullable=False),
    Column("severity", SmallInteger, nullable=False),
    Column("confidence", Float, nullable=False),
    Column("ts", UTCDateTime, nullable=False),
    Column("last_ts", UTCDateTime, nullable=True),
    Column("status", String(8), nullable=False),
    Column("count", Integer, nullable=False),
    Column("station", String(STATION_LEN), nullable=True),
    Column("token_ref", String(TOKEN_REF_LEN), nullable=True),
    Column("summary", Text, nullable=False),
    Column("evidence", _json(), nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    CheckConstraint("severity BETWEEN 0 AND 4", name="severity_range"),
    CheckConstraint("status IN ('open', 'closed')", name="status_known"),
    CheckConstraint("confidence >= 0 AND confidence <= 1", name="confidence_range"),
    Index(None, "ts"),
    Index(None, "kind", "ts"),
    Index(None, "station", "ts"),
    Index(None, "token_ref"),
)

alert_stations = Table(
    "alert_stations",
    metadata,
    Column("alert_id", String(64), ForeignKey("alerts.id", ondelete="CASCADE"), primary_key=True),
    Column("position", SmallInteger, primary_key=True),
    Column("station", String(STATION_LEN), nullable=False),
    Index(None, "station"),
)

alert_transactions = Table(
    "alert_transactions",
    metadata,
    Column("alert_id", String(64), ForeignKey("alerts.id", ondelete="CASCADE"), primary_key=True),
    Column("position", SmallInteger, primary_key=True),
    Column("transaction_id", String(255), nullable=False),
    Index(None, "transaction_id"),
)

transactions = Table(
    "transactions",
    metadata,
    Column("id", _id(), primary_key=True, autoincrement=True),
    Column("station", String(STATION_LEN), nullable=False),
    Column("transaction_id", String(255), nullable=False),
    Column("connector", String(32), nullable=True),
    Column("ocpp", String(8), nullable=False),
    Column("token_ref", String(TOKEN_REF_LEN), nullable=True),
    Column("stop_token_ref", String(TOKEN_REF_LEN), nullable=True),
    Column("started_at", UTCDateTime, nullable=True),
    Column("ended_at", UTCDateTime, nullable=False),
    Column("ended_ts", UTCDateTime, nullable=False),
    Column("energy_wh", Float, nullable=True),
    Column("meter_start_wh", Float, nullable=True),
    Column("meter_stop_wh", Float, nullable=True),
    Column("reason", String(64), nullable=True),
    Column("samples", Integer, nullable=False),
    Column("first_sample_wh", Float, nullable=True),
    Column("last_sample_wh", Float, nullable=True),
    Column("max_power_w", Float, nullable=True),
    Column("charging_seen", Boolean, nullable=False),
    Column("queued", Boolean, nullable=False),
    Column("auth_status", String(32), nullable=True),
    UniqueConstraint("station", "transaction_id", "started_at"),
    # NULLs are distinct in a unique constraint: transactions whose start was not seen are unique on their end
    Index(
        "uq_transactions_unstarted",
        "station",
        "transaction_id",
        "ended_at",
        unique=True,
        sqlite_where=text("started_at IS NULL"),
        postgresql_where=text("started_at IS NULL"),
    ),
    Index(None, "ended_at"),
    Index(None, "token_ref", "ended_at"),
)

stations = Table(
    "stations",
    metadata,
    Column("station", String(STATION_LEN), primary_key=True),
    Column("ocpp", String(8), nullable=True),
    Column("vendor", String(255), nullable=True),
    Column("model", String(255), nullable=True),
    Column("serial", String(255), nullable=True),
    Column("firmware", String(255), nullable=True),
    Column("security_profile", SmallInteger, nullable=True),
    Column("first_seen", UTCDateTime, nullable=False),
    Column("last_seen", UTCDateTime, nullable=False),
    Column("last_boot", UTCDateTime, nullable=True),
    CheckConstraint("security_profile BETWEEN 0 AND 3", name="security_profile_range"),
)

allow_entries = Table(
    "allow_entries",
    metadata,
    Column("id", _id(), primary_key=True, autoincrement=True),
    Column("kind", String(KIND_LEN), nullable=False),
    Column("subject", String(8), nullable=False),
    Column("value", String(STATION_LEN), nullable=False),
    Column("expires", UTCDateTime, nullable=False),
    Column("reason", Text, nullable=False),
    Column("added_by", String(128), nullable=False),
    Column("added_at", UTCDateTime, nullable=False),
    Column("removed_at", UTCDateTime, nullable=True),
    Column("removed_by", String(128), nullable=True),
    CheckConstraint("subject IN ('token', 'station')", name="subject_known"),
    CheckConstraint("(removed_at IS NULL) = (removed_by IS NULL)", name="removal_complete"),
    Index(None, "subject", "value"),
)

scan_runs = Table(
    "scan_runs",
    metadata,
    Column("id", _id(), primary_key=True, autoincrement=True),
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime, nullable=True),
    Column("inputs", _json(), nullable=False),
    Column("frames", BigInteger, nullable=False),
    Column("bad_lines", BigInteger, nullable=False),
    Column("transactions", BigInteger, nullable=False),
    Column("alerts", BigInteger, nullable=False),
    Column("settings_digest", String(128), nullable=False),
    Index(None, "started_at"),
)

meta = Table(
    "meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)
