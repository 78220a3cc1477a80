"""Per-transaction detector state: keyed by (station, transaction id), found again from meter samples.

1.6 MeterValues may omit ``transactionId``; such a sample belongs to the transaction open on its connector.
The book keeps a (station, connector) -> transaction index for that, and everything lives in BoundedState.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Generic, TypeVar

from chargeguard.detectors.base import DetectorContext
from chargeguard.detectors.state import BoundedState
from chargeguard.events import TransactionStarted

V = TypeVar("V")

TxKey = tuple[str, str]

ENDED_MEMORY_S = 3600.0  # how long an ended transaction's id is remembered (late answers, trailing samples)


def connector_key(connector: str | None) -> str | None:
    """The unit that carries one transaction at a time: the 1.6 connector, the 2.0.1 EVSE.

    1.6 connectors are written ``"2"``; 2.0.1 connectors ``"<evseId>/<connectorId>"`` (or ``"<evseId>"``), and an
    EVSE delivers energy to one EV at a time, so ``"1/1"``, ``"1/2"`` and ``"1"`` are one place. Connector
    ``"0"`` (the whole station) and None are unknown.
    """
    if connector is None:
        return None
    unit = connector.split("/", 1)[0].strip()
    return None if unit in ("", "0") else unit


class TxBook(Generic[V]):
    """Per-transaction values of one detector, created by ``factory`` on first sight."""

    def __init__(self, factory: Callable[[], V], context: DetectorContext) -> None:
        limits = context.limits
        self._factory = factory
        self._tx: BoundedState[TxKey, V] = BoundedState(limits.max_keys, limits.ttl_s)
        self._open_on: BoundedState[TxKey, str] = BoundedState(limits.max_keys, limits.ttl_s)
        self._ended: BoundedState[TxKey, bool] = BoundedState(limits.max_keys, ENDED_MEMORY_S)

    def __len__(self) -> int:
        return len(self._tx) + len(self._open_on) + len(self._ended)

    def ended(self, station: str, transaction_id: str) -> bool:
        """Whether the transaction ended recently (answers and samples that trail its end belong to no new one)."""
        return (station, transaction_id) in self._ended

    def get(self, station: str, transaction_id: str) -> V | None:
        return self._tx.get((station, transaction_id))

    def touch(self, station: str, transaction_id: str, ts: datetime, connector: str | None = None) -> V:
        """The value for a transaction (created when new); indexes its connector when given."""
        value = self._tx.setdefault((station, transaction_id), self._factory, ts)
        if connector is not None:
            self._open_on.put((station, connector), transaction_id, ts)
        return value

    def resolve(self, station: str, transaction_id: str | None, connector: str | None) -> str | None:
        """The transaction a sample belongs to: its own id, else the one open on its connector."""
        if transaction_id is not None:
            return transaction_id
        if connector is None:
            return None
        return self._open_on.get((station, connector))

    def for_sample(
        self, station: str, transaction_id: str | None, connector: str | None, ts: datetime
    ) -> V | None:
        """The value of the transaction a meter sample belongs to, or None when it belongs to none known."""
        if transaction_id is not None:
            known = self._tx.get((station, transaction_id))
            if known is not None:
                return (
                    known  # samples do not refresh the entry: the start did, and TTLs outlast any transaction
                )
            if (station, transaction_id) in self._ended:
                return None
            return self.touch(station, transaction_id, ts)
        if connector is None:
            return None
        tx = self._open_on.get((station, connector))
        return None if tx is None else self._tx.get((station, tx))

    def pop(self, station: str, transaction_id: str, ts: datetime, connector: str | None = None) -> V | None:
        """Forget an ended transaction (remembering for a while that it ended); returns its value."""
        if connector is not None and self._open_on.get((station, connector)) == transaction_id:
            self._open_on.pop((station, connector))
        self._ended.put((station, transaction_id), True, ts)
        return self._tx.pop((station, transaction_id))

    def items(self) -> Iterator[tuple[TxKey, V]]:
        return self._tx.items()


QUEUED_AFTER_S = 600.0  # an answer to a request this much older than its arrival came from an offline queue


def iso_time(epoch: float) -> str:
    """An epoch time as RFC 3339 UTC text, for evidence."""
    return datetime.fromtimestamp(epoch, UTC).isoformat()


@dataclass(slots=True)
class TxFacts:
    """What a token detector remembers of an open transaction."""

    token_ref: str | None = None
    start: float | None = None
    connector: str | None = None
    queued: bool = False


def remember_start(book: TxBook[TxFacts], ev: TransactionStarted) -> TxFacts:
    """Record a transaction start in a token detector's book."""
    facts = book.touch(ev.station, ev.transaction_id, ev.ts, ev.connector)
    facts.start = ev.at.timestamp() if facts.start is None else min(facts.start, ev.at.timestamp())
    facts.connector = ev.connector or facts.connector
    facts.queued = ev.queued
    facts.token_ref = ev.token_ref or facts.token_ref
    return facts
