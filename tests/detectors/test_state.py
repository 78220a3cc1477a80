"""BoundedState: LRU and TTL bounds, touch semantics, and the epoch-seconds variants agreeing with datetimes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from chargeguard.detectors.state import BoundedState

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def test_least_recently_touched_key_is_evicted_first() -> None:
    state: BoundedState[str, int] = BoundedState(max_keys=2, ttl_s=86_400.0)
    state.put("a", 1, T0)
    state.put("b", 2, T0 + timedelta(seconds=1))
    state.put("a", 3, T0 + timedelta(seconds=2))  # a is now the most recent
    state.put("c", 4, T0 + timedelta(seconds=3))
    assert state.get("b") is None
    assert state.get("a") == 3 and state.get("c") == 4
    assert len(state) == 2 and state.evictions == 1
    assert list(state.items()) == [("a", 3), ("c", 4)]
    assert list(state.values()) == [3, 4]


def test_keys_expire_after_ttl_of_event_time() -> None:
    state: BoundedState[str, int] = BoundedState(max_keys=100, ttl_s=640.0)
    state.put("old", 1, T0)
    state.put("new", 2, T0 + timedelta(seconds=600))
    assert "old" in state
    state.put("later", 3, T0 + timedelta(seconds=700))  # old is 700 s untouched: past the TTL
    assert "old" not in state and state.get("old") is None
    assert state.get("new") == 2 and state.evictions == 1


def test_get_does_not_touch_and_setdefault_does() -> None:
    state: BoundedState[str, list[int]] = BoundedState(max_keys=2, ttl_s=86_400.0)
    first = state.setdefault("a", list, T0)
    assert state.setdefault("a", list, T0 + timedelta(seconds=1)) is first  # the same value, not a new one
    state.setdefault("b", list, T0 + timedelta(seconds=2))
    state.get("a")  # reading does not make "a" recent
    state.setdefault("c", list, T0 + timedelta(seconds=3))
    assert "a" not in state and "b" in state and "c" in state


def test_pop_removes_the_key_from_both_maps() -> None:
    state: BoundedState[str, int] = BoundedState(max_keys=10)
    state.put("a", 1, T0)
    assert state.pop("a") == 1
    assert state.pop("a") is None
    assert len(state) == 0 and state.get("a") is None and list(state.items()) == []
    state.put("a", 2, T0)  # can come back
    assert state.get("a") == 2


@given(st.lists(st.tuples(st.integers(0, 9), st.integers(0, 5_000)), max_size=200))
@settings(max_examples=100, deadline=None)
def test_epoch_variants_behave_like_the_datetime_ones(ops: list[tuple[int, int]]) -> None:
    by_dt: BoundedState[int, int] = BoundedState(max_keys=4, ttl_s=3_000.0)
    by_t: BoundedState[int, int] = BoundedState(max_keys=4, ttl_s=3_000.0)
    clock = 0
    for i, (key, step) in enumerate(ops):
        clock += step
        ts = T0 + timedelta(milliseconds=clock)
        if i % 3:
            by_dt.put(key, i, ts)
            by_t.put_at(key, i, ts.timestamp())
        else:
            by_dt.setdefault(key, lambda: -1, ts)
            by_t.setdefault_at(key, lambda: -1, ts.timestamp())
        assert list(by_dt.items()) == list(by_t.items())
        assert len(by_dt) <= 4
    assert by_dt.evictions == by_t.evictions
