"""Reordering of capture records by transport time within a bounded lateness.

Captures merged from several gateway processes, or written by systems that flush per connection, are nearly but not
exactly in time order. The key gives a record's time as a datetime or as epoch seconds (a capture record's
``t``: no conversion per record). Records are held until the newest time seen is ``lateness_s`` past them, then
released in (ts, arrival) order. A record later than the lateness is released at once and counted as late; it is
never dropped. With ``lateness_s == 0`` records pass straight through.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Generic, TypeVar

T = TypeVar("T")

_NOTHING: tuple[()] = ()


class Reorderer(Generic[T]):
    def __init__(
        self, lateness_s: float, key: Callable[[T], datetime | float | None], max_buffer: int = 1_000_000
    ) -> None:
        self.lateness_s = lateness_s
        self.key = key
        self.max_buffer = max_buffer
        self.late = 0
        # records and their times in two parallel lists sorted by time (equal times in arrival order), consumed
        # from _head: captures are nearly in order, so an append is the usual insert; no tuple per record
        self._items: list[T] = []
        self._times: list[float] = []
        self._head = 0
        self._newest = float("-inf")
        self._released = float("-inf")

    def push(self, item: T) -> list[T] | tuple[()]:
        """Add one record; return every record that is now safe to release (in order)."""
        ts = self.key(item)
        if ts is None:
            return [item]
        return self.push_at(item, ts if type(ts) is float else ts.timestamp())  # type: ignore[union-attr]

    def push_at(self, item: T, t: float) -> list[T] | tuple[()]:
        """``push`` with the record's time given in epoch seconds (the key is not called).

        The per-line path of a scan: an in-order record is appended, and the records the newest time has moved
        past the lateness are released (usually one); nothing ready returns a shared empty tuple.
        """
        if self.lateness_s <= 0:
            return [item]
        if t < self._released:
            self.late += 1
            return [item]
        items = self._items
        times = self._times
        head = self._head
        if len(times) == head or t >= times[-1]:
            items.append(item)
            times.append(t)
        else:  # after the records of equal time: arrival order among equals
            at = bisect.bisect_right(times, t, lo=head)
            items.insert(at, item)
            times.insert(at, t)
        end = len(times)
        if t > self._newest:
            self._newest = t
        horizon = self._newest - self.lateness_s
        if times[head] > horizon and end - head <= self.max_buffer:
            return _NOTHING
        ready: list[T] = []
        released = self._released
        while head < end:
            t0 = times[head]
            if t0 > horizon and end - head <= self.max_buffer:
                break
            ready.append(items[head])
            if t0 > released:
                released = t0
            head += 1
        self._released = released
        if head > 4096:
            del items[:head]
            del times[:head]
            head = 0
        self._head = head
        return ready

    def drain(self) -> Iterator[T]:
        items = self._items
        times = self._times
        for index in range(self._head, len(items)):
            t0 = times[index]
            if t0 > self._released:
                self._released = t0
            yield items[index]
        items.clear()
        times.clear()
        self._head = 0


def reorder(
    items: Iterable[T], lateness_s: float, key: Callable[[T], datetime | float | None]
) -> Iterator[T]:
    buffer: Reorderer[T] = Reorderer(lateness_s, key)
    for item in items:
        yield from buffer.push(item)
    yield from buffer.drain()
