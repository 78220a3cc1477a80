"""ocpp.* rule detectors: malformed traffic and floods, must-fire cases and near misses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chargeguard.detectors.base import DetectorContext, Limits
from chargeguard.detectors.rules.event_window import BucketClock
from chargeguard.detectors.rules.protocol import DETECTORS, Flood, Malformed
from chargeguard.events import ConnectionEvent, Direction, FrameSeen, ProtocolViolation, Severity
from chargeguard.testing import an_event, at, make_detector, run_detector

VERSIONS = ("1.6", "2.0.1")


def violation(seconds: float, reason: str = "schema", ocpp: str = "1.6", **kw: Any) -> ProtocolViolation:
    return an_event(ProtocolViolation, ts=at(seconds=seconds), reason=reason, ocpp=ocpp, **kw)


def test_exports_both_kinds() -> None:
    assert sorted(k for cls in DETECTORS for k in cls.info.kinds) == ["ocpp.flood", "ocpp.malformed"]


@pytest.mark.parametrize("ocpp", VERSIONS)
def test_single_violation_is_one_low_alert(ocpp: str) -> None:
    alerts = run_detector(
        make_detector(Malformed), [violation(0, "duplicate_id", ocpp, detail="id 42 reused")]
    )
    assert len(alerts) == 1
    alert = alerts[0]
    assert (alert.kind, alert.severity, alert.ts, alert.station) == (
        "ocpp.malformed",
        Severity.LOW,
        at(),
        "CP-0001",
    )
    assert alert.evidence["reasons_total"] == {"duplicate_id": 1}
    assert "id 42 reused" not in repr(alert)  # detail text is never copied


@pytest.mark.parametrize("ocpp", VERSIONS)
def test_sustained_stream_escalates_within_one_alert(ocpp: str) -> None:
    events = [violation(i * 5, "schema" if i % 2 else "orphan_result", ocpp) for i in range(25)]
    alerts = run_detector(make_detector(Malformed), events)
    assert len(alerts) == 1
    assert alerts[0].severity is Severity.MEDIUM
    assert alerts[0].ts == at()
    assert alerts[0].count == 2  # the first violation, then the escalation at the 20th
    assert alerts[0].evidence["merged"][0]["reasons_in_window"] == {"orphan_result": 10, "schema": 10}


def test_path_like_action_is_high_and_never_echoed() -> None:
    events = [violation(0, "unknown_action", "2.0.1", action="../../v16/schemas/Authorize")]
    alerts = run_detector(make_detector(Malformed), events)
    assert [a.severity for a in alerts] == [Severity.HIGH]
    assert "../../" not in repr(alerts[0].evidence)
    assert alerts[0].evidence["suspicious_action_names"] == 1


def test_probing_unknown_actions_is_high() -> None:
    events = [violation(i, "unknown_action", action=f"Probe{i}") for i in range(5)]
    alerts = run_detector(make_detector(Malformed), events)
    assert len(alerts) == 1
    assert alerts[0].severity is Severity.HIGH
    assert alerts[0].last_ts == at(seconds=4)
    near = [violation(i, "unknown_action", action="VendorThing") for i in range(5)]
    assert [a.severity for a in run_detector(make_detector(Malformed), near)] == [Severity.LOW]


def test_fuzzer_mix_of_violations_is_high() -> None:
    reasons = ["unknown_action", "schema", "bad_message_type", "orphan_result", "not_json"]
    events = [violation(i * 5, reason, action=None) for i, reason in enumerate(reasons)]
    alerts = run_detector(make_detector(Malformed), events)
    assert len(alerts) == 1
    assert alerts[0].severity is Severity.HIGH
    assert alerts[0].ts == at()
    assert alerts[0].last_ts == at(seconds=15)  # the fourth kind of violation escalated it
    three_kinds = [violation(i * 5, r) for i, r in enumerate(["schema", "orphan_result", "duplicate_id"])]
    assert [a.severity for a in run_detector(make_detector(Malformed), three_kinds)] == [Severity.LOW]


def test_oversize_is_medium_and_stations_are_separate_incidents() -> None:
    events = [violation(0, "oversize"), violation(1, "schema", station="CP-2")]
    alerts = sorted(run_detector(make_detector(Malformed), events), key=lambda a: a.ts)
    assert [(a.station, a.severity) for a in alerts] == [("CP-0001", Severity.MEDIUM), ("CP-2", Severity.LOW)]


# ---------------------------------------------------------------------------------------- flood


def frames(start_s: float, count: int, spacing_s: float, **kw: Any) -> list[FrameSeen]:
    return [an_event(FrameSeen, ts=at(seconds=start_s + i * spacing_s), **kw) for i in range(count)]


def quiet_baseline(minutes: int) -> list[FrameSeen]:
    return [an_event(FrameSeen, ts=at(m, seconds=1)) for m in range(minutes)]


@pytest.mark.parametrize("ocpp", VERSIONS)
def test_message_flood_fires_once_per_bucket_and_merges(ocpp: str) -> None:
    events = [*quiet_baseline(30), *frames(30 * 60 + 2, 1300, 0.09, ocpp=ocpp)]
    alerts = run_detector(make_detector(Flood), events)
    assert len(alerts) == 1
    alert = alerts[0]
    assert alert.kind == "ocpp.flood"
    assert alert.evidence["metric"] == "frames"
    # the 600th frame of the 31st minute completed the detection
    assert alert.ts == at(30, seconds=2 + 599 * 0.09)
    assert alert.count == 2  # two flooded minutes, one alert


def test_busy_minute_below_floor_is_silent() -> None:
    events = [*quiet_baseline(10), *frames(10 * 60, 400, 0.1)]  # a full NotifyReport burst
    assert run_detector(make_detector(Flood), events) == []


def test_baseline_raises_the_threshold() -> None:
    busy = [f for m in range(40) for f in frames(m * 60, 100, 0.5)]  # steady 100 per minute
    surge = frames(40 * 60, 700, 0.05)  # 7x its baseline: above floor, below 10x baseline
    assert run_detector(make_detector(Flood, frames_floor=200), [*busy, *surge]) == []
    alerts = run_detector(make_detector(Flood, frames_floor=200), [*busy, *frames(40 * 60, 1100, 0.05)])
    assert len(alerts) == 1


@pytest.mark.parametrize("silent_minutes", [20, 2000])  # a short gap, and one beyond the table of powers
def test_baseline_decays_over_silent_buckets(silent_minutes: int) -> None:
    busy = [f for m in range(40) for f in frames(m * 60, 100, 0.5)]  # steady 100 per minute
    start = (40 + silent_minutes) * 60
    alerts = run_detector(make_detector(Flood, frames_floor=200), [*busy, *frames(start, 700, 0.05)])
    assert len(alerts) == 1  # the silence decayed the baseline: 700 is a flood again
    assert alerts[0].evidence["baseline"] == pytest.approx(100 * 0.9**silent_minutes, rel=0.2, abs=1e-6)
    assert alerts[0].evidence["baseline_buckets"] == 40


def test_huge_flood_escalates_to_high() -> None:
    events = frames(0, 6000, 0.005)
    alerts = run_detector(make_detector(Flood), events)
    assert [a.severity for a in alerts] == [Severity.HIGH]
    assert alerts[0].ts == at(seconds=599 * 0.005)


def test_csms_side_flood_is_its_own_metric() -> None:
    events = frames(0, 700, 0.05, direction=Direction.CSMS)
    alerts = run_detector(make_detector(Flood), events)
    assert [a.evidence["metric"] for a in alerts] == ["csms_frames"]


@pytest.mark.parametrize("ocpp", VERSIONS)
def test_reconnect_storm_and_boot_loop(ocpp: str) -> None:
    connects = [an_event(ConnectionEvent, ts=at(seconds=i * 30), event="connect") for i in range(12)]
    boots = [
        an_event(FrameSeen, ts=at(seconds=i * 30 + 1), ocpp=ocpp, action="BootNotification", message_type=2)
        for i in range(12)
    ]
    alerts = run_detector(make_detector(Flood), sorted([*connects, *boots], key=lambda e: e.ts))
    assert len(alerts) == 1  # one station, one flood incident, whichever rates it drives up
    alert = alerts[0]
    assert (alert.ts, alert.evidence["metric"]) == (at(seconds=4 * 30 + 1), "boots")  # fifth boot
    assert alert.count == 2
    assert alert.evidence["merged"][0]["metric"] == "reconnects"
    assert alert.last_ts == at(seconds=9 * 30)  # tenth connect


def test_daily_reconnects_and_single_boot_are_silent() -> None:
    events = []
    for day in range(5):
        events.append(an_event(ConnectionEvent, ts=at(day * 1440), event="connect"))
        events.append(an_event(FrameSeen, ts=at(day * 1440, seconds=1), action="BootNotification"))
        events.append(an_event(ConnectionEvent, ts=at(day * 1440 + 1), event="disconnect"))
    assert run_detector(make_detector(Flood), events) == []


@pytest.mark.parametrize("cls", DETECTORS)
def test_state_is_bounded(cls: type) -> None:
    det = make_detector(cls, DetectorContext(limits=Limits(max_keys=20, ttl_s=600)))
    for i in range(300):
        for ev in (
            an_event(ProtocolViolation, ts=at(i), station=f"X{i}", reason="schema"),
            an_event(FrameSeen, ts=at(i), station=f"X{i}"),
        ):
            if type(ev) in det.consumes:
                list(det.process(ev))
    assert det.state_size() <= 20


# ---------------------------------------------------------------------------------- end to end (real normaliser)


def scan(lines: list[dict[str, Any]]) -> list[Any]:
    """Raw capture lines through the real pipeline (normaliser, engine) with the protocol detectors only."""
    import orjson

    from chargeguard.detectors.registry import build_detectors
    from chargeguard.pipeline import ScanPipeline
    from chargeguard.settings import Settings
    from chargeguard.sources.capture import parse_line
    from chargeguard.vault.pseudonyms import Pseudonymiser

    alerts: list[Any] = []
    detectors = build_detectors(DetectorContext(), classes=DETECTORS)
    pipeline = ScanPipeline(
        Settings(), Pseudonymiser({1: bytes(range(32))}, 1), detectors=detectors, on_close=alerts.append
    )
    for number, line in enumerate(lines, start=1):
        pipeline.feed(parse_line(orjson.dumps(line), f"test:{number}"))
    pipeline.finish()
    return sorted(alerts, key=lambda a: (a.ts, a.kind))


def wire_ts(seconds: int) -> str:
    return f"2026-03-01T08:{seconds // 60:02d}:{seconds % 60:02d}.000Z"


@pytest.mark.parametrize("ocpp", VERSIONS)
def test_end_to_end_malformed_and_reconnect_storm(ocpp: str) -> None:
    lines: list[dict[str, Any]] = [
        {
            "ts": wire_ts(0),
            "station": "CP-9",
            "ocpp": ocpp,
            "from": "station",
            "frame": [3, "never-asked", {}],
        },
        {
            "ts": wire_ts(1),
            "station": "CP-9",
            "ocpp": ocpp,
            "from": "station",
            "frame": [2, "h1", "Heartbeat", {}],
        },
        {
            "ts": wire_ts(1),
            "station": "CP-9",
            "ocpp": ocpp,
            "from": "csms",
            "frame": [3, "h1", {"currentTime": wire_ts(1)}],
        },
    ]
    for i in range(12):
        lines.append(
            {"ts": wire_ts(10 + i * 20), "station": "CP-7", "event": "connect", "remote": "198.51.100.7:1"}
        )
        lines.append({"ts": wire_ts(15 + i * 20), "station": "CP-7", "event": "disconnect"})
    alerts = scan(lines)
    assert [(a.kind, a.station, a.ts) for a in alerts] == [
        ("ocpp.malformed", "CP-9", at()),
        ("ocpp.flood", "CP-7", at(seconds=10 + 9 * 20)),
    ]
    assert alerts[0].evidence["reasons_total"] == {"orphan_result": 1}


# ------------------------------------------------------------------------- bucketing without float conversion

_T0 = datetime(2026, 3, 1, tzinfo=UTC)


@given(
    bucket_s=st.sampled_from([60.0, 600.0, 0.5, 7.3, 86_400.0, 1e-3]),
    offsets_us=st.lists(
        st.integers(min_value=-(10**12), max_value=10**12)
        | st.integers(min_value=-3, max_value=3).map(lambda k: k * 60_000_000 + 1)  # next to minute edges
        | st.integers(min_value=-3, max_value=3).map(lambda k: k * 60_000_000 - 1),
        min_size=1,
        max_size=40,
    ),
    ordered=st.booleans(),
)
@settings(max_examples=200, deadline=None)
def test_bucket_clock_agrees_with_float_arithmetic(
    bucket_s: float, offsets_us: list[int], ordered: bool
) -> None:
    clock = BucketClock(bucket_s)
    times = [_T0 + timedelta(microseconds=us) for us in (sorted(offsets_us) if ordered else offsets_us)]
    for ts in times:
        assert clock.index(ts) == int(ts.timestamp() // bucket_s)


def test_bucket_clock_survives_the_end_of_time() -> None:
    clock = BucketClock(600.0)
    late = datetime.max.replace(tzinfo=UTC)
    assert clock.index(late) == int(late.timestamp() // 600.0)
    assert clock.index(_T0) == int(_T0.timestamp() // 600.0)


def test_flood_bucket_edge_is_exact_to_the_microsecond() -> None:
    edge = at(1)  # a minute boundary
    tick = timedelta(microseconds=1)
    inside = [an_event(FrameSeen, ts=edge - tick * (600 - i)) for i in range(600)]  # all before the edge
    alerts = run_detector(make_detector(Flood), inside)
    assert len(alerts) == 1
    assert alerts[0].ts == edge - tick
    split = [
        *(an_event(FrameSeen, ts=edge - tick * (599 - i)) for i in range(599)),
        an_event(FrameSeen, ts=edge),
    ]
    assert run_detector(make_detector(Flood), split) == []  # the last frame opens the next minute


def test_flood_frame_out_of_order_reopens_its_bucket() -> None:
    # a late frame from the previous minute restarts the count, as the float path always did
    events = [*frames(60, 599, 0.05), an_event(FrameSeen, ts=at(seconds=59)), *frames(95, 5, 0.01)]
    assert run_detector(make_detector(Flood), sorted(events, key=lambda e: e.ts)) != []
    assert run_detector(make_detector(Flood), events) == []
