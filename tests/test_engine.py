"""The engine: routing, merging findings into alerts, deterministic ids, isolation of failing detectors."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import Any, ClassVar

from chargeguard.allowlist import AllowEntry, AllowList
from chargeguard.detectors.base import Detector, DetectorInfo
from chargeguard.engine import Engine
from chargeguard.events import Alert, Event, FrameSeen, Severity
from chargeguard.testing import BASE_TS, an_event, at


class EveryFrame(Detector[Any]):
    """Flags every frame, one incident per station."""

    info: ClassVar[DetectorInfo] = DetectorInfo("every_frame", ("test.frame",), "test", Severity.LOW)
    consumes: ClassVar[tuple[type[Any], ...]] = (FrameSeen,)

    def process(self, event: Event) -> Iterable[Any]:
        assert isinstance(event, FrameSeen)
        sev = Severity.HIGH if event.action == "Reset" else Severity.LOW
        yield self.finding(
            "test.frame",
            ts=event.ts,
            incident=event.station,
            summary="frame",
            severity=sev,
            station=event.station,
            evidence={"action": event.action},
        )


class Broken(Detector[Any]):
    """Always raises."""

    info: ClassVar[DetectorInfo] = DetectorInfo("broken", ("test.broken",), "test", Severity.LOW)
    consumes: ClassVar[tuple[type[Any], ...]] = (FrameSeen,)

    def process(self, event: Event) -> Iterable[Any]:
        raise RuntimeError("boom")


def _engine(**kw: Any) -> tuple[list[Alert], list[Alert], Engine]:
    """An engine with EveryFrame and Broken, and the alerts it opens and closes."""
    opened: list[Alert] = []
    closed: list[Alert] = []
    from chargeguard.detectors.base import DetectorContext, NoConfig

    engine = Engine(
        [EveryFrame(NoConfig(), DetectorContext()), Broken(NoConfig(), DetectorContext())],
        on_open=opened.append,
        on_close=closed.append,
        **kw,
    )
    return opened, closed, engine


def _run(events: list[Event], **kw: Any) -> tuple[list[Alert], list[Alert], Engine]:
    opened, closed, engine = _engine(**kw)
    for event in events:
        engine.process(event)
    engine.finish()
    return opened, closed, engine


def test_findings_of_one_incident_merge_into_one_alert() -> None:
    frames: list[Event] = [
        an_event(FrameSeen, ts=at(i), action="Reset" if i == 3 else "Heartbeat") for i in range(5)
    ]
    opened, closed, engine = _run(frames)
    assert len(opened) == 1 and len(closed) == 1
    alert = closed[0]
    assert alert.ts == BASE_TS and alert.last_ts == at(4) and alert.count == 5
    assert alert.severity == Severity.HIGH  # worst severity wins
    assert alert.status == "closed" and opened[0].status == "open"
    assert engine.stats.detector_failures["broken"] == 5  # isolated, counted, others went on


def test_quiet_incident_closes_and_a_new_one_opens() -> None:
    frames: list[Event] = [
        an_event(FrameSeen, ts=at(0)),
        an_event(FrameSeen, ts=at(0) + timedelta(hours=3)),
        an_event(FrameSeen, ts=at(0) + timedelta(hours=3, minutes=2)),
    ]
    _, closed, _ = _run(frames, merge_gap_s=3600)
    assert [a.count for a in closed] == [1, 2]
    assert closed[0].id != closed[1].id


def test_ids_are_deterministic() -> None:
    frames: list[Event] = [an_event(FrameSeen, ts=at(i), station=f"CP-{i % 3}") for i in range(9)]
    first = [a.id for a in _run(frames)[1]]
    second = [a.id for a in _run(frames)[1]]
    assert first == second and len(set(first)) == 3


def test_allow_list_suppresses_until_expiry() -> None:
    entry = AllowEntry("test.*", "station", "CP-0001", expires=at(2), reason="test station", added_by="alice")
    frames: list[Event] = [an_event(FrameSeen, ts=at(i)) for i in range(4)]
    _, closed, engine = _run(frames, allowlist=AllowList([entry]))
    assert engine.stats.suppressed["test.frame"] == 2
    assert len(closed) == 1 and closed[0].ts == at(2)


def test_open_incidents_are_bounded() -> None:
    frames: list[Event] = [an_event(FrameSeen, ts=at(0), station=f"CP-{i}") for i in range(50)]
    _, closed, engine = _run(frames, max_open=10)
    assert len(closed) == 50 and engine.stats.forced_closes == 40


def test_a_batch_gives_the_same_alerts_in_the_same_order_as_one_event_at_a_time() -> None:
    # detector by detector over a batch, then replayed: incidents that go quiet mid-batch close at the same point
    events: list[Event] = [
        an_event(
            FrameSeen,
            ts=at(minutes=7 * i + (300 if i >= 150 else 0)),
            station=f"CP-{i % 3}" if i < 100 else f"CP-{i % 2}",  # CP-2 goes quiet: a sweep closes it
            action="Reset" if i % 17 == 0 else "Heartbeat",
        )
        for i in range(300)
    ]
    opened, closed, engine = _run(events, merge_gap_s=1800.0)
    batch_opened, batch_closed, batched = _engine(merge_gap_s=1800.0)
    batched.process_many(events[:200])
    batched.process_many(events[200:])
    batched.finish()
    assert len(closed) > 3 and batch_closed == closed and batch_opened == opened
    assert batched.stats == engine.stats
