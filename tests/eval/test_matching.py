"""Matching rules: kind, also_acceptable, shared transactions, station + window, grace edges."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from chargeguard.eval.matching import match, matches
from chargeguard.eval.records import AlertRecord, Incident

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
GRACE = timedelta(seconds=300)


def incident(**kw: object) -> Incident:
    base: dict[str, object] = {
        "kind": "token.concurrent_use",
        "stations": frozenset({"CP-1", "CP-2"}),
        "transactions": frozenset({"11", "12"}),
        "start": T0,
        "end": T0 + timedelta(minutes=30),
        "detectable_at": T0 + timedelta(minutes=5),
    }
    base.update(kw)
    return Incident(**base)  # type: ignore[arg-type]


def alert(**kw: object) -> AlertRecord:
    base: dict[str, object] = {
        "id": "a1",
        "kind": "token.concurrent_use",
        "ts": T0 + timedelta(minutes=5),
        "stations": frozenset({"CP-2"}),
        "transactions": frozenset(),
    }
    base.update(kw)
    return AlertRecord(**base)  # type: ignore[arg-type]


def test_same_kind_station_and_time_matches() -> None:
    assert matches(alert(), incident(), grace=GRACE)


def test_other_kind_does_not_match() -> None:
    assert not matches(alert(kind="token.impossible_travel"), incident(), grace=GRACE)


def test_also_acceptable_kind_matches() -> None:
    inc = incident(also_acceptable=frozenset({"token.impossible_travel"}))
    assert matches(alert(kind="token.impossible_travel"), inc, grace=GRACE)


def test_shared_transaction_matches_outside_window() -> None:
    late = alert(ts=T0 + timedelta(days=2), transactions=frozenset({"12"}))
    assert matches(late, incident(), grace=GRACE)


def test_shared_transaction_at_another_station_does_not_match() -> None:
    other = alert(ts=T0 + timedelta(days=2), stations=frozenset({"CP-9"}), transactions=frozenset({"12"}))
    assert not matches(other, incident(), grace=GRACE)


def test_shared_transaction_without_stations_matches() -> None:
    bare = alert(ts=T0 + timedelta(days=2), stations=frozenset(), transactions=frozenset({"11"}))
    assert matches(bare, incident(), grace=GRACE)


def test_other_station_in_window_does_not_match() -> None:
    assert not matches(alert(stations=frozenset({"CP-3"})), incident(), grace=GRACE)


def test_grace_edges_are_inclusive() -> None:
    inc = incident()
    assert matches(alert(ts=inc.start - GRACE), inc, grace=GRACE)
    assert matches(alert(ts=inc.end + GRACE), inc, grace=GRACE)
    one_s = timedelta(seconds=1)
    assert not matches(alert(ts=inc.start - GRACE - one_s), inc, grace=GRACE)
    assert not matches(alert(ts=inc.end + GRACE + one_s), inc, grace=GRACE)


def test_zero_grace_means_the_window_only() -> None:
    inc = incident()
    assert not matches(alert(ts=inc.end + timedelta(seconds=1)), inc, grace=timedelta(0))
    assert matches(alert(ts=inc.end), inc, grace=timedelta(0))


def test_match_is_many_to_many() -> None:
    incidents = [incident(), incident(stations=frozenset({"CP-2"}), transactions=frozenset({"99"}))]
    alerts = [
        alert(id="x"),
        alert(id="y", stations=frozenset({"CP-1"})),
        alert(id="z", stations=frozenset({"CP-7"})),
    ]
    result = match(incidents, alerts, grace_s=300)
    assert result.incident_alerts == [[0, 1], [0]]
    assert result.alert_incidents == [[0, 1], [0], []]
