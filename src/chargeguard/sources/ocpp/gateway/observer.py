"""The gateway's observer hook: every capture line (frames, connections, the gateway's own actions) goes here.

Lines are exactly the capture format of issue 2 (docs/formats.md): frame lines carry ``ts``, ``station``,
``ocpp``, ``from`` and ``frame``; connection lines carry ``ts``, ``station``, ``event`` (connect, disconnect,
auth_failed, action), ``remote``, ``security_profile`` and ``detail``. Frames are passed exactly as they crossed
the wire (raw tokens included): an observer that stores or prints them must pseudonymise, as
:class:`~chargeguard.sources.ocpp.gateway.capture_writer.CaptureWriter` does. Observers are called inline on the
relay path and must not block; a failing observer is logged and counted, never breaks the relay.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import structlog

log = structlog.get_logger("chargeguard.gateway.observer")

CaptureLine = dict[str, Any]


class FrameObserver(Protocol):
    """Receives capture-format lines from the gateway."""

    def on_connection(self, line: CaptureLine) -> None: ...

    def on_frame(self, line: CaptureLine) -> None: ...


def rfc3339(now: dt.datetime) -> str:
    """Capture timestamp: UTC with milliseconds and a Z."""
    return now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


class Timestamps:
    """Capture timestamps for "now": from an injected wall clock, or (default) from ``time.time()`` with the
    formatted second cached, since every relayed frame needs one."""

    __slots__ = ("_prefix", "_second", "_wall_clock")

    def __init__(self, wall_clock: Callable[[], dt.datetime] | None = None) -> None:
        self._wall_clock = wall_clock
        self._second = -1
        self._prefix = ""

    def __call__(self) -> str:
        if self._wall_clock is not None:
            return rfc3339(self._wall_clock())
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._prefix}.{int((now - second) * 1000):03d}Z"


class ObserverFanout:
    """Calls several observers in order, isolating failures (counted in ``failures``)."""

    def __init__(self, observers: Sequence[FrameObserver]) -> None:
        self.observers = tuple(observers)
        self.failures = 0

    def on_connection(self, line: CaptureLine) -> None:
        for observer in self.observers:
            try:
                observer.on_connection(line)
            except Exception as exc:
                self.failures += 1
                log.error(
                    "gateway.observer.failed", observer=type(observer).__name__, error=type(exc).__name__
                )

    def on_frame(self, line: CaptureLine) -> None:
        for observer in self.observers:
            try:
                observer.on_frame(line)
            except Exception as exc:
                self.failures += 1
                log.error(
                    "gateway.observer.failed", observer=type(observer).__name__, error=type(exc).__name__
                )


class CollectingObserver:
    """Keeps every line in memory (tests, debugging)."""

    def __init__(self) -> None:
        self.lines: list[CaptureLine] = []

    def on_connection(self, line: CaptureLine) -> None:
        self.lines.append(line)

    def on_frame(self, line: CaptureLine) -> None:
        self.lines.append(line)

    def events(self, event: str) -> list[CaptureLine]:
        return [line for line in self.lines if line.get("event") == event]

    def frames(self) -> list[CaptureLine]:
        return [line for line in self.lines if "frame" in line]
