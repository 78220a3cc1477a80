"""Station-time transaction spans and their overlap, shared by concurrent-use and session-overlap detectors.

A ``Span`` is one transaction seen from a key's point of view (a token, a connector): when it started and,
once known, when it ended, both in station time (``at``). Whether two spans overlap is only decided on what is
known:

* both ended: the length of the intersection of the two intervals;
* one open and live (its start came in real time): it is still running now, so it overlaps everything that
  started after it began - unless its stop was lost: it has been open implausibly long (``max_open_s``), or
  its station sends meter samples and this transaction has sent none for four of the station's sample
  intervals (learned; at least 10 minutes, at most ``idle_s``) - a running transaction keeps sampling, a stuck
  record does not;
* one open and queued (sent late from the station's offline queue): its end is unknown, maybe in the next
  frame, so judgement waits for its end. This is what keeps offline replays from looking like overlaps.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from chargeguard.detectors.state import BoundedState

INF = float("inf")
MIN_IDLE_S = 600.0  # never call a transaction stuck after less silence than this
MIN_GAP_S = 5.0  # sample gaps shorter than this (Begin/End readings next to a periodic one) teach nothing


def _unlearned() -> list[float]:
    """A station's sample interval before one was learned."""
    return [0.0]


@dataclass(slots=True)
class Span:
    """One transaction on one key, in station time (epoch seconds)."""

    station: str
    transaction_id: str
    connector: str | None
    start: float
    end: float | None = None
    queued: bool = False
    seen: float = 0.0  # the latest station time this transaction showed signs of life (start, samples)
    sampled: bool = False
    reported: set[str] = field(default_factory=set)
    start_ts: float = 0.0  # transport time of the first frame that told of it
    end_ts: float | None = None  # transport time of its end

    def replayed(self) -> bool:
        """Queued, and not known to have arrived live (an open one, or one delivered in a burst)."""
        if not self.queued:
            return False
        if self.end is None or self.end_ts is None:
            return True
        return self.end_ts - self.start_ts < 0.5 * (self.end - self.start)

    def live_together(self, other: Span) -> bool:
        """Whether two live (not queued) transactions were ever reported running at the same transport time.

        A transaction replayed from the offline queue says nothing in transport time, so it always may have
        run together with anything. One marked queued whose frames nevertheless arrived over at least half its
        station-time length was live (a clock running behind, not a replay).
        """
        if self.replayed() or other.replayed():
            return True
        ends = [INF if s.end_ts is None else s.end_ts for s in (self, other)]
        return min(ends) > max(self.start_ts, other.start_ts)

    def __post_init__(self) -> None:
        self.seen = max(self.seen, self.start)

    @property
    def tx_key(self) -> tuple[str, str]:
        return (self.station, self.transaction_id)


@dataclass(frozen=True, slots=True)
class Clash:
    """Two spans of one key found running at once."""

    first: Span
    second: Span
    overlap_s: float


