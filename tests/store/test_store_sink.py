"""StoreSink: batching of alerts, transactions and station sightings from a real Engine into a real store."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

import pytest

from chargeguard.detectors.base import Detector, DetectorContext, DetectorInfo, NoConfig
from chargeguard.engine import Engine
from chargeguard.errors import StoreError
from chargeguard.events import (
    Alert,
    ConnectionEvent,
    Event,
    Finding,
    FrameSeen,
    Severity,
    StationBooted,
    TransactionEnded,
)
from chargeguard.sinks.store import StoreSink
from chargeguard.store import Store
from chargeguard.testing import an_event, at

TOKEN = "tok3_abcdefghijklm23"


class LongCharge(Detector[NoConfig]):
    """Test detector: one finding per transaction longer than 30 minutes, one incident per station."""

    info = DetectorInfo(
        name="test_long_charge", kinds=("session.test_long",), title="t", severity=Severity.LOW
    )
    consumes = (TransactionEnded,)

    def process(self, event: Event) -> Iterable[Finding]:
        assert isinstance(event, TransactionEnded)
        if (event.duration_s or 0) > 1800:
            yield self.finding(
                "session.test_long",
                ts=event.at,
                incident=event.station,
                summary="long",
                station=event.station,
                transactions=[event.transaction_id],
                token_ref=event.token_ref,
            )


def ended(n: int, station: str = "CP-1") -> TransactionEnded:
    return an_event(
        TransactionEnded,
        ts=at(n * 10 + 40),
        at=at(n * 10 + 40),
        started_at=at(n * 10),
        station=station,
        transaction_id=str(n),
        token_ref=TOKEN,
    )


def test_a_scan_lands_in_the_store_through_the_engine(store: Store) -> None:
    sink = StoreSink(store, batch_size=7)
    engine = Engine(
        [LongCharge(NoConfig(), DetectorContext())],
        merge_gap_s=3600,
        on_open=sink.on_open,
        on_close=sink.on_close,
    )
    events: list[Event] = [
        an_event(StationBooted, ts=at(-5), station="CP-1"),
        an_event(ConnectionEvent, ts=at(-6), station="CP-2", event="connect", security_profile=2),
        an_event(FrameSeen, ts=at(-4)),  # not for the store
    ]
    events += [ended(n, station=f"CP-{n % 2 + 1}") for n in range(20)]
    for event in events:
        sink.on_event(event)
        engine.process(event)
    engine.finish()
    sink.close()
    assert len(store.transactions(limit=100)) == 20
    alerts = store.alerts()
    assert sorted((a.station, a.status, a.count) for a in alerts) == [
        ("CP-1", "closed", 10),
        ("CP-2", "closed", 10),
    ]
    assert sorted(int(t) for a in alerts for t in a.transactions) == list(range(20))
    assert [s.station for s in store.stations()] == ["CP-1", "CP-2"]
    assert store.pseudonym_key_versions() == frozenset({3})
    assert sink.stats.flushes >= 3  # 22 kept rows in batches of 7, plus the close
    assert sink.stats.transactions == 20


def test_rows_wait_for_the_batch_and_close_flushes(store: Store) -> None:
    sink = StoreSink(store, batch_size=3)
    sink.on_event(ended(1))
    sink.on_event(ended(2))
    assert store.transactions() == [] and sink.pending == 2
    sink.on_event(ended(3))
    assert len(store.transactions()) == 3 and sink.pending == 0
    sink.on_event(ended(4))
    sink.close()
    assert len(store.transactions()) == 4
    sink.close()  # idempotent
    with pytest.raises(RuntimeError, match="after close"):
        sink.on_event(ended(5))


def test_an_alert_opened_and_closed_in_one_batch_is_written_once_closed(store: Store) -> None:
    opened = Alert(
        id="al_1",
        kind="session.test_long",
        severity=Severity.LOW,
        confidence=0.5,
        ts=at(0),
        station="CP-1",
        stations=("CP-1",),
        transactions=("1",),
        token_ref=None,
        summary="s",
        evidence={},
    )
    sink = StoreSink(store, batch_size=1000)
    sink.on_open(opened)
    sink.on_close(replace(opened, status="closed", count=2))
    assert sink.pending == 1
    sink.close()
    assert [(a.status, a.count) for a in store.alerts()] == [("closed", 2)]


def test_store_sink_from_the_store_and_as_context_manager(store: Store) -> None:
    with store.sink(batch_size=50) as sink:
        sink.event(ended(1))
        sink.alert(
            Alert(
                id="al_2",
                kind="k.x",
                severity=Severity.INFO,
                confidence=1.0,
                ts=at(0),
                station=None,
                stations=(),
                transactions=(),
                token_ref=None,
                summary="s",
                evidence={},
            )
        )
    assert len(store.transactions()) == 1 and len(store.alerts()) == 1


def test_a_failed_write_keeps_the_batch_for_a_retry(store: Store, tmp_path: Path) -> None:
    sink = StoreSink(store, batch_size=100)
    sink.on_event(ended(1))
    naive = an_event(TransactionEnded, ts=at(1), at=at(1).replace(tzinfo=None), transaction_id="bad")
    sink.on_event(naive)
    with pytest.raises(StoreError):
        sink.flush()
    assert sink.pending == 2 and store.transactions() == []


def test_batch_size_must_be_positive(store: Store) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        StoreSink(store, batch_size=0)
