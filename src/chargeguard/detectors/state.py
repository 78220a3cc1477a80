"""Bounded, keyed, event-time state for detectors.

Station ids, tokens and message ids come from attackers, so every per-key map a detector keeps is bounded in both
key count (least recently touched keys are evicted first) and age (keys untouched for ``ttl_s`` of event time are
dropped). Evictions are counted so that an operator can see when limits bite.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Generic, TypeVar

# the last datetime converted to epoch seconds and its value: the events of one frame share their ``ts`` object,
# and every detector's state is touched with it, so one conversion serves them all (identity, not equality: the
# reference held here keeps the object alive, so its id cannot be reused)
_LAST: list[object] = [None, 0.0]

K = TypeVar("K")
V = TypeVar("V")


class BoundedState(Generic[K, V]):
    """An LRU map with a key limit and an event-time TTL."""

    __slots__ = ("_items", "_next_sweep", "_touch_s", "evictions", "max_keys", "ttl_s")

    def __init__(self, max_keys: int = 100_000, ttl_s: float = 86_400.0) -> None:
        if max_keys < 1:
            raise ValueError("max_keys must be positive")
        self.max_keys = max_keys
        self.ttl_s = ttl_s
        self._items: OrderedDict[K, tuple[float, V]] = OrderedDict()
        self.evictions = 0
        self._next_sweep = float("-inf")
        # a key touched again within this much event time keeps its old stamp (saves the reordering)
        self._touch_s = min(60.0, ttl_s / 1000)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def get(self, key: K) -> V | None:
        item = self._items.get(key)
        return None if item is None else item[1]

    def put(self, key: K, value: V, ts: datetime) -> None:
        """Store ``value`` for ``key`` as touched at event time ``ts``, then enforce the bounds."""
        last = _LAST
        if ts is last[0]:
            now: float = last[1]  # type: ignore[assignment]
        else:
            now = ts.timestamp()
            last[0] = ts
            last[1] = now
        self.put_at(key, value, now)

    def put_at(self, key: K, value: V, now: float) -> None:
        """``put`` with the event time in epoch seconds."""
        items = self._items
        if key in items:
            items.move_to_end(key)
        items[key] = (now, value)
        self._expire(now)

    def setdefault(self, key: K, factory: Callable[[], V], ts: datetime) -> V:
        """Return the value for ``key`` (touching it), creating it with ``factory`` when absent."""
        last = _LAST
        if ts is last[0]:
            now: float = last[1]  # type: ignore[assignment]
        else:
            now = ts.timestamp()
            last[0] = ts
            last[1] = now
        return self.setdefault_at(key, factory, now)

    def setdefault_at(self, key: K, factory: Callable[[], V], now: float) -> V:
        """``setdefault`` with the event time in epoch seconds."""
        items = self._items
        item = items.get(key)
        if item is not None:
            value = item[1]
            if now - item[0] < self._touch_s:
                return value  # touched moments ago: recency and age are still right within _touch_s
            items.move_to_end(key)
            items[key] = (now, value)
        else:
            value = factory()
            items[key] = (now, value)
        self._expire(now)
        return value

    def pop(self, key: K) -> V | None:
        item = self._items.pop(key, None)
        return None if item is None else item[1]

    def _expire(self, now: float) -> None:
        items = self._items
        while len(items) > self.max_keys:
            items.popitem(last=False)
            self.evictions += 1
        if now < self._next_sweep:
            return
        # age-based expiry runs at most every 1/64 of the TTL of event time: cheap, and never late by more
        self._next_sweep = now + self.ttl_s / 64
        horizon = now - self.ttl_s
        while items:
            first = next(iter(items.values()))
            if first[0] >= horizon:
                break
            items.popitem(last=False)
            self.evictions += 1

    def items(self) -> Iterator[tuple[K, V]]:
        for key, (_, value) in self._items.items():
            yield key, value

    def values(self) -> Iterator[V]:
        for _, value in self._items.values():
            yield value
