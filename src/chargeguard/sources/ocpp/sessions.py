"""Transaction assembly: what the normaliser knows about each open transaction, from start to stop.

Keyed by (station, transaction id) in bounded state; a connector index maps (station, connector) to the transaction
open on it, so StatusNotification ``Charging`` and connector-only MeterValues can be attributed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from chargeguard.detectors.state import BoundedState
from chargeguard.events import TransactionEnded


@dataclass(slots=True)
class OpenTransaction:
    station: str
    ocpp: str
    transaction_id: str
    connector: str | None
    token_ref: str | None
    started_at: datetime | None
    meter_start_wh: float | None
    auth_status: str | None = None
    samples: int = 0
    first_sample_wh: float | None = None
    last_sample_wh: float | None = None
    max_power_w: float | None = None
    charging_seen: bool = False
    queued: bool = False

    def add_sample(self, energy_wh: float | None, power_w: float | None) -> None:
        if energy_wh is not None:
            self.samples += 1
            if self.first_sample_wh is None:
                self.first_sample_wh = energy_wh
            self.last_sample_wh = energy_wh
        if power_w is not None:
            self.max_power_w = power_w if self.max_power_w is None else max(self.max_power_w, power_w)

    def ended(
        self,
        *,
        ts: datetime,
        at: datetime,
        meter_stop_wh: float | None,
        reason: str | None,
        stop_token_ref: str | None,
        queued: bool,
    ) -> TransactionEnded:
        return TransactionEnded(
            ts=ts,
            at=at,
            station=self.station,
            ocpp=self.ocpp,
            transaction_id=self.transaction_id,
            connector=self.connector,
            token_ref=self.token_ref,
            stop_token_ref=stop_token_ref,
            started_at=self.started_at,
            meter_start_wh=self.meter_start_wh,
            meter_stop_wh=meter_stop_wh,
            reason=reason,
            samples=self.samples,
            first_sample_wh=self.first_sample_wh,
            last_sample_wh=self.last_sample_wh,
            max_power_w=self.max_power_w,
            charging_seen=self.charging_seen,
            queued=queued or self.queued,
            auth_status=self.auth_status,
        )


class TransactionBook:
    """Open transactions per station, bounded."""

    def __init__(self, max_keys: int = 500_000, ttl_s: float = 7 * 86_400.0) -> None:
        self.open: BoundedState[tuple[str, str], OpenTransaction] = BoundedState(max_keys, ttl_s)
        self.by_connector: BoundedState[tuple[str, str], str] = BoundedState(max_keys, ttl_s)

    def get(self, station: str, transaction_id: str) -> OpenTransaction | None:
        return self.open.get((station, transaction_id))

    def start(self, tx: OpenTransaction, t: float) -> None:
        """Track ``tx`` from event time ``t`` (epoch seconds)."""
        self.open.put_at((tx.station, tx.transaction_id), tx, t)
        if tx.connector is not None:
            self.by_connector.put_at((tx.station, tx.connector), tx.transaction_id, t)

    def on_connector(self, station: str, connector: str) -> OpenTransaction | None:
        tx_id = self.by_connector.get((station, connector))
        return None if tx_id is None else self.open.get((station, tx_id))

    def finish(self, station: str, transaction_id: str) -> OpenTransaction | None:
        tx = self.open.pop((station, transaction_id))
        if (
            tx is not None
            and tx.connector is not None
            and self.by_connector.get((station, tx.connector)) == transaction_id
        ):
            self.by_connector.pop((station, tx.connector))
        return tx

    def __len__(self) -> int:
        return len(self.open)
