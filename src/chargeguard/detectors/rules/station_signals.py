"""Station-reported signals: security events rated by the severity table, and station clock skew."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, ClassVar

from chargeguard.detectors.base import Detector, DetectorContext, DetectorInfo
from chargeguard.detectors.rules.event_window import EventWindow, Throttle, occurred_at
from chargeguard.detectors.security_events import rate_security_event
from chargeguard.detectors.state import BoundedState
from chargeguard.errors import ConfigError
from chargeguard.events import ClockReading, ConnectionEvent, Event, Finding, SecurityEventReported, Severity

_REBOOT_TYPES = frozenset({"StartupOfTheDevice", "ResetOrReboot"})
# a reading this far inside the healthy band is decided without float conversion; nearer its edges the exact
# float arithmetic of the full path decides
_MARGIN = timedelta(milliseconds=1)


def _within(seconds: float) -> timedelta:
    """``seconds`` as a timedelta pulled ``_MARGIN`` towards zero (clamped to timedelta's range)."""
    try:
        span = timedelta(seconds=abs(seconds))
    except OverflowError:
        span = timedelta.max
    span = max(span - _MARGIN, timedelta(0))
    return span if seconds >= 0 else -span


def _severity_setting(text: str, *, detector: str) -> Severity:
    try:
        return Severity.parse(text)
    except KeyError as exc:
        raise ConfigError(f"detector {detector}: unknown severity {text!r}") from exc


@dataclass(frozen=True, slots=True)
class SecurityEventConfig:
    """Thresholds of station.security_event.

    burst_window_s / burst_count: the same event type (reboot types counted together) this many times at one
    station within the window is rated with the table's ``burst`` severity.
    min_severity: ratings below this are not reported (routine StartupOfTheDevice / ResetOrReboot /
    FirmwareUpdated are ``info`` and stay silent unless they come in a burst).
    """

    burst_window_s: float = 3600.0
    burst_count: int = 5
    min_severity: str = "low"


class SecurityEvent(Detector[SecurityEventConfig]):
    """Every station-reported security event, rated by chargeguard's severity table.

    Catches: SecurityEventNotification (2.0.1 and the 1.6 security whitepaper) of every type, rated with
    ``chargeguard.detectors.security_events`` (all 2.0.1 Appendix 1 types, their 1.6 names, EVerest's
    CSRGenerationFailed; unknown and vendor types low). Repeats of one type at one station are one merged
    alert; a burst (``burst_count`` in ``burst_window_s``) raises it to the table's burst severity, so a
    reboot loop is medium while a single reboot is not reported.

    Why: OCPP's "critical" flag only obliges the station to push an event; it says nothing about risk. Tamper
    detection, cleared security logs and invalid firmware signatures are incidents (DOMAIN #31, #32); invalid
    CSMS certificates and refused CSMS credentials point at a man in the middle (#29, #36).

    False positives: installation work triggers TamperDetectionActivated and MaintenanceLogin events;
    allow-list the station during the visit.

    References: OCPP 2.0.1 Part 2 Appendix 1 (security events), A04, OCPP 1.6 security whitepaper §8,
    DOMAIN.md §2.2, #29, #31, #32, #36.
    """

    info: ClassVar[DetectorInfo] = DetectorInfo(
        name="station-security-event",
        kinds=("station.security_event",),
        title="Station security event",
        severity=Severity.LOW,
        references=("OCPP 2.0.1 Appendix 1", "OCPP 2.0.1 A04", "DOMAIN.md §2.2"),
    )
    consumes: ClassVar[tuple[type[Any], ...]] = (SecurityEventReported,)
    Config: ClassVar[type[Any]] = SecurityEventConfig

    def __init__(self, config: SecurityEventConfig, context: DetectorContext) -> None:
        super().__init__(config, context)
        self._min = _severity_setting(config.min_severity, detector=self.info.name)
        self._windows: BoundedState[tuple[str, str], EventWindow[None]] = BoundedState(
            context.limits.max_keys, context.limits.ttl_s
        )

    def state_size(self) -> int:
        return len(self._windows)

    def process(self, event: Event) -> Iterable[Finding]:
        if not isinstance(event, SecurityEventReported):
            return ()
        cfg = self.config
        rating = rate_security_event(event.event_type)
        group = "reboot" if rating.event_type in _REBOOT_TYPES else rating.event_type
        window = self._windows.setdefault(
            (event.station, group), lambda: EventWindow(cfg.burst_window_s, 2 * cfg.burst_count), event.ts
        )
        when = occurred_at(event.ts, event.at)
        window.add(when, None)
        # a burst around this event's own time: one stamped days off by a wrong clock is not part of the last one
        near = window.count_near(when.timestamp())
        burst = near >= cfg.burst_count
        severity = rating.burst if burst else rating.base
        if severity < self._min:
            return ()
        what = f"{near} x {rating.event_type}" if burst else rating.event_type
        return (
            self.finding(
                "station.security_event",
                ts=event.ts,
                incident=f"{event.station}:{group}",
                summary=f"station {event.station} reported {what}: {rating.reason}",
                severity=severity,
                confidence=0.95 if rating.known else 0.6,
                station=event.station,
                evidence={
                    "event_type": rating.event_type,
                    "reported_as": event.event_type[:50],
                    "known_type": rating.known,
                    "ocpp_critical": rating.ocpp_critical,
                    "in_window": near,
                    "burst": burst,
                    "station_time": event.at.isoformat(),
                    "ocpp": event.ocpp,
                },
            ),
        )


@dataclass(slots=True)
class _Clock:
    last_connect: float | None = None
    streak: list[float] = field(default_factory=list)  # skews of consecutive suspicious readings, same sign
    streak_ts: list[float] = field(default_factory=list)  # their transport times
    uncertain: list[bool] = field(default_factory=list)  # behind, and looked like an offline queue
    throttle: Throttle | None = None
    last_severity: Severity = Severity.INFO

    def reset(self) -> None:
        self.streak.clear()
        self.streak_ts.clear()
        self.uncertain.clear()


@dataclass(frozen=True, slots=True)
class ClockSkewConfig:
    """Thresholds of station.clock_skew.

    ahead_threshold_s: station time ahead of transport time by more than this is suspicious on any message.
    behind_threshold_s: station time behind by more than this is suspicious on messages that were not queued.
    min_readings: consecutive suspicious readings (same direction) before a clock counts as skewed.
    max_spread_s: the skews of those readings must agree within this (a broken clock has a steady offset; a
    queue replay does not).
    replay_burst_s: readings behind transport time within this long after a ``connect`` are the offline queue.
    absurd_ahead_s: further ahead than this (e.g. year 2099) is high after a single reading.
    absurd_behind_s: further behind than this (RTC reset to 1970/2000) cannot be a queue and is always
    counted.
    steady_span_s: readings behind that may be a replayed queue (marked queued, or just after a reconnect)
    count too, but only once their offsets have agreed within ``max_spread_s`` across this much transport
    time: a queue is replayed in a burst, a wrong clock keeps its offset on live traffic.
    max_streak: suspicious readings remembered per station.
    reemit_s: while the skew persists, evidence is added to its alert at most this often.
    """

    ahead_threshold_s: float = 300.0
    behind_threshold_s: float = 300.0
    min_readings: int = 3
    max_spread_s: float = 60.0
    replay_burst_s: float = 120.0
    absurd_ahead_s: float = 366 * 86_400.0
    absurd_behind_s: float = 5 * 366 * 86_400.0
    steady_span_s: float = 600.0
    max_streak: int = 8
    reemit_s: float = 600.0


class ClockSkew(Detector[ClockSkewConfig]):
    """A station clock persistently ahead of or behind the time its messages arrive.

    Catches: ClockReading (payload timestamp ``at`` vs transport ``ts``) ahead by more than
    ``ahead_threshold_s``, or behind by more than ``behind_threshold_s``, for ``min_readings`` consecutive
    readings in the same direction whose offsets agree within ``max_spread_s``; when some of those readings
    are behind on messages that may come from an offline queue (marked queued, or just after a reconnect),
    the agreeing offsets must also have held for ``steady_span_s`` of transport time (a station whose clock
    runs days behind after a reboot, or whose samples are far enough apart that each one looks like the
    first after a silence). Low below an hour of skew, medium above; a timestamp more than ``absurd_ahead_s`` in
    the future (year 2099) is high on its own.

    Why: transaction times drive tariffs; a clock set ahead or back moves sessions into cheaper periods or
    breaks billing and forensics (DOMAIN #23). OCPP expects stations to keep time (2.0.1 ClockCtrlr,
    SettingSystemTime security event).

    False positives: messages a station queued while offline arrive hours late with old timestamps: readings
    marked ``queued`` or arriving within ``replay_burst_s`` after a reconnect are not skew, and a replay's
    offsets spread out, failing the ``max_spread_s`` test. One odd timestamp never fires (except an absurd
    future one).

    References: OCPP 2.0.1 B04/B06 (ClockCtrlr), Appendix 1 SettingSystemTime, OCPP 1.6 §4.6, DOMAIN.md #23.
    """

    info: ClassVar[DetectorInfo] = DetectorInfo(
        name="station-clock-skew",
        kinds=("station.clock_skew",),
        title="Station clock skewed",
        severity=Severity.MEDIUM,
        references=("OCPP 2.0.1 ClockCtrlr", "DOMAIN.md #23"),
    )
    consumes: ClassVar[tuple[type[Any], ...]] = (ClockReading, ConnectionEvent)
    Config: ClassVar[type[Any]] = ClockSkewConfig

    def __init__(self, config: ClockSkewConfig, context: DetectorContext) -> None:
        super().__init__(config, context)
        self._state: BoundedState[str, _Clock] = BoundedState(context.limits.max_keys, context.limits.ttl_s)
        # station time minus transport time strictly inside (lo, hi) is certainly healthy
        self._healthy_lo = _within(-config.behind_threshold_s)
        self._healthy_hi = _within(config.ahead_threshold_s)

    def state_size(self) -> int:
        return len(self._state)

    def process(self, event: Event) -> Iterable[Finding]:
        if isinstance(event, ConnectionEvent):
            if event.event == "connect":
                self._state.setdefault(event.station, _Clock, event.ts).last_connect = event.ts.timestamp()
            return ()
        if not isinstance(event, ClockReading):
            return ()
        if self._healthy_lo < event.at - event.ts < self._healthy_hi:
            # hot path (most readings): a healthy clock only ends a streak; no float conversion, no state
            healthy = self._state.get(event.station)
            if healthy is not None and healthy.streak:
                healthy.reset()
            return ()
        cfg = self.config
        now = event.ts.timestamp()
        try:
            skew = event.at.timestamp() - now
        except (OverflowError, ValueError, OSError):
            return ()
        if -cfg.behind_threshold_s <= skew <= cfg.ahead_threshold_s:
            # healthy near the band's edges: the same as the hot path above
            healthy = self._state.get(event.station)
            if healthy is not None and healthy.streak:
                healthy.reset()
            return ()
        st = self._state.setdefault(event.station, _Clock, event.ts)
        if st.throttle is None:
            st.throttle = Throttle(cfg.reemit_s)
        if skew > cfg.absurd_ahead_s:
            return self._emit(event, st, skew, [skew], Severity.HIGH, absurd=True)
        in_replay = st.last_connect is not None and 0 <= now - st.last_connect <= cfg.replay_burst_s
        sign = 1 if skew > 0 else -1
        # behind, on a message that may come from an offline queue: evidence only if the offset holds steady
        uncertain = sign < 0 and skew >= -cfg.absurd_behind_s and (event.queued or in_replay)
        if st.streak and (st.streak[-1] > 0) != (sign > 0):
            st.reset()
        st.streak.append(skew)
        st.streak_ts.append(now)
        st.uncertain.append(uncertain)
        keep = max(cfg.min_readings, cfg.max_streak)
        if len(st.streak) > keep:
            del st.streak[:-keep], st.streak_ts[:-keep], st.uncertain[:-keep]
        # the latest readings whose offsets agree within max_spread_s
        lo = hi = skew
        n = 0
        for value in reversed(st.streak):
            lo, hi = min(lo, value), max(hi, value)
            if hi - lo > cfg.max_spread_s:
                break
            n += 1
        if n < cfg.min_readings:
            return ()
        if any(st.uncertain[-n:]) and now - st.streak_ts[-n] < cfg.steady_span_s:
            return ()  # could still be a queue replayed with a steady lag: wait until it has held for long
        readings = st.streak[-n:]
        magnitude = min(abs(s) for s in readings)
        severity = Severity.LOW if magnitude < 3600 else Severity.MEDIUM
        return self._emit(event, st, skew, readings, severity, absurd=False)

    def _emit(
        self,
        event: ClockReading,
        st: _Clock,
        skew: float,
        readings: list[float],
        severity: Severity,
        *,
        absurd: bool,
    ) -> tuple[Finding, ...]:
        assert st.throttle is not None
        if not st.throttle.ready(event.ts) and severity <= st.last_severity:
            return ()
        st.last_severity = max(st.last_severity, severity)
        direction = "ahead of" if skew > 0 else "behind"
        return (
            self.finding(
                "station.clock_skew",
                ts=event.ts,
                incident=f"station:{event.station}",
                summary=f"station {event.station} clock is {_human(abs(skew))} {direction} transport time"
                + (" (absurd timestamp)" if absurd else f" over {len(readings)} readings"),
                severity=severity,
                confidence=0.9 if absurd or len(readings) > 1 else 0.6,
                station=event.station,
                evidence={
                    "skew_s": round(skew, 3),
                    "readings_s": [round(s, 3) for s in readings],
                    "station_time": event.at.isoformat(),
                    "action": event.action[:40],
                    "queued": event.queued,
                    "absurd": absurd,
                },
            ),
        )


def _human(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172_800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86_400:.0f} days"
