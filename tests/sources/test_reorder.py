"""Reordering within the lateness: records come out in time order, late ones are passed on and counted."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from chargeguard.sources.reorder import Reorderer, reorder

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def _key(item: tuple[datetime, int]) -> datetime:
    return item[0]


@given(st.lists(st.integers(0, 10_000), max_size=300), st.integers(0, 30))
@settings(max_examples=200, deadline=None)
def test_jitter_within_lateness_comes_out_sorted(offsets: list[int], jitter: int) -> None:
    rng = random.Random(len(offsets))
    items = sorted((T0 + timedelta(seconds=o), i) for i, o in enumerate(offsets))
    shuffled = sorted(items, key=lambda it: it[0].timestamp() + rng.uniform(0, jitter))
    out = list(reorder(shuffled, jitter + 1, _key))
    assert sorted(out) == sorted(items)  # nothing lost or duplicated
    assert [x[0] for x in out] == sorted(x[0] for x in out)


def test_records_later_than_the_lateness_are_released_at_once_and_counted() -> None:
    buffer: Reorderer[tuple[datetime, int]] = Reorderer(5.0, _key)
    released = []
    for second in (0, 10, 20, 3, 30):  # 3 arrives after 20 has pushed the horizon to 15
        released += buffer.push((T0 + timedelta(seconds=second), second))
    released += list(buffer.drain())
    assert [s for _, s in released] == [0, 10, 3, 20, 30]
    assert buffer.late == 1


def test_zero_lateness_passes_straight_through() -> None:
    items = [(T0 + timedelta(seconds=s), s) for s in (5, 1, 3)]
    assert list(reorder(items, 0, _key)) == items


def test_epoch_seconds_keys_order_like_datetimes() -> None:
    times = [T0 + timedelta(seconds=s) for s in (0, 3, 1, 2, 10, 9, 30)]
    items = [(t, i) for i, t in enumerate(times)]
    by_dt = list(reorder(items, 5.0, _key))
    by_t = list(reorder(items, 5.0, lambda item: item[0].timestamp()))
    assert by_dt == by_t
    assert [x[0] for x in by_t] == sorted(times)


@given(st.lists(st.integers(0, 20), max_size=200))
@settings(max_examples=200, deadline=None)
def test_equal_times_keep_their_arrival_order(seconds: list[int]) -> None:
    # times from a small range: many equal, arriving out of order within the lateness
    arrivals = [(T0 + timedelta(seconds=s), i) for i, s in enumerate(seconds)]
    out = list(reorder(arrivals, 60.0, _key))
    assert out == sorted(arrivals, key=lambda item: item[0])  # a stable sort: arrival order among equals
