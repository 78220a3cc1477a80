"""Attacker-controlled text (NUL, lone surrogates, any Unicode) never fails a write; it is stored cleaned."""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chargeguard.events import Alert, ConnectionEvent, Severity, StationBooted, TransactionEnded
from chargeguard.store import Store
from chargeguard.store.clean import clean_json, clean_text
from chargeguard.testing import an_event, at

_ids = itertools.count()
text = st.text(st.characters(codec=None, exclude_categories=()), max_size=40)  # includes NUL and surrogates
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=12,
)


def test_clean_text() -> None:
    assert clean_text("CP-\x00-1") == "CP-\ufffd-1"
    assert clean_text("a\ud800b") == "a\ufffdb"
    assert clean_text("Zürich ⚡") == "Zürich ⚡"
    assert clean_text(None) is None
    assert clean_json({"k\x00": ["\ud83d", 1, None]}) == {"k\ufffd": ["\ufffd", 1, None]}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    station=text,
    summary=text,
    evidence=st.dictionaries(text, json_values, max_size=4),
    stations=st.lists(text, max_size=3),
)
def test_any_text_is_stored_cleaned(
    store: Store, station: str, summary: str, evidence: dict[str, Any], stations: list[str]
) -> None:
    alert_id = f"al_text_{next(_ids)}"
    alert = Alert(
        id=alert_id,
        kind="ocpp.malformed",
        severity=Severity.LOW,
        confidence=0.5,
        ts=at(0),
        station=station,
        stations=tuple(stations),
        transactions=(summary,),
        token_ref=None,
        summary=summary,
        evidence=evidence,
    )
    store.save_alerts([alert])
    got = store.alert(alert_id)
    assert got is not None
    assert got.station == clean_text(station)
    assert got.summary == clean_text(summary)
    assert list(got.stations) == [clean_text(s) for s in stations]
    assert got.transactions == (clean_text(summary),)
    assert got.evidence == clean_json(evidence)


def test_hostile_station_ids_in_transactions_and_sightings(store: Store) -> None:
    hostile = "CP-\x00\ud800-evil"
    store.save_batch(
        transactions=[
            an_event(TransactionEnded, station=hostile, started_at=at(0), at=at(30), reason="x\x00")
        ],
        sightings=[
            an_event(StationBooted, station=hostile, vendor="V\x00", firmware="1.0\ud800"),
            an_event(ConnectionEvent, station=hostile, event="connect", security_profile=1),
        ],
    )
    (tx,) = store.transactions()
    assert (tx.station, tx.reason) == ("CP-\ufffd\ufffd-evil", "x\ufffd")
    (station,) = store.stations()
    assert (station.station, station.vendor, station.firmware) == (
        "CP-\ufffd\ufffd-evil",
        "V\ufffd",
        "1.0\ufffd",
    )
