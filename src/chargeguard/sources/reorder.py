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


class Reorderer(Generic[T]):
    def __init__(
        self, lateness_s: float, key: Callable[[T], datetime | float | None], max_buffer: int = 1_000_000
    ) -> None:
        self.lateness_s = lateness_s
        self.key = key
        self.max_buffer = max_buffer
        self.late = 0
        # a sorted list consumed from _head: captures are nearly in order, so an append is the usual insert
        self._buf: list[tuple[float, int, T]] = []
        self._head = 0
        self._seq = 0
        self._newest = float("-inf")
        self._released = float("-inf")

    def push(self, item: T) -> list[T]:
        """Add one record; return every record that is now safe to release (in order)."""
        ts = self.key(item)
        if ts is None:
            return [item]
        return self.push_at(item, ts if type(ts) is float else ts.timestamp())  # type: ignore[union-attr]

    def push_at(self, item: T, t: float) -> list[T]:
        """``push`` with the record's time given in epoch seconds (the key is not called)."""
        if self.lateness_s <= 0:
            return [item]
        if t < self._released:
            self.late += 1
            return [item]
        self._seq += 1
        buf = self._buf
        entry = (t, self._seq, item)
        if len(buf) == self._head or t >= buf[-1][0]:
            buf.append(entry)
        else:
            bisect.insort(buf, entry, lo=self._head)  # (t, seq) is unique, so items are never compared
        if t > self._newest:
            self._newest = t
        horizon = self._newest - self.lateness_s
        head = self._head
        end = len(buf)
        if buf[head][0] > horizon and end - head <= self.max_buffer:
            return []
        ready: list[T] = []
        while head < end and (buf[head][0] <= horizon or end - head > self.max_buffer):
            t0, _, released = buf[head]
            ready.append(released)
            if t0 > self._released:
                self._released = t0
            head += 1
        if head > 4096:
            del buf[:head]
            head = 0
        self._head = head
        return ready

    def drain(self) -> Iterator[T]:
        buf = self._buf
        for t0, _, item in buf[self._head :]:
            if t0 > self._released:
                self._released = t0
            yield item
        buf.clear()
        self._head = 0


def reorder(
    items: Iterable[T], lateness_s: float, key: Callable[[T], datetime | float | None]
) -> Iterator[T]:
    buffer: Reorderer[T] = Reorderer(lateness_s, key)
    for item in items:
        yield from buffer.push(item)
    yield from buffer.drain()
