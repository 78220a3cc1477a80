"""Sliding event-time windows and address helpers shared by the station, protocol and command rules."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Generic, TypeVar

T = TypeVar("T")


class EventWindow(Generic[T]):
    """The items seen in the last ``window_s`` seconds of event time, at most ``cap`` of them (oldest
    dropped)."""

    __slots__ = ("_items", "window_s")

    def __init__(self, window_s: float, cap: int) -> None:
        self.window_s = window_s
        self._items: deque[tuple[float, T]] = deque(maxlen=max(1, cap))

    def add(self, ts: datetime, item: T) -> None:
        now = ts.timestamp()
        self._items.append((now, item))
        self.prune(now)

    def prune(self, now: float) -> None:
        horizon = now - self.window_s
        items = self._items
        while items and items[0][0] < horizon:
            items.popleft()

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[T]:
        return (item for _, item in self._items)

    def first_ts(self) -> float | None:
        return self._items[0][0] if self._items else None

    def clear(self) -> None:
        self._items.clear()


class Throttle:
    """Lets a persisting condition speak at most once per ``every_s`` of event time (keeps one incident
    open)."""

    __slots__ = ("every_s", "last")

    def __init__(self, every_s: float) -> None:
        self.every_s = every_s
        self.last: float | None = None

    def ready(self, ts: datetime) -> bool:
        now = ts.timestamp()
        if self.last is None or now - self.last >= self.every_s:
            self.last = now
            return True
        return False


def occurred_at(ts: datetime, at: datetime, *, max_lag_s: float = 7 * 86_400.0) -> datetime:
    """When a station-reported event happened: its station time ``at`` when plausible, else transport ``ts``.

    Security events are queued with guaranteed delivery and arrive in a burst after a reconnect; counting them by
    ``ts`` would turn an hour of history into a burst. A station time more than ``max_lag_s`` away from ``ts``
    (a broken clock) is not trusted.
    """
    try:
        lag = abs((ts - at).total_seconds())
    except OverflowError:
        return ts
    return at if lag <= max_lag_s else ts


def remote_host(remote: str | None) -> str | None:
    """The host part of a transport peer ``ip:port`` (IPv6 as ``[addr]:port``); None when absent."""
    if not remote:
        return None
    text = remote.strip()
    if text.startswith("["):
        end = text.find("]")
        return text[1:end].lower() if end > 0 else text.lower()
    if text.count(":") == 1:
        return text.split(":", 1)[0].lower()
    return text.lower()


def host_matches(host: str, patterns: Iterable[str]) -> bool:
    """``host`` equals a pattern, or ends with a pattern written ``.suffix`` / ``*.suffix``."""
    host = host.lower().rstrip(".")
    for raw in patterns:
        pattern = raw.strip().lower().rstrip(".")
        if pattern.startswith("*."):
            pattern = pattern[1:]
        if pattern.startswith("."):
            if host.endswith(pattern) or host == pattern[1:]:
                return True
        elif host == pattern:
            return True
    return False


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# a bucket's fast range stays this far inside its float boundaries, so that an event inside it is in the bucket by
# the float arithmetic too; events nearer an edge are decided by that arithmetic
_MARGIN = timedelta(microseconds=2)


class BucketClock:
    """The index ``int(ts.timestamp() // bucket_s)`` of fixed event-time buckets, mostly without float conversion.

    Events arrive in transport-time order, so consecutive events mostly fall in the bucket of the previous one:
    ``lo <= ts < hi`` (two datetime comparisons) means ``ts`` is in bucket ``current``, several times cheaper than
    ``timestamp()``. Events near a boundary, out of order or in a new bucket take ``index``'s float path.
    """

    __slots__ = ("bucket_s", "current", "hi", "lo")

    def __init__(self, bucket_s: float) -> None:
        self.bucket_s = bucket_s
        self.current = 0
        self.lo = self.hi = _EPOCH  # empty range: the first event takes the float path

    def index(self, ts: datetime) -> int:
        """The bucket of ``ts``; remembers it with its range for the events that follow."""
        if self.lo <= ts < self.hi:
            return self.current
        bucket_s = self.bucket_s
        index = int(ts.timestamp() // bucket_s)
        self.current = index
        try:
            self.lo = _EPOCH + timedelta(seconds=index * bucket_s) + _MARGIN
            self.hi = _EPOCH + timedelta(seconds=(index + 1) * bucket_s) - _MARGIN
        except OverflowError:  # beyond datetime's range: every event takes the float path
            self.lo = self.hi = _EPOCH
        return index
