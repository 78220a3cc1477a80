"""Rendering decisions: minute-resolution widening, no overlap the records do not show, tokens, transaction ids."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from chargeguard.sources.datasets.records import SessionRecord
from chargeguard.sources.datasets.render import (
    RenderOptions,
    assign_transaction_ids,
    derive_token,
    session_times,
)

T0 = datetime(2024, 5, 1, 9, 7, tzinfo=UTC)


def rec(
    key: str, start_min: int, end_min: int, *, connector: int = 1, user: str | None = None
) -> SessionRecord:
    return SessionRecord(
        "t", "S", connector, T0 + timedelta(minutes=start_min), T0 + timedelta(minutes=end_min), 1000.0, user,
        key, f"f:{key}",
    )  # fmt: skip


def test_widening_stays_inside_the_recorded_minutes() -> None:
    ((start, end),) = session_times([rec("1", 0, 3)], RenderOptions(seed=1))
    assert T0 <= start < T0 + timedelta(seconds=6)
    assert T0 + timedelta(minutes=3, seconds=48) <= end < T0 + timedelta(minutes=4)


def test_back_to_back_sessions_do_not_overlap_on_the_wire() -> None:
    sessions = [
        rec("1", 0, 30),
        rec("2", 30, 60),
        rec("3", 45, 50, connector=2, user="u"),
        rec("4", 50, 70, connector=3, user="u"),
    ]
    times = session_times(sessions, RenderOptions(seed=3))
    lead = timedelta(seconds=50)  # a station plugs in (2.0.1: may start the transaction) up to 45 s early
    assert times[0][1] + lead <= times[1][0]  # same connector, end minute == next start minute
    assert times[2][1] + lead <= times[3][0]  # same user on two connectors
    assert times[0][1] > times[0][0]
    # zero-length attempts in consecutive minutes (Dundee 3816223, 3816228, ...) stay apart too
    attempts = session_times([rec(str(k), k, k) for k in range(4)], RenderOptions(seed=2))
    for (_s1, e1), (s2, _e2) in itertools.pairwise(attempts):
        assert e1 + lead <= s2
    assert all(s <= e for s, e in attempts)
    # a zero-length attempt and a session starting in the same minute (Perth 50277, 12/12/2016 14:27)
    same_minute = session_times([rec("1", 0, 1), rec("2", 0, 0)], RenderOptions(seed=5))
    assert same_minute[1][1] + lead <= same_minute[0][0]


def test_overlapping_records_stay_overlapping() -> None:
    times = session_times([rec("1", 0, 30), rec("2", 20, 60)], RenderOptions(seed=1))
    assert times[0][1] > times[1][0]


def test_no_widening_when_resolution_is_zero_or_end_before_start() -> None:
    exact = session_times([rec("1", 0, 3)], RenderOptions(time_resolution_s=0))
    assert exact == [(T0, T0 + timedelta(minutes=3))]
    backwards = session_times([rec("1", 10, 3)], RenderOptions(seed=1))
    assert backwards == [(T0 + timedelta(minutes=10), T0 + timedelta(minutes=3))]


def test_tokens_and_transaction_ids() -> None:
    token = derive_token(1, "dundee", "603522H")
    assert len(token) == 14 and int(token, 16) >= 0 and "603522" not in token
    assert token == derive_token(1, "dundee", "603522H") != derive_token(2, "dundee", "603522H")
    sessions = [rec("77", 0, 1), rec("77", 2, 3), rec("abc", 4, 5), rec("12", 6, 7)]
    assert assign_transaction_ids(sessions) == ["13", "14", "15", "12"]  # duplicates get ids above the top
