"""Sliding event-time windows and address helpers shared by the station, protocol and command rules."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from datetime import datetime
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
