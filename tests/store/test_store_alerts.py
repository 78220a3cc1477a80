"""Alerts in the store: round trip of every field, upsert by id, filters, and refusal of naive datetimes."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from chargeguard.errors import StoreError
from chargeguard.events import Alert, Severity
from chargeguard.store import Store
from chargeguard.testing import at

TOKEN = "tok1_abcdefghijklm23"  # pseudonym-shaped, 20 characters


def an_alert(**override: Any) -> Alert:
    values: dict[str, Any] = {
        "id": "al_000000000000000000000001",
        "kind": "token.concurrent_use",
        "severity": Severity.HIGH,
        "confidence": 0.97,
        "ts": at(5),
        "station": "CP-0001",
        "stations": ("CP-0001", "CP-0420"),
        "transactions": ("1201", "88731"),
        "token_ref": TOKEN,
        "summary": "one token charging at two stations at once",
        "evidence": {"overlap_s": 1800.5, "stations": ["CP-0001", "CP-0420"], "nested": {"n": 1, "ok": True}},
        "last_ts": at(20),
        "status": "open",
        "count": 2,
    }
    values.update(override)
    return Alert(**values)


def test_every_field_round_trips(store: Store) -> None:
    alert = an_alert()
    assert store.save_alerts([alert]) == 1
    assert store.alerts() == [alert]
    assert store.alert(alert.id) == alert
    assert store.alert("al_missing") is None


def test_empty_and_none_fields_round_trip(store: Store) -> None:
    alert = an_alert(station=None, stations=(), transactions=(), token_ref=None, evidence={}, last_ts=None)
    store.save_alerts([alert])
    assert store.alerts() == [alert]


def test_times_come_back_as_aware_utc_whatever_zone_went_in(store: Store) -> None:
    cest = timezone(timedelta(hours=2))
    store.save_alerts([an_alert(ts=datetime(2026, 3, 1, 10, 0, tzinfo=cest))])
    (got,) = store.alerts()
    assert got.ts == datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
    assert got.ts.tzinfo == UTC


def test_upsert_replaces_the_open_alert_with_its_closed_version(store: Store) -> None:
    opened = an_alert(status="open", count=1, stations=("CP-0001",), transactions=("1201",), last_ts=None)
    closed = an_alert(
        status="closed",
        count=3,
        severity=Severity.CRITICAL,
        stations=("CP-0001", "CP-0420", "CP-0007"),
        transactions=("1201",),
        last_ts=at(40),
        evidence={"final": True},
    )
    store.save_alerts([opened])
    store.save_alerts([closed])
    assert store.alerts() == [closed]
    # the replaced stations are gone from the index too
    assert store.alerts(station="CP-0007") == [closed]
    store.save_alerts([replace(closed, stations=("CP-0001",))])
    assert store.alerts(station="CP-0007") == []


def test_the_last_version_of_an_alert_in_one_batch_wins(store: Store) -> None:
    first = an_alert(status="open", count=1)
    last = an_alert(status="closed", count=4)
    assert store.save_alerts([first, last]) == 1
    assert store.alerts() == [last]


def test_filters_and_order(store: Store) -> None:
    a = an_alert(id="al_a", kind="token.concurrent_use", ts=at(1), station="CP-1", stations=("CP-1", "CP-9"))
    b = an_alert(
        id="al_b", kind="meter.rollback", ts=at(2), station="CP-2", stations=("CP-2",), token_ref=None
    )
    c = an_alert(
        id="al_c", kind="meter.rollback", ts=at(3), station="CP-1", stations=("CP-1",), status="closed"
    )
    store.save_alerts([a, b, c])
    assert [x.id for x in store.alerts()] == ["al_c", "al_b", "al_a"]  # newest first
    assert [x.id for x in store.alerts(kind="meter.rollback")] == ["al_c", "al_b"]
    assert [x.id for x in store.alerts(station="CP-1")] == ["al_c", "al_a"]
    assert [x.id for x in store.alerts(station="CP-9")] == ["al_a"]  # involved, not main
    assert [x.id for x in store.alerts(since=at(2))] == ["al_c", "al_b"]
    assert [x.id for x in store.alerts(since=at(1), until=at(3))] == ["al_b", "al_a"]
    assert [x.id for x in store.alerts(token_ref=TOKEN)] == ["al_c", "al_a"]
    assert [x.id for x in store.alerts(status="closed")] == ["al_c"]
    assert [x.id for x in store.alerts(limit=2)] == ["al_c", "al_b"]
    assert [x.id for x in store.alerts(kind="meter.rollback", station="CP-1", since=at(0))] == ["al_c"]


def test_evidence_values_json_cannot_hold_are_kept_as_text(store: Store) -> None:
    store.save_alerts([an_alert(evidence={"first_seen": at(3), "stations": ("A", "B")})])
    (got,) = store.alerts()
    assert got.evidence == {"first_seen": "2026-03-01T08:03:00+00:00", "stations": ["A", "B"]}


def test_naive_datetimes_are_refused_with_a_store_error(store: Store) -> None:
    with pytest.raises(StoreError, match="naive datetime"):
        store.save_alerts([an_alert(ts=datetime(2026, 3, 1, 8, 0))])
    assert store.alerts() == []  # nothing half-written


def test_many_alerts_in_one_call(store: Store) -> None:
    alerts = [an_alert(id=f"al_{i:04d}", ts=at(i), stations=(f"CP-{i}", "CP-X")) for i in range(1200)]
    assert store.save_alerts(alerts) == 1200
    got = store.alerts(limit=5000)
    assert len(got) == 1200
    assert got[0] == alerts[-1]
    assert len(store.alerts(station="CP-X", limit=5000)) == 1200


def test_alert_counts_per_kind_and_severity(store: Store) -> None:
    store.save_alerts(
        [
            an_alert(id="al_1", kind="meter.rollback", severity=Severity.MEDIUM, ts=at(1)),
            an_alert(id="al_2", kind="meter.rollback", severity=Severity.MEDIUM, ts=at(2)),
            an_alert(id="al_3", kind="meter.rollback", severity=Severity.HIGH, ts=at(3)),
            an_alert(id="al_4", kind="token.concurrent_use", severity=Severity.HIGH, ts=at(4)),
        ]
    )
    assert store.alert_counts() == {
        ("meter.rollback", Severity.MEDIUM): 2,
        ("meter.rollback", Severity.HIGH): 1,
        ("token.concurrent_use", Severity.HIGH): 1,
    }
    assert store.alert_counts(since=at(2), until=at(4)) == {
        ("meter.rollback", Severity.MEDIUM): 1,
        ("meter.rollback", Severity.HIGH): 1,
    }
