"""Metrics on hand-made truth and alerts with known answers; delay statistics."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from chargeguard.eval.metrics import evaluate, f1_score, median, nearest_rank
from chargeguard.eval.records import AlertRecord, Incident

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


def inc(
    kind: str, station: str, minute: int, *, subtle: bool = False, also: tuple[str, ...] = ()
) -> Incident:
    start = T0 + timedelta(minutes=minute)
    return Incident(
        kind=kind,
        stations=frozenset({station}),
        transactions=frozenset(),
        start=start,
        end=start + timedelta(minutes=10),
        detectable_at=start + timedelta(minutes=1),
        also_acceptable=frozenset(also),
        subtle=subtle,
    )


def alert(kind: str, station: str, minute: float, ident: str) -> AlertRecord:
    return AlertRecord(
        id=ident,
        kind=kind,
        ts=T0 + timedelta(minutes=minute),
        stations=frozenset({station}),
        transactions=frozenset(),
    )


def test_known_answer_per_kind() -> None:
    incidents = [
        inc("meter.rollback", "A", 0),
        inc("meter.rollback", "B", 100),
        inc("meter.rollback", "C", 200),  # missed
        inc("token.concurrent_use", "D", 0, also=("token.impossible_travel",)),
        inc("anomaly.token", "E", 0, subtle=True),
    ]
    alerts = [
        alert("meter.rollback", "A", 1, "r1"),  # delay 0
        alert(
            "meter.rollback", "A", 3, "r2"
        ),  # second alert on the same incident: true, delay uses the first
        alert("meter.rollback", "B", 103, "r3"),  # delay +120 s
        alert("meter.rollback", "Z", 50, "r4"),  # false
        alert("token.impossible_travel", "D", 0.5, "t1"),  # matches via also_acceptable, delay -30 s
        alert("station.clock_skew", "A", 2, "c1"),  # a kind with no incidents: false
    ]
    ev = evaluate(incidents, alerts, sessions=2000)
    by = {k.kind: k for k in ev.kinds}
    rb = by["meter.rollback"]
    assert (rb.incidents, rb.detected, rb.alerts, rb.true_alerts) == (3, 2, 4, 3)
    assert rb.recall == pytest.approx(2 / 3)
    assert rb.precision == pytest.approx(3 / 4)
    assert rb.f1 == pytest.approx(2 * 0.75 * (2 / 3) / (0.75 + 2 / 3))
    assert rb.delay_median_s == pytest.approx(60.0)
    assert rb.delay_p95_s == pytest.approx(120.0)
    assert rb.false_per_1000_sessions == pytest.approx(0.5)
    cu = by["token.concurrent_use"]
    assert (cu.incidents, cu.detected, cu.alerts, cu.recall, cu.precision) == (1, 1, 0, 1.0, None)
    assert cu.delay_median_s == pytest.approx(-30.0)
    assert by["token.impossible_travel"].precision == 1.0
    assert by["token.impossible_travel"].recall is None
    assert by["station.clock_skew"].precision == 0.0
    assert "anomaly.token" not in by
    assert [s.kind for s in ev.subtle] == ["anomaly.token"]
    assert ev.subtle[0].recall == 0.0
    assert ev.overall.incidents == 4 and ev.overall.detected == 3
    assert ev.overall.false_alerts == 2
    assert ev.overall.false_per_1000_sessions == pytest.approx(1.0)
    assert [m["kind"] for m in ev.missed] == ["meter.rollback"]
    assert sorted(f["id"] for f in ev.false_alerts) == ["c1", "r4"]


def test_alert_matching_a_subtle_incident_is_not_false() -> None:
    ev = evaluate([inc("anomaly.token", "E", 0, subtle=True)], [alert("anomaly.token", "E", 2, "x")])
    assert ev.kinds[0].kind == "anomaly.token" and ev.kinds[0].precision == 1.0
    assert ev.subtle[0].recall == 1.0


def test_no_sessions_means_no_rate() -> None:
    ev = evaluate([], [alert("meter.rollback", "A", 1, "r1")])
    assert ev.kinds[0].false_per_1000_sessions is None
    assert ev.overall.recall is None


def test_json_shape() -> None:
    data = evaluate([inc("meter.rollback", "A", 0)], [], sessions=10).to_json()
    assert data["kinds"][0]["recall"] == 0.0 and data["sessions"] == 10 and data["grace_s"] == 300.0


def test_delay_statistics() -> None:
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert median([4.0, 1.0, 2.0, 3.0]) == 2.5
    assert median([]) is None
    values = [float(v) for v in range(1, 101)]
    assert nearest_rank(values, 0.95) == 95.0
    assert nearest_rank([5.0], 0.95) == 5.0
    assert nearest_rank([-10.0, 0.0], 0.95) == 0.0
    assert nearest_rank([], 0.95) is None
    assert f1_score(0.0, 0.0) == 0.0
    assert f1_score(None, 1.0) is None
