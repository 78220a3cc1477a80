"""What the metering rules share: a transaction's register readings, connector ratings and incident keys."""

from __future__ import annotations

from dataclasses import dataclass, field

from chargeguard.detectors.base import DetectorContext
from chargeguard.detectors.rules.txbook import TxBook, connector_key
from chargeguard.events import TransactionStarted

BOUNDARY_CONTEXTS = frozenset({"Transaction.Begin", "Transaction.End"})
"""Sample contexts taken at the start or stop of a transaction (the others are readings while it runs)."""


@dataclass(slots=True)
class Readings:
    """One transaction's register as a metering detector saw it (station time in epoch seconds, Wh)."""

    ocpp: str = "1.6"
    connector: str | None = None
    start_wh: float | None = None
    start_at: float | None = None
    samples: int = 0
    peak_wh: float | None = None
    peak_at: float | None = None
    first_wh: float | None = None
    first_at: float | None = None
    last_wh: float | None = None
    last_at: float | None = None
    running_wh: float | None = None  # latest reading taken while running (no Transaction.End sample)
    running_at: float | None = None
    max_rate_w: float = 0.0  # fastest rise between two readings, or highest sampled power
    fired: set[str] = field(default_factory=set)
    limit: tuple[str | None, float, str] | None = None  # a detector's cached (connector, rating kW, source)

    def started(self, event: TransactionStarted) -> None:
        self.ocpp, self.connector = event.ocpp, event.connector
        self.start_wh, self.start_at = event.meter_start_wh, event.at.timestamp()
        if event.meter_start_wh is not None and (self.peak_wh is None or event.meter_start_wh > self.peak_wh):
            self.peak_wh, self.peak_at = event.meter_start_wh, self.start_at

    def sampled(self, wh: float, at: float, context: str | None) -> None:
        """Record a register reading (after the detector compared it with what came before).

        ``max_rate_w`` only learns from readings taken while the transaction ran, never from a boundary reading
        that may be the very value under suspicion.
        """
        running = context not in BOUNDARY_CONTEXTS
        if running:
            running_at = self.running_at
            if running_at is None:
                self.running_wh, self.running_at = wh, at
            else:
                if at > running_at and self.running_wh is not None:
                    rate = (wh - self.running_wh) / (at - running_at) * 3600.0
                    if rate > self.max_rate_w:
                        self.max_rate_w = rate
                if at >= running_at:
                    self.running_wh, self.running_at = wh, at
        self.samples += 1
        first_at = self.first_at
        if first_at is None or at < first_at:
            self.first_wh, self.first_at = wh, at
        last_at = self.last_at
        if last_at is None or at >= last_at:
            self.last_wh, self.last_at = wh, at
        peak = self.peak_wh
        if peak is None or wh > peak:
            self.peak_wh, self.peak_at = wh, at


def started(book: TxBook[Readings], event: TransactionStarted) -> Readings:
    readings = book.touch(event.station, event.transaction_id, event.ts, event.connector)
    readings.started(event)
    return readings


def capacity_kw(
    context: DetectorContext, station: str, connector: str | None, default_kw: float
) -> tuple[float, str]:
    """The most power ``connector`` can deliver and where that figure came from ("inventory" or "default")."""
    info = context.inventory.get(station)
    kw = None if info is None else info.connector_max_kw(connector)
    if kw is None or kw <= 0:
        return default_kw, "default"
    return kw, "inventory"


def incident_key(station: str, connector: str | None) -> str:
    """One meter, one incident: the station and its connector (1.6) or EVSE (2.0.1)."""
    return f"{station}\x1f{connector_key(connector) or '?'}"
