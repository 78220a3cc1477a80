"""Reordering of capture records by transport time within a bounded lateness.

Captures merged from several gateway processes, or written by systems that flush per connection, are nearly but not
exactly in time order. Records are held in a heap until the newest time seen is ``lateness_s`` past them, then
released in (ts, arrival) order. A record later than the lateness is released at once and counted as late; it is
never dropped. With ``lateness_s == 0`` records pass straight through.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Generic, TypeVar

T = TypeVar("T")


class Reorderer(Generic[T]):
    def __init__(
        self, lateness_s: float, key: Callable[[T], datetime | None], max_buffer: int = 1_000_000
    ) -> None:
        self.lateness_s = lateness_s
        self.key = key
        self.max_buffer = max_buffer
        self.late = 0
        self._heap: list[tuple[float, int, T]] = []
        self._seq = 0
        self._newest = float("-inf")
        self._released = float("-inf")

    def push(self, item: T) -> Iterator[T]:
        """Add one record; yield every record that is now safe to release."""
        ts = self.key(item)
        if ts is None or self.lateness_s <= 0:
            yield item
            return
        t = ts.timestamp()
        if t < self._released:
            self.late += 1
            yield item
            return
        self._seq += 1
        heapq.heappush(self._heap, (t, self._seq, item))
        if t > self._newest:
            self._newest = t
        horizon = self._newest - self.lateness_s
        heap = self._heap
        while heap and (heap[0][0] <= horizon or len(heap) > self.max_buffer):
            t0, _, ready = heapq.heappop(heap)
            self._released = max(self._released, t0)
            yield ready

    def drain(self) -> Iterator[T]:
        while self._heap:
            t0, _, ready = heapq.heappop(self._heap)
            self._released = max(self._released, t0)
            yield ready


def reorder(items: Iterable[T], lateness_s: float, key: Callable[[T], datetime | None]) -> Iterator[T]:
    buffer: Reorderer[T] = Reorderer(lateness_s, key)
    for item in items:
        yield from buffer.push(item)
    yield from buffer.drain()
