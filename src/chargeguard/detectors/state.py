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

K = TypeVar("K")
V = TypeVar("V")


class BoundedState(Generic[K, V]):
    """An LRU map with a key limit and an event-time TTL.

    Values and touch times live in two maps: ``get`` - the most frequent call, several per frame - is the values
    dict's own C method, with no Python frame; the touch times keep the LRU order.
    """

    __slots__ = ("_next_sweep", "_stamps", "_touch_s", "_values", "evictions", "get", "max_keys", "ttl_s")

    def __init__(self, max_keys: int = 100_000, ttl_s: float = 86_400.0) -> None:
        if max_keys < 1:
            raise ValueError("max_keys must be positive")
        self.max_keys = max_keys
        self.ttl_s = ttl_s
        self._values: dict[K, V] = {}
        self._stamps: OrderedDict[K, float] = OrderedDict()  # least recently touched first
        self.get: Callable[[K], V | None] = self._values.get
        """The value for a key, or None (does not touch it)."""
        self.evictions = 0
        self._next_sweep = float("-inf")
        # a key touched again within this much event time keeps its old stamp (saves the reordering)
        self._touch_s = min(60.0, ttl_s / 1000)

    def __len__(self) -> int:
        return len(self._values)

    def __contains__(self, key: object) -> bool:
        return key in self._values

    def put(self, key: K, value: V, ts: datetime) -> None:
        """Store ``value`` for ``key`` as touched at event time ``ts``, then enforce the bounds."""
        self.put_at(key, value, ts.timestamp())

    def put_at(self, key: K, value: V, now: float) -> None:
        """``put`` with the event time in epoch seconds."""
        stamps = self._stamps
        if key in stamps:
            stamps.move_to_end(key)
        stamps[key] = now
        self._values[key] = value
        if now >= self._next_sweep or len(stamps) > self.max_keys:  # checked here: a call only when due
            self._expire(now)

    def setdefault(self, key: K, factory: Callable[[], V], ts: datetime) -> V:
        """Return the value for ``key`` (touching it), creating it with ``factory`` when absent."""
        return self.setdefault_at(key, factory, ts.timestamp())

    def setdefault_at(self, key: K, factory: Callable[[], V], now: float) -> V:
        """``setdefault`` with the event time in epoch seconds."""
        stamps = self._stamps
        stamp = stamps.get(key)
        if stamp is not None:
            value = self._values[key]
            if now - stamp < self._touch_s:
                return value  # touched moments ago: recency and age are still right within _touch_s
            stamps.move_to_end(key)
            stamps[key] = now
        else:
            value = factory()
            stamps[key] = now
            self._values[key] = value
        if now >= self._next_sweep or len(stamps) > self.max_keys:
            self._expire(now)
        return value

    def pop(self, key: K) -> V | None:
        if self._stamps.pop(key, None) is None:
            return None
        return self._values.pop(key)

    def _expire(self, now: float) -> None:
        stamps = self._stamps
        values = self._values
        while len(stamps) > self.max_keys:
            del values[stamps.popitem(last=False)[0]]
            self.evictions += 1
        if now < self._next_sweep:
            return
        # age-based expiry runs at most every 1/64 of the TTL of event time: cheap, and never late by more
        self._next_sweep = now + self.ttl_s / 64
        horizon = now - self.ttl_s
        while stamps:
            key, stamp = next(iter(stamps.items()))
            if stamp >= horizon:
                break
            del stamps[key]
            del values[key]
            self.evictions += 1

    def items(self) -> Iterator[tuple[K, V]]:
        values = self._values
        for key in self._stamps:
            yield key, values[key]

    def values(self) -> Iterator[V]:
        values = self._values
        for key in self._stamps:
            yield values[key]
