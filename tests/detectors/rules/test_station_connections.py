"""station.duplicate_connection: a disconnect naming no address while several connections are open."""

from __future__ import annotations

from typing import Any

from chargeguard.detectors.rules.station_connections import DuplicateConnection
from chargeguard.events import ConnectionEvent, Direction, FrameSeen
from chargeguard.testing import an_event, at, make_detector, run_detector

OWN = "198.51.100.7:5000"
TWIN = "100.102.177.153:14380"
THIRD = "203.0.113.66:6000"
DAY = 24 * 60.0


def conn(minutes: float, event: str, remote: str | None = OWN, **kw: Any) -> ConnectionEvent:
    return an_event(ConnectionEvent, ts=at(minutes), event=event, remote=remote, **kw)


def frame(minutes: float) -> FrameSeen:
    return an_event(FrameSeen, ts=at(minutes), direction=Direction.STATION)


def twin_came_and_left() -> list[Any]:
    """The station on its own line; its identity also connects from a mobile address, then one of them leaves."""
    return [
        conn(0, "connect", remote=OWN),
        frame(80),
        conn(81, "connect", remote=TWIN),  # the twin: a second live connection
        frame(90),
        conn(96, "disconnect", remote=None),  # which one closed, the line does not say
        frame(200),
        frame(3 * DAY),
    ]


def test_a_reconnect_from_either_address_after_an_unnamed_disconnect_is_not_a_duplicate() -> None:
    own_again = [*twin_came_and_left(), conn(11 * DAY, "connect", remote="198.51.100.7:49891")]
    alerts = run_detector(make_detector(DuplicateConnection), own_again)
    assert [a.ts for a in alerts] == [at(81)]  # the twin itself, nothing eleven days later
    twin_again = [*twin_came_and_left(), conn(11 * DAY, "connect", remote="100.102.177.153:2000")]
    assert [a.ts for a in run_detector(make_detector(DuplicateConnection), twin_again)] == [at(81)]


def test_a_third_address_after_an_unnamed_disconnect_still_fires() -> None:
    events = [*twin_came_and_left(), frame(11 * DAY - 0.5), conn(11 * DAY, "connect", remote=THIRD)]
    alerts = run_detector(make_detector(DuplicateConnection), events)
    assert [a.ts for a in alerts] == [at(81), at(11 * DAY)]
    assert alerts[1].evidence["first_connection_active"] is True


def test_a_named_disconnect_leaves_no_doubt() -> None:
    # the twin's own disconnect names it: the station's connection is still open, a new address is a duplicate
    named = [*twin_came_and_left()[:4], conn(96, "disconnect", remote=TWIN), frame(200)]
    twin_back = [*named, frame(299.5), conn(300, "connect", remote="100.102.177.153:2000")]
    assert [a.ts for a in run_detector(make_detector(DuplicateConnection), twin_back)] == [at(81), at(300)]
    # the station's own line closed by name: the twin holds the identity, the station coming back is a duplicate
    own_closed = [*twin_came_and_left()[:4], conn(96, "disconnect", remote=OWN), frame(200)]
    own_back = [*own_closed, conn(300, "connect", remote=OWN)]
    assert [a.ts for a in run_detector(make_detector(DuplicateConnection), own_back)] == [at(81), at(300)]


def test_one_open_connection_and_an_unnamed_disconnect_is_plain() -> None:
    events = [
        conn(0, "connect", remote=OWN),
        conn(10, "disconnect", remote=None),
        conn(20, "connect", remote=TWIN),
    ]
    assert run_detector(make_detector(DuplicateConnection), events) == []