class SpanBook:
    """Per-key lists of recent spans, bounded in keys (BoundedState) and in spans per key."""

    def __init__(
        self,
        *,
        max_keys: int,
        ttl_s: float,
        max_spans: int = 16,
        max_open_s: float = 172_800.0,
        idle_s: float = 3600.0,
    ) -> None:
        self._by_key: BoundedState[str, list[Span]] = BoundedState(max_keys, ttl_s)
        # stations that send meter samples -> their learned sample interval in seconds (0.0 while unknown)
        self._sampling: BoundedState[str, list[float]] = BoundedState(max_keys, ttl_s)
        self.max_spans = max_spans
        self.max_open_s = max_open_s
        self.idle_s = idle_s

    def overlap_s(self, a: Span, b: Span) -> float | None:
        """Seconds the two spans run at once, or None while it cannot be known (or an open span is stale)."""
        ends: list[float] = []
        for span, other in ((a, b), (b, a)):
            if span.end is not None:
                ends.append(span.end)
            elif span.queued:
                return None
            elif self._stale(span, other.start):
                return None  # its stop was lost: not a live transaction
            else:
                ends.append(INF)
        return min(ends) - max(a.start, b.start)

    def _stale(self, span: Span, at: float) -> bool:
        if at - span.start > self.max_open_s:
            return True
        learned = self._sampling.get(span.station)
        if learned is None:
            return False  # a station that sends no samples gives no sign of life to miss
        interval = learned[0]
        idle = self.idle_s if interval <= 0.0 else min(self.idle_s, max(4.0 * interval, MIN_IDLE_S))
        return max(at, span.start) - span.seen > idle

    def saw(
        self, key: str | None, station: str, transaction_id: str | None, at: float, ts: datetime
    ) -> Span | None:
        """A meter sample at ``station``: its station samples, and its transaction (by id, else the latest open
        one of ``key`` at that station) is alive at station time ``at``.

        Returns that transaction's span when another transaction of ``key`` is open too (so the caller may judge
        the pair), else None - the common case costs one pass over the key's few spans.
        """
        # touched on every sample (BoundedState skips the reordering within a minute): a station that keeps
        # sampling must never age out, or its stuck transactions would count as running until its next sample
        learned = self._sampling.setdefault(station, _unlearned, ts)
        if key is None:
            return None
        spans = self._by_key.get(key)
        if not spans:
            return None
        target: Span | None = None
        others_open = False
        for span in spans:
            if span.station == station and (
                span.transaction_id == transaction_id if transaction_id is not None else span.end is None
            ):
                if target is None:
                    target = span
                    continue
                if span.start > target.start:
                    if target.end is None:
                        others_open = True
                    target = span
                    continue
            if span.end is None:
                others_open = True
        if target is None:
            return None
        seen = target.seen
        gap = at - seen
        if target.sampled and MIN_GAP_S <= gap <= self.idle_s:
            learned[0] = gap if learned[0] <= 0.0 else 0.8 * learned[0] + 0.2 * gap
        target.sampled = True
        if at > seen:
            target.seen = at
        return target if others_open else None

    def __len__(self) -> int:
        return len(self._by_key) + len(self._sampling)

    def spans(self, key: str) -> list[Span]:
        return self._by_key.get(key) or []

    def upsert(
        self,
        key: str,
        *,
        station: str,
        transaction_id: str,
        connector: str | None,
        start: float | None,
        end: float | None,
        queued: bool,
        ts: datetime,
    ) -> Span:
        """Record that a transaction starts or ends on ``key``; returns its span."""
        spans = self._by_key.setdefault(key, list, ts)
        for span in spans:
            if span.station == station and span.transaction_id == transaction_id:
                if start is not None and span.end is None and end is None:
                    span.start = min(span.start, start)
                if end is not None:
                    span.end = end
                    span.end_ts = ts.timestamp()
                span.queued = span.queued and queued
                if connector is not None and span.connector is None:
                    span.connector = connector
                return span
        begin = start if start is not None else (end if end is not None else ts.timestamp())
        span = Span(station, transaction_id, connector, begin, end, queued)
        span.start_ts = ts.timestamp()
        if end is not None:
            span.end_ts = span.start_ts
        spans.append(span)
        if len(spans) > 2:
            # spans that ended more than max_open_s before the newest start cannot meet a live transaction; a
            # late offline replay older than that is beyond what the key remembers
            horizon = max(s.start for s in spans) - self.max_open_s
            spans[:] = [s for s in spans if s.end is None or s.end >= horizon]
        if len(spans) > self.max_spans:
            spans.sort(key=lambda s: s.start)
            del spans[: len(spans) - self.max_spans]
        return span

    def clashes(
        self,
        key: str,
        span: Span,
        *,
        tolerance_s: float,
        accept: Callable[[Clash], bool] | None = None,
        now: float | None = None,
    ) -> list[Clash]:
        """New overlaps between ``span`` and the other spans of ``key`` beyond ``tolerance_s``.

        Each pair is reported once; ``accept`` may decline a pair for now (it is then judged again later). With
        ``now`` (station time of the frame being judged), two transactions still running count as overlapping
        for ``now`` minus the later start only - so the pair is judged again by later frames until one ends or
        the overlap passes the tolerance; without it they count as overlapping without end.
        """
        found: list[Clash] = []
        for other in self.spans(key):
            if other is span or (
                other.transaction_id == span.transaction_id and other.station == span.station
            ):
                continue
            pair = f"{other.station}\x1f{other.transaction_id}"
            if pair in span.reported:
                continue
            seconds = self.overlap_s(span, other)
            if seconds == INF and now is not None:
                seconds = now - max(span.start, other.start)
            if seconds is None or seconds <= tolerance_s:
                continue
            first, second = (other, span) if other.start <= span.start else (span, other)
            clash = Clash(first, second, seconds)
            if accept is not None and not accept(clash):
                continue
            span.reported.add(pair)
            other.reported.add(f"{span.station}\x1f{span.transaction_id}")
            found.append(clash)
        return found
