"""Migrations: empty -> head -> base -> head on both databases, and the migrations agree with the models."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, text

from chargeguard.errors import StoreError
from chargeguard.store import Store, migrate, schema
from chargeguard.store.connect import create_store_engine

TABLES = {
    "alerts",
    "alert_stations",
    "alert_transactions",
    "transactions",
    "stations",
    "allow_entries",
    "scan_runs",
    "meta",
}


def create_engine(url: str) -> Engine:
    """The engine the store itself would use (SQLite pragmas and transaction hooks included)."""
    return create_store_engine(url)[0]


def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {migrate.VERSION_TABLE}
    finally:
        engine.dispose()


def test_upgrade_downgrade_upgrade(store_url: str) -> None:
    engine = create_engine(store_url)
    try:
        with engine.begin() as conn:
            assert migrate.current_revision(conn) is None
            migrate.upgrade(conn)
            assert migrate.current_revision(conn) == migrate.head_revision()
        assert _tables(store_url) == TABLES
        with engine.begin() as conn:
            migrate.downgrade(conn)
            assert migrate.current_revision(conn) is None
        assert _tables(store_url) == set()
        with engine.begin() as conn:
            migrate.upgrade(conn)
        assert _tables(store_url) == TABLES
    finally:
        engine.dispose()


def test_models_and_migrations_agree(store_url: str) -> None:
    Store.open(store_url).close()
    engine = create_engine(store_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "version_table": migrate.VERSION_TABLE}
            )
            assert compare_metadata(context, schema.metadata) == []
    finally:
        engine.dispose()


def test_opening_twice_keeps_data_and_does_not_migrate_again(store_url: str) -> None:
    with Store.open(store_url) as first:
        first.mark_pseudonymised([1])
    with Store.open(store_url) as second:
        assert second.pseudonym_key_versions() == frozenset({1})


def test_a_store_from_a_newer_chargeguard_is_refused(store_url: str) -> None:
    Store.open(store_url).close()
    engine = create_engine(store_url)
    try:
        with engine.begin() as conn:
            conn.execute(text(f"UPDATE {migrate.VERSION_TABLE} SET version_num = 'ffff_future'"))
    finally:
        engine.dispose()
    with pytest.raises(StoreError, match="newer than this chargeguard"):
        Store.open(store_url)


def test_sqlite_pragmas_and_file_mode(sqlite_url: str) -> None:
    with Store.open(sqlite_url) as opened, opened._engine.connect() as conn:  # the connection's own settings
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 1000
    path = Path(sqlite_url.removeprefix("sqlite:///"))
    assert path.stat().st_mode & 0o777 == 0o600
