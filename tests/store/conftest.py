"""Store fixtures: every store test runs on SQLite (tmp_path) and on a real PostgreSQL, one schema per test.

PostgreSQL comes from ``CHARGEGUARD_TEST_PG_URL`` (``.ci/run`` exports it); without it the PostgreSQL variants
are skipped, unless ``CHARGEGUARD_REQUIRE_PG=1`` says they must run (then they fail).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from chargeguard.store import Store, schema

PG_ENV = "CHARGEGUARD_TEST_PG_URL"
REQUIRE_PG_ENV = "CHARGEGUARD_REQUIRE_PG"


def pg_base_url() -> str:
    url = os.environ.get(PG_ENV)
    if not url:
        if os.environ.get(REQUIRE_PG_ENV) == "1":
            pytest.fail(f"{REQUIRE_PG_ENV}=1 but {PG_ENV} is not set")
        pytest.skip(f"PostgreSQL tests need {PG_ENV}")
    return url


def _libpq(url: str) -> str:
    """The plain libpq URL psycopg understands (no +driver)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def pg_base() -> str:
    """The PostgreSQL URL from the environment (skips or fails as described above)."""
    return pg_base_url()


@contextmanager
def _schema(base: str) -> Iterator[str]:
    """A fresh schema, dropped afterwards; yields a URL whose search_path is that schema."""
    schema = f"cgtest_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_libpq(base), autocommit=True, connect_timeout=10) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield (
            make_url(base)
            .update_query_dict({"options": f"-csearch_path={schema}"})
            .render_as_string(hide_password=False)
        )
    finally:
        with psycopg.connect(_libpq(base), autocommit=True, connect_timeout=10) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture
def pg_url(pg_base: str) -> Iterator[str]:
    """A PostgreSQL URL on a fresh, empty schema of its own (for migration and error tests)."""
    with _schema(pg_base) as url:
        yield url


@pytest.fixture(scope="session")
def pg_shared_url(pg_base: str) -> Iterator[str]:
    """A schema migrated once per session; ``store`` empties its tables after every test."""
    with _schema(pg_base) as url:
        Store.open(url).close()
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'store' / 'chargeguard.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def store_url(backend: str, request: pytest.FixtureRequest) -> str:
    """A fresh, empty database of the parametrised backend (nothing migrated yet)."""
    url: str = request.getfixturevalue("sqlite_url" if backend == "sqlite" else "pg_url")
    return url


@pytest.fixture
def store(backend: str, request: pytest.FixtureRequest) -> Iterator[Store]:
    """An open, migrated, empty store of the parametrised backend."""
    url: str = request.getfixturevalue("sqlite_url" if backend == "sqlite" else "pg_shared_url")
    opened = Store.open(url)
    try:
        yield opened
    finally:
        if backend == "postgresql":
            with opened._engine.begin() as conn:  # cleanup between tests sharing the session schema
                for table in reversed(
                    schema.metadata.sorted_tables
                ):  # DELETE: far cheaper than TRUNCATE here
                    conn.execute(table.delete())
        opened.close()
