"""OCPI events merged into a scan's event stream in event-time order.

``merge_into(pipeline, events)`` hands the scan pipeline a :class:`SideStream`: before each capture event the
pipeline feeds its engine the OCPI events whose ``ts`` is not later, and at end of stream the rest, before the
engine finishes. ``events`` must come in ``ts`` order (``OcpiLoad.events()`` does); they are pulled one at a time,
so a lazy stream stays lazy. A scan without OCPI files has no side stream and pays nothing for it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any, cast

from chargeguard.engine import Engine
from chargeguard.events import Event
from chargeguard.pipeline import ScanPipeline
from chargeguard.sources.ocpi.files import OcpiEvent

_BATCH = 1024


class SideStream:
    """A time-ordered stream of extra events, fed to an engine between the events of the main stream."""

    def __init__(self, events: Iterable[OcpiEvent]) -> None:
        self._events: Iterator[OcpiEvent] = iter(events)
        self._head: OcpiEvent | None = next(self._events, None)
        self.next_ts: datetime | None = None if self._head is None else self._head.ts
        """The time of the next side event, or None when the stream is spent."""
        self.fed = 0

    def feed(self, engine: Engine, events: Iterable[Event]) -> None:
        """Feed ``events`` (main stream, in order) to ``engine`` with the side events due before each."""
        upcoming = self.next_ts
        batch = events if isinstance(events, list | tuple) else list(events)
        if upcoming is None or all(event.ts < upcoming for event in batch):  # the usual case: nothing due
            engine.process_many(batch)
            return
        for event in batch:
            self.feed_until(engine, event.ts)
            engine.process(event)

    def feed_until(self, engine: Engine, until: datetime | None) -> None:
        """Feed the side events with ``ts`` not after ``until`` (all of them for None), in chunks."""
        head = self._head
        if head is None or (until is not None and head.ts > until):
            return
        # OCPI events extend the event vocabulary without being part of the shared union (see
        # chargeguard.sources.ocpi.events); the engine routes them by type like any other
        batch: list[Any] = []
        while head is not None and (until is None or head.ts <= until):
            batch.append(head)
            if len(batch) >= _BATCH:
                self._feed(engine, batch)
                batch = []
            head = next(self._events, None)
        self._head = head
        self.next_ts = None if head is None else head.ts
        if batch:
            self._feed(engine, batch)

    def _feed(self, engine: Engine, batch: list[Any]) -> None:
        self.fed += len(batch)
        engine.process_many(cast(list[Event], batch))


def merge_into(pipeline: ScanPipeline, events: Iterable[OcpiEvent]) -> SideStream:
    """Make ``pipeline`` feed ``events`` in time order with its capture events; returns the side stream."""
    side = SideStream(events)
    pipeline.side = side
    return side
