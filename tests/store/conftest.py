"""Store fixtures: every store test runs on SQLite (tmp_path) and on a real PostgreSQL, one schema per test.

PostgreSQL comes from ``CHARGEGUARD_TEST_PG_URL`` (``.ci/run`` exports it); without it the PostgreSQL variants
are skipped, unless ``CHARGEGUARD_REQUIRE_PG=1`` says they must run (then they fail).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from chargeguard.store import Store

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


@pytest.fixture
def pg_base() -> str:
    """The PostgreSQL URL from the environment (skips or fails as described above)."""
    return pg_base_url()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema, dropped after the test."""
    base = pg_base_url()
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
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'store' / 'chargeguard.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest) -> str:
    name = "sqlite_url" if request.param == "sqlite" else "pg_url"
    url: str = request.getfixturevalue(name)
    return url


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    opened = Store.open(store_url)
    try:
        yield opened
    finally:
        opened.close()
