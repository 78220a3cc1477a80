"""Several writers at once: SQLite's write lock and busy timeout, PostgreSQL's migration lock."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from chargeguard.events import TransactionEnded
from chargeguard.store import Store
from chargeguard.testing import an_event, at


def _write(url: str, writer: int, batches: int) -> int:
    with Store.open(url) as store:
        for b in range(batches):
            store.save_transactions(
                an_event(
                    TransactionEnded,
                    station=f"CP-{writer}",
                    transaction_id=f"{b}-{i}",
                    started_at=at(b),
                    at=at(b + 1),
                    ts=at(b + 1),
                )
                for i in range(20)
            )
            store.alerts(limit=5)  # readers interleave with the other writer
    return batches * 20


@pytest.mark.timeout(120)
def test_concurrent_writers_all_land(store_url: str) -> None:
    Store.open(store_url).close()
    with ThreadPoolExecutor(max_workers=3) as pool:
        written = sum(pool.map(lambda w: _write(store_url, w, 15), range(3)))
    with Store.open(store_url) as store:
        assert len(store.transactions(limit=10_000)) == written == 900


@pytest.mark.timeout(120)
def test_concurrent_first_opens_migrate_once(store_url: str) -> None:
    def open_and_mark(version: int) -> None:
        with Store.open(store_url) as store:
            store.mark_pseudonymised([version])

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(open_and_mark, [1, 2, 3, 4]))
    with Store.open(store_url) as store:
        assert store.pseudonym_key_versions() == frozenset({1, 2, 3, 4})
