"""OCPI events merged into a scan's event stream in event-time order, composed around the scan pipeline's engine.

``merge_into(pipeline, events)`` replaces the pipeline's engine by a :class:`MergedEngine` with the same detectors,
allow-list and callbacks: before each capture event it feeds the OCPI events whose ``ts`` is not later, and at end
of stream the rest, then finishes. ``events`` must come in ``ts`` order (``OcpiLoad.events()`` does); they are
pulled one at a time, so a lazy stream stays lazy. The pipeline itself is unchanged; a scan without OCPI files
does not use this.
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


class MergedEngine(Engine):
    """An Engine that interleaves a time-ordered side stream (OCPI events) with the events it is fed."""

    def __init__(self, base: Engine, side: Iterable[OcpiEvent]) -> None:
        super().__init__(
            base.detectors,
            allowlist=base.allowlist,
            merge_gap_s=base.merge_gap_s,
            max_open=base.max_open,
            max_evidence_items=base.max_evidence_items,
            on_open=base.on_open,
            on_close=base.on_close,
        )
        self._side: Iterator[OcpiEvent] = iter(side)
        self._head: OcpiEvent | None = next(self._side, None)
        self._next: datetime | None = None if self._head is None else self._head.ts
        self.side_events = 0
        self._inside = False

    def process(self, event: Event) -> None:
        if self._inside:
            super().process(event)
        else:
            self.process_many((event,))

    def process_many(self, events: Iterable[Event]) -> None:
        # ``_inside`` makes this correct whichever of process / process_many the base class implements with the
        # other: calls that come back through them while merging go straight to the base implementation
        if self._inside or self._next is None:
            super().process_many(events)
            return
        self._inside = True
        try:
            batch = events if isinstance(events, list | tuple) else list(events)
            upcoming = self._next
            if all(event.ts < upcoming for event in batch):  # the usual case: nothing to interleave
                super().process_many(batch)
                return
            for event in batch:
                if self._next is not None and self._next <= event.ts:
                    self._drain(event.ts)
                super().process_many((event,))
        finally:
            self._inside = False

    def _drain(self, until: datetime | None) -> None:
        # OCPI events extend the event vocabulary without being part of the shared union (see
        # chargeguard.sources.ocpi.events); the engine routes them by type like any other
        inside, self._inside = self._inside, True
        try:
            batch: list[Any] = []
            head = self._head
            while head is not None and (until is None or head.ts <= until):
                batch.append(head)
                if len(batch) >= _BATCH:
                    self._feed(batch)
                    batch = []
                head = next(self._side, None)
            self._head = head
            self._next = None if head is None else head.ts
            if batch:
                self._feed(batch)
        finally:
            self._inside = inside

    def _feed(self, batch: list[Any]) -> None:
        self.side_events += len(batch)
        super().process_many(cast(list[Event], batch))

    def finish(self) -> None:
        self._drain(None)
        super().finish()


def merge_into(pipeline: ScanPipeline, events: Iterable[OcpiEvent]) -> MergedEngine:
    """Make ``pipeline`` feed ``events`` in time order with its capture events; returns the new engine."""
    engine = MergedEngine(pipeline.engine, events)
    pipeline.engine = engine
    return engine
