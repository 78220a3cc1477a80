"""Sliding event-time windows and address helpers shared by the station, protocol and command rules."""

from __future__ import annotations

import contextlib
import ipaddress
import re
from collections import deque
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Generic, TypeVar

from chargeguard.errors import ConfigError

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

    def count_near(self, when: float) -> int:
        """Items within ``window_s`` of ``when`` on either side (an item stamped out of order counts only with
        its own neighbours, not with the newest ones)."""
        span = self.window_s
        return sum(1 for t, _ in self._items if abs(t - when) <= span)

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


def canonical_host(host: str) -> str:
    """A host name as compared: lower case, no trailing dot, no IPv6 brackets, IDNA (``xn--``) labels for
    non-ASCII names, so that ``Bücher.example.`` and ``xn--bcher-kva.example`` are the same host."""
    text = host.strip().lower().rstrip(".")
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    if not text.isascii():
        # not a valid IDNA name: compared as written, so it matches no well-formed pattern
        with contextlib.suppress(UnicodeError):
            text = text.encode("idna").decode("ascii")
    return text


_BAD_PATTERN = re.compile(r"[\s/:@?#*\\]")


class HostAllowList:
    """Hosts an operator trusts: exact names or IP addresses (``fw.vendor.example``, ``192.0.2.10``) and suffixes
    written ``.vendor.example`` or ``*.vendor.example`` (which also cover ``vendor.example`` itself).

    Patterns are checked when the list is built: a URL (``https://...``), a port, a wildcard other than a leading
    ``*.``, or an empty entry raises ConfigError instead of silently never matching. Empty means "not configured".
    """

    __slots__ = ("_exact", "_suffixes")

    def __init__(self, patterns: Iterable[object], *, setting: str) -> None:
        exact: set[str] = set()
        suffixes: list[str] = []
        for raw in patterns:
            if not isinstance(raw, str):
                raise ConfigError(f"{setting}: host patterns must be strings, got {type(raw).__name__}")
            text = raw.strip()
            suffix = text.startswith(("*.", "."))
            name = text[2:] if text.startswith("*.") else text[1:] if suffix else text
            if not suffix and name.startswith("[") and name.endswith("]"):
                name = name[1:-1]
                valid = _is_ip(name)
            elif not suffix and _is_ip(name):
                valid = True
            else:
                valid = bool(name.strip(".")) and not _BAD_PATTERN.search(name)
            if not valid:
                raise ConfigError(
                    f"{setting}: {raw[:80]!r} is not a host name, an IP address or a suffix like .example.com"
                )
            host = canonical_host(name)
            exact.add(host)
            if suffix:
                suffixes.append("." + host)
        self._exact = frozenset(exact)
        self._suffixes = tuple(suffixes)

    def __bool__(self) -> bool:
        return bool(self._exact)

    def allows(self, host: str) -> bool:
        """``host`` (from a URL) is listed, or lies under a listed suffix."""
        name = canonical_host(host)
        return bool(name) and (name in self._exact or name.endswith(self._suffixes))


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


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
