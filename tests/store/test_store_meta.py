"""Store meta (pseudonymised data and key versions) and scan runs."""

from __future__ import annotations

import pytest

from chargeguard.errors import ConfigError
from chargeguard.events import Alert, Severity
from chargeguard.store import Store
from chargeguard.testing import at


def test_an_empty_store_holds_no_pseudonymised_data(store: Store) -> None:
    assert not store.has_pseudonymised_data()
    assert store.pseudonym_key_versions() == frozenset()


def test_mark_pseudonymised_merges_key_versions(store: Store) -> None:
    store.mark_pseudonymised([1])
    assert store.has_pseudonymised_data()
    store.mark_pseudonymised([3, 1])
    assert store.pseudonym_key_versions() == frozenset({1, 3})
    with pytest.raises(ConfigError, match=r"1\.\.99"):
        store.mark_pseudonymised([0])
    assert store.pseudonym_key_versions() == frozenset({1, 3})


def test_any_alert_counts_as_pseudonymised_data(store_url: str) -> None:
    store = Store.open(store_url)
    alert = Alert(
        id="al_x",
        kind="meter.rollback",
        severity=Severity.MEDIUM,
        confidence=0.8,
        ts=at(0),
        station="CP-1",
        stations=("CP-1",),
        transactions=(),
        token_ref=None,
        summary="s",
        evidence={"tok": "tok7_zzzzzzzzzzzzzz23"},
    )
    store.save_alerts([alert])
    # evidence may carry pseudonyms the store cannot see: data of any kind counts
    assert store.has_pseudonymised_data()
    store.close()
    with Store.open(store_url) as again:
        assert again.has_pseudonymised_data()


def test_scan_runs_round_trip_newest_first(store: Store) -> None:
    first = store.record_scan_run(
        started_at=at(0),
        finished_at=at(2),
        inputs=["day1.jsonl.gz", "-"],
        frames=1_000_000,
        bad_lines=3,
        alerts=12,
        transactions=4000,
        settings_digest="sha256:" + "a" * 64,
    )
    second = store.record_scan_run(
        started_at=at(10),
        finished_at=None,
        inputs=[],
        frames=0,
        bad_lines=0,
        alerts=0,
        settings_digest="x",
    )
    assert second > first
    newest, oldest = store.scan_runs()
    assert (
        newest.id == second
        and newest.finished_at is None
        and newest.inputs == ()
        and newest.transactions == 0
    )
    assert (oldest.id, oldest.started_at, oldest.finished_at, oldest.inputs) == (
        first,
        at(0),
        at(2),
        ("day1.jsonl.gz", "-"),
    )
    assert (oldest.frames, oldest.bad_lines, oldest.alerts, oldest.transactions) == (1_000_000, 3, 12, 4000)
    assert oldest.settings_digest == "sha256:" + "a" * 64
    assert [r.id for r in store.scan_runs(limit=1)] == [second]
