"""StoreSink: batches alerts, transactions and station sightings from a scan or the gateway into the store.

The engine calls ``on_open(alert)`` / ``on_close(alert)``; sources hand every event to ``on_event(event)``,
of which the sink keeps TransactionEnded, StationBooted and ConnectionEvent. Rows are buffered and written in
one database transaction per ``batch_size`` rows (an alert opened and closed inside one batch is written once,
closed). ``close()`` flushes what is left. A failed write raises ``StoreError``; the batch stays buffered so a
caller may retry ``flush()``.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType

import structlog

from chargeguard.events import Alert, ConnectionEvent, Event, StationBooted, TransactionEnded
from chargeguard.store import Store

log = structlog.get_logger("chargeguard.sinks.store")

DEFAULT_BATCH_SIZE = 1000


@dataclass(slots=True)
class StoreSinkStats:
    alerts: int = 0
    transactions: int = 0
    sightings: int = 0
    flushes: int = 0


class StoreSink:
    """Buffers what a scan produces and writes it to a ``Store`` in batches."""

    def __init__(self, store: Store, *, batch_size: int = DEFAULT_BATCH_SIZE) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.store = store
        self.batch_size = batch_size
        self.stats = StoreSinkStats()
        self._alerts: dict[str, Alert] = {}
        self._transactions: list[TransactionEnded] = []
        self._sightings: list[StationBooted | ConnectionEvent] = []
        self._closed = False

    @property
    def pending(self) -> int:
        return len(self._alerts) + len(self._transactions) + len(self._sightings)

    # engine callbacks ---------------------------------------------------------------------------------------

    def on_open(self, alert: Alert) -> None:
        self._add_alert(alert)

    def on_close(self, alert: Alert) -> None:
        self._add_alert(alert)

    alert = on_close

    def _add_alert(self, alert: Alert) -> None:
        self._check_open()
        self._alerts[alert.id] = alert
        self._maybe_flush()

    # events -------------------------------------------------------------------------------------------------

    def on_event(self, event: Event) -> None:
        """Keep the events the store records; ignore the rest (cheap: one type check)."""
        if isinstance(event, TransactionEnded):
            self._check_open()
            self._transactions.append(event)
        elif isinstance(event, StationBooted | ConnectionEvent):
            self._check_open()
            self._sightings.append(event)
        else:
            return
        self._maybe_flush()

    event = on_event

    # batching -----------------------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("StoreSink used after close()")

    def _maybe_flush(self) -> None:
        if self.pending >= self.batch_size:
            self.flush()

    def flush(self) -> None:
        """Write everything buffered in one database transaction."""
        if not self.pending:
            return
        alerts, transactions, sightings = list(self._alerts.values()), self._transactions, self._sightings
        self.store.save_batch(alerts=alerts, transactions=transactions, sightings=sightings)
        self.stats.alerts += len(alerts)
        self.stats.transactions += len(transactions)
        self.stats.sightings += len(sightings)
        self.stats.flushes += 1
        self._alerts, self._transactions, self._sightings = {}, [], []

    def close(self) -> None:
        """Flush what is left; the store itself stays open (its owner closes it)."""
        if self._closed:
            return
        self.flush()
        self._closed = True
        log.debug(
            "sinks.store.closed",
            alerts=self.stats.alerts,
            transactions=self.stats.transactions,
            sightings=self.stats.sightings,
            flushes=self.stats.flushes,
        )

    def __enter__(self) -> StoreSink:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            # keep the error that stopped the scan; still try to save what was buffered
            try:
                self.close()
            except Exception:
                log.warning("sinks.store.flush_failed_after_error")
