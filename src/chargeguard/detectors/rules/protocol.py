"""Rule detectors for ocpp.* kinds: malformed OCPP-J traffic and message or reconnect floods per station."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from chargeguard.detectors.base import Detector, DetectorContext, DetectorInfo
from chargeguard.detectors.rules.event_window import BucketClock, EventWindow, Throttle
from chargeguard.detectors.state import BoundedState
from chargeguard.events import (
    ConnectionEvent,
    Direction,
    Event,
    Finding,
    FrameSeen,
    ProtocolViolation,
    Severity,
)

_ACTION_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]{0,49}$")
_PATH_LIKE = re.compile(r"[/\\]|\.\.|%2e|%2f", re.IGNORECASE)
_DELIBERATE = {
    "oversize": Severity.MEDIUM,
    "bad_encoding": Severity.MEDIUM,
    "wrong_direction": Severity.MEDIUM,
}
_MAX_REASONS = 32
_MAX_ACTIONS = 50
_FROM_STATION = Direction.STATION  # a module constant: an Enum attribute lookup costs more per frame
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# a station's touch is decided by a datetime compare until this close to its due time, then by floats
_MARGIN = timedelta(microseconds=2)


@dataclass(slots=True)
class _Violations:
    window: EventWindow[str]
    throttle: Throttle
    last_severity: Severity = Severity.INFO
    total: Counter[str] = field(default_factory=Counter)
    directions: Counter[str] = field(default_factory=Counter)
    unknown_actions: set[str] = field(default_factory=set)
    suspicious_action_names: int = 0


@dataclass(frozen=True, slots=True)
class MalformedConfig:
    """Thresholds of ocpp.malformed.

    window_s: sliding window over which violations are counted.
    sustained_count: violations per station within the window that make a sustained stream (medium).
    storm_count: violations per station within the window that make a storm (high).
    distinct_unknown_actions: distinct unknown action names from one station that look like probing (high).
    distinct_reasons: different kinds of violation from one station within the window (a fuzzer's mix; high).
    reemit_s: while violations go on at the same severity, evidence is added at most this often.
    """

    window_s: float = 600.0
    sustained_count: int = 20
    storm_count: int = 100
    distinct_unknown_actions: int = 5
    distinct_reasons: int = 4
    reemit_s: float = 300.0


class Malformed(Detector[MalformedConfig]):
    """OCPP-J protocol violations per station: schema errors, bad frames, reused ids, results without a CALL.

    Catches: every ProtocolViolation (not_json, bad_shape, bad_message_type, unknown_action, schema,
    bad_timestamp, duplicate_id, orphan_result, oversize, bad_encoding, wrong_direction), merged into one alert per
    station. One violation is low; ``sustained_count`` within ``window_s`` medium and ``storm_count`` high;
    oversize frames, bad encodings and wrong-direction actions are medium at once; path-like action names
    (``../../v201/schemas/X``, which the ``ocpp`` library would resolve to another version's schema) and
    ``distinct_unknown_actions`` different unknown actions or ``distinct_reasons`` different kinds of violation
    within the window (probing, fuzzing) are high. Evidence lists reasons, directions and counts, and unknown
    action names only when they are plain identifiers - never payload content.

    Why: malformed traffic is how parsers are fuzzed and crashed (EVerest libocpp #649, #1104, #1129), how
    replay and injection show on plaintext links (duplicate ids, orphan results; DOMAIN #29), and a sign of a
    broken or impersonated station.

    False positives: one station model with a firmware bug (a date without time zone, an extra field) produces a
    steady stream of schema violations - one merged alert per station; fix or allow-list the model's stations.

    References: OCPP-J 1.6 §4, OCPP 2.0.1 Part 4 §4 (framing, CALLERROR codes, message ids), DOMAIN.md §2.4, #29.
    """

    info: ClassVar[DetectorInfo] = DetectorInfo(
        name="ocpp-malformed",
        kinds=("ocpp.malformed",),
        title="Malformed OCPP traffic",
        severity=Severity.LOW,
        references=("OCPP 2.0.1 Part 4 §4", "DOMAIN.md #29"),
    )
    consumes: ClassVar[tuple[type[Any], ...]] = (ProtocolViolation,)
    Config: ClassVar[type[Any]] = MalformedConfig

    def __init__(self, config: MalformedConfig, context: DetectorContext) -> None:
        super().__init__(config, context)
        self._state: BoundedState[str, _Violations] = BoundedState(
            context.limits.max_keys, context.limits.ttl_s
        )

    def state_size(self) -> int:
        return len(self._state)

    def _new(self) -> _Violations:
        cfg = self.config
        return _Violations(EventWindow(cfg.window_s, 2 * cfg.storm_count), Throttle(cfg.reemit_s))

    def process(self, event: Event) -> Iterable[Finding]:
        if not isinstance(event, ProtocolViolation):
            return ()
        cfg = self.config
        st = self._state.setdefault(event.station, self._new, event.ts)
        raw_reason = str(event.reason or "other")[:40]
        reason = raw_reason if raw_reason in st.total or len(st.total) < _MAX_REASONS else "other"
        st.window.add(event.ts, reason)
        st.total[reason] += 1
        st.directions[str(event.direction)] += 1
        severity, why = Severity.LOW, "protocol violation"
        if reason in _DELIBERATE:
            severity, why = _DELIBERATE[reason], reason.replace("_", " ")
        if event.action is not None and reason in (
            "unknown_action",
            "schema",
            "wrong_direction",
            "bad_shape",
        ):
            if _PATH_LIKE.search(event.action):
                st.suspicious_action_names += 1
                severity, why = Severity.HIGH, "path-like action name"
            elif _ACTION_NAME.match(event.action) is None:
                st.suspicious_action_names += 1
            elif reason == "unknown_action" and len(st.unknown_actions) < _MAX_ACTIONS:
                st.unknown_actions.add(event.action)
        if len(st.unknown_actions) >= cfg.distinct_unknown_actions and severity < Severity.HIGH:
            severity, why = Severity.HIGH, f"{len(st.unknown_actions)} different unknown actions"
        in_window = Counter(st.window)
        if len(in_window) >= cfg.distinct_reasons and severity < Severity.HIGH:
            severity, why = (
                Severity.HIGH,
                f"{len(in_window)} different kinds of violation in {cfg.window_s:.0f} s",
            )
        if len(st.window) >= cfg.storm_count and severity < Severity.HIGH:
            severity, why = Severity.HIGH, f"{len(st.window)} violations in {cfg.window_s:.0f} s"
        elif len(st.window) >= cfg.sustained_count and severity < Severity.MEDIUM:
            severity, why = Severity.MEDIUM, f"{len(st.window)} violations in {cfg.window_s:.0f} s"
        if not st.throttle.ready(event.ts) and severity <= st.last_severity:
            return ()
        st.last_severity = max(st.last_severity, severity)
        return (
            self.finding(
                "ocpp.malformed",
                ts=event.ts,
                incident=f"station:{event.station}",
                summary=f"station {event.station}: {why} ({raw_reason}, {event.direction} side, "
                f"{sum(st.total.values())} so far)",
                severity=severity,
                station=event.station,
                evidence={
                    "reason": reason,
                    "reasons_in_window": dict(sorted(in_window.items())),
                    "reasons_total": dict(sorted(st.total.items())),
                    "directions": dict(sorted(st.directions.items())),
                    "unknown_actions": sorted(st.unknown_actions)[:20],
                    "suspicious_action_names": st.suspicious_action_names,
                    "ocpp": event.ocpp[:10],
                },
            ),
        )


@dataclass(slots=True)
class _Rate:
    """Counts per fixed bucket of event time with an EWMA baseline that does not learn from flagged buckets."""

    bucket: int = -1
    count: int = 0
    ewma: float = 0.0
    learned: int = 0
    flagged: int = 0  # 0: quiet bucket, 1: flood reported, 2: escalated to high

    threshold: float = 0.0


@dataclass(slots=True)
class _Station:
    rates: list[_Rate | None] = field(default_factory=lambda: [None, None, None, None])  # by _METRICS index
    touched: float = 0.0
    touch_soon: datetime = _EPOCH  # before this event time the state certainly needs no touch


@dataclass(frozen=True, slots=True)
class FloodConfig:
    """Thresholds of ocpp.flood.

    frames_bucket_s / frames_floor: frames a station sends per bucket never count as a flood below the floor.
    csms_frames_floor: the same for frames the central system sends to one station.
    reconnect_bucket_s / reconnect_floor: WebSocket connects of one identity per bucket.
    boot_bucket_s / boot_floor: BootNotification CALLs of one station per bucket (a boot loop).
    factor: a bucket is a flood when its count is at least ``factor`` times the station's learned baseline (EWMA of
    its own per-bucket counts) and at least the floor.
    alpha: EWMA weight of the newest bucket.
    """

    frames_bucket_s: float = 60.0
    frames_floor: int = 600
    csms_frames_floor: int = 600
    reconnect_bucket_s: float = 600.0
    reconnect_floor: int = 10
    boot_bucket_s: float = 600.0
    boot_floor: int = 5
    factor: float = 10.0
    alpha: float = 0.1


class Flood(Detector[FloodConfig]):
    """A station's message rate, reconnect rate or BootNotification rate far above its own baseline.

    Catches, per station: frames it sends per ``frames_bucket_s`` (and frames the central system sends it),
    WebSocket connects per ``reconnect_bucket_s`` and BootNotification CALLs per ``boot_bucket_s``, when a bucket's
    count reaches both an absolute floor and ``factor`` times the station's learned baseline (an EWMA of its own
    per-bucket counts, empty buckets included, that does not learn from flooded buckets). Medium; high at ten times
    the threshold. Each flooded bucket adds evidence to one alert per station (a reboot loop floods boots and
    reconnects together: one incident).

    Why: message floods and reconnect storms exhaust CSMSs that have no inbound limits (DOMAIN #28, CVE-2026-24445
    class); a BootNotification loop is a broken or hijacked station, or a DoS. OCPP asks stations to back off
    (2.0.1 Part 4 §5.3 RetryBackOff).

    False positives: the floors keep a quiet station's ordinary bursts (session start, a full NotifyReport after
    GetBaseReport) silent; a fleet-wide reconnect after a CSMS restart is one connect per station and does not
    fire. Stations on flaky mobile links can reconnect often: raise ``reconnect_floor`` for them.

    References: OCPP 2.0.1 Part 4 §5.3, DOMAIN.md #28 and §2.4, §5.2.
    """

    info: ClassVar[DetectorInfo] = DetectorInfo(
        name="ocpp-flood",
        kinds=("ocpp.flood",),
        title="Message or reconnect flood",
        severity=Severity.MEDIUM,
        references=("OCPP 2.0.1 Part 4 §5.3", "DOMAIN.md #28"),
    )
    consumes: ClassVar[tuple[type[Any], ...]] = (FrameSeen, ConnectionEvent)
    Config: ClassVar[type[Any]] = FloodConfig

    def __init__(self, config: FloodConfig, context: DetectorContext) -> None:
        super().__init__(config, context)
        self._state: BoundedState[str, _Station] = BoundedState(context.limits.max_keys, context.limits.ttl_s)
        # the state is touched (TTL and LRU order) at most this often per station; the baseline needs no more
        self._touch_every_s = min(context.limits.ttl_s / 8, 600.0)
        self._touch_every = timedelta(seconds=self._touch_every_s)
        c = config
        self._alpha = c.alpha
        self._decay = 1.0 - c.alpha
        # decay over the empty buckets of a gap, the same floats as ``decay ** gaps`` without the power per frame
        self._decay_powers = tuple(self._decay**gaps for gaps in range(1024))
        self._factor = c.factor
        # index: (metric name, bucket seconds, floor, noun); _Station.rates follows this order
        self._metrics: tuple[tuple[str, float, int, str], ...] = (
            ("frames", c.frames_bucket_s, c.frames_floor, "frames sent"),
            (
                "csms_frames",
                c.frames_bucket_s,
                c.csms_frames_floor,
                "frames received from the central system",
            ),
            ("reconnects", c.reconnect_bucket_s, c.reconnect_floor, "connections"),
            ("boots", c.boot_bucket_s, c.boot_floor, "BootNotifications"),
        )
        self._floors = tuple(float(floor) for _, _, floor, _ in self._metrics)
        clocks: dict[float, BucketClock] = {}
        self._clocks = tuple(clocks.setdefault(m[1], BucketClock(m[1])) for m in self._metrics)

    def state_size(self) -> int:
        return len(self._state)

    def process(self, event: Event) -> Iterable[Finding]:
        if type(event) is FrameSeen:
            ts = event.ts
            station = event.station
            index = 0 if event.direction is _FROM_STATION else 1
            # every frame: ``_count`` inlined for a known station inside its current bucket with no touch due
            clock = self._clocks[index]
            st = self._state.get(station)
            out: tuple[Finding, ...]
            if st is not None and ts < st.touch_soon and clock.lo <= ts < clock.hi:
                rate = st.rates[index]
                if rate is None:
                    out = self._count(station, index, ts)
                elif rate.bucket == clock.current:
                    rate.count += 1
                    out = () if rate.count < rate.threshold else self._flag(station, index, rate, ts)
                else:  # the station's first frame in this bucket: the usual case for all but busy stations
                    out = self._roll(station, index, rate, clock.current, ts)
            else:
                out = self._count(station, index, ts)
            if index == 0 and event.message_type == 2 and event.action == "BootNotification":
                return (*out, *self._count(station, 3, ts))
            return out
        if isinstance(event, ConnectionEvent) and event.event == "connect":
            return self._count(event.station, 2, event.ts)
        return ()

    def _count(self, station: str, index: int, ts: datetime) -> tuple[Finding, ...]:
        # hot path (every frame): a lookup, datetime compares for the bucket and the touch, a count; no float
        # conversion of the event time unless a bucket boundary or the touch is near
        clock = self._clocks[index]
        bucket = clock.current if clock.lo <= ts < clock.hi else clock.index(ts)
        st = self._state.get(station)
        if st is None:
            st = _Station()
            self._touch(station, st, ts)
        elif ts >= st.touch_soon and ts.timestamp() - st.touched > self._touch_every_s:
            self._touch(station, st, ts)
        rate = st.rates[index]
        if rate is None:
            rate = st.rates[index] = _Rate()
        if bucket != rate.bucket:
            return self._roll(station, index, rate, bucket, ts)
        rate.count += 1
        if rate.count < rate.threshold:
            return ()
        return self._flag(station, index, rate, ts)

    def _roll(self, station: str, index: int, rate: _Rate, bucket: int, ts: datetime) -> tuple[Finding, ...]:
        """The first count of ``bucket``: close the rate's previous bucket (learning from it unless it was
        flagged) and open this one."""
        previous = rate.bucket
        ewma = rate.ewma
        if bucket > previous >= 0:
            if not rate.flagged:
                ewma += self._alpha * (rate.count - ewma)
                rate.learned += 1
            gaps = bucket - previous - 1
            if gaps:
                powers = self._decay_powers
                ewma *= powers[gaps] if gaps < len(powers) else self._decay ** min(gaps, 10_000)
            rate.ewma = ewma
        rate.bucket = bucket
        rate.count = 1
        rate.flagged = 0
        threshold = self._factor * ewma
        floor = self._floors[index]
        rate.threshold = threshold if threshold > floor else floor
        if rate.count < rate.threshold:
            return ()
        return self._flag(station, index, rate, ts)

    def _touch(self, station: str, st: _Station, ts: datetime) -> None:
        """Stamp the station's state (TTL and LRU order) at ``ts``."""
        st.touched = ts.timestamp()
        try:
            st.touch_soon = ts + self._touch_every - _MARGIN
        except OverflowError:
            st.touch_soon = _EPOCH  # every event checks with floats
        self._state.put(station, st, ts)

    def _flag(self, station: str, index: int, rate: _Rate, ts: datetime) -> tuple[Finding, ...]:
        metric, bucket_s, _, noun = self._metrics[index]
        threshold = rate.threshold
        level = 2 if rate.count >= 10 * threshold else 1 if rate.count >= threshold else 0
        if level <= rate.flagged:
            return ()
        rate.flagged = level
        return (
            self.finding(
                "ocpp.flood",
                ts=ts,
                incident=f"station:{station}",
                summary=f"station {station}: {rate.count} {noun} within {bucket_s:.0f} s "
                f"(baseline {rate.ewma:.1f} per {bucket_s:.0f} s)",
                severity=Severity.HIGH if level == 2 else Severity.MEDIUM,
                station=station,
                evidence={
                    "metric": metric,
                    "count": rate.count,
                    "bucket_s": bucket_s,
                    "baseline": round(rate.ewma, 3),
                    "threshold": round(threshold, 3),
                    "baseline_buckets": rate.learned,
                },
            ),
        )


DETECTORS: tuple[type[Detector[Any]], ...] = (Malformed, Flood)
