"""Transactions and stations in the store: round trips, uniqueness, upserts that never lose newer information."""

from __future__ import annotations

import msgspec

from chargeguard.events import ConnectionEvent, StationBooted, TransactionEnded
from chargeguard.store import Store
from chargeguard.testing import an_event, at

TOKEN = "tok1_abcdefghijklm23"
TOKEN_V2 = "tok2_abcdefghijklm23"


def a_transaction(**override: object) -> TransactionEnded:
    values: dict[str, object] = {
        "ts": at(62),
        "at": at(60),
        "station": "CP-0001",
        "ocpp": "2.0.1",
        "transaction_id": "f1c2-77",
        "connector": "1/2",
        "token_ref": TOKEN,
        "stop_token_ref": TOKEN_V2,
        "started_at": at(0),
        "meter_start_wh": 1000.0,
        "meter_stop_wh": 23500.25,
        "reason": "EVDisconnected",
        "samples": 12,
        "first_sample_wh": 1000.0,
        "last_sample_wh": 23500.25,
        "max_power_w": 22000.0,
        "charging_seen": True,
        "queued": True,
        "auth_status": "Accepted",
    }
    values.update(override)
    return an_event(TransactionEnded, **values)


def test_every_field_round_trips(store: Store) -> None:
    tx = a_transaction()
    assert store.save_transactions([tx]) == 1
    assert store.transactions() == [tx]
    assert store.transactions()[0].energy_wh == 22500.25


def test_nullable_fields_round_trip(store: Store) -> None:
    tx = a_transaction(
        connector=None,
        token_ref=None,
        stop_token_ref=None,
        started_at=None,
        meter_start_wh=None,
        meter_stop_wh=None,
        reason=None,
        first_sample_wh=None,
        last_sample_wh=None,
        max_power_w=None,
        charging_seen=False,
        queued=False,
        auth_status=None,
        samples=0,
    )
    store.save_transactions([tx])
    assert store.transactions() == [tx]


def test_same_station_transaction_and_start_is_one_row_updated_in_place(store: Store) -> None:
    store.save_transactions([a_transaction(meter_stop_wh=5000.0)])
    store.save_transactions([a_transaction(meter_stop_wh=9000.0, reason="Local")])
    (got,) = store.transactions()
    assert (got.meter_stop_wh, got.reason) == (9000.0, "Local")
    # the same transaction id reused later (1.6 ids are per station and wrap around) is another transaction
    store.save_transactions([a_transaction(started_at=at(600), at=at(660), ts=at(661))])
    assert len(store.transactions()) == 2
    # and the same id at another station too
    store.save_transactions([a_transaction(station="CP-0002")])
    assert len(store.transactions()) == 3


def test_transactions_whose_start_was_not_seen_are_unique_on_their_end(store: Store) -> None:
    tx = a_transaction(started_at=None)
    store.save_transactions([tx, msgspec.structs.replace(tx, samples=99)])
    store.save_transactions([msgspec.structs.replace(tx, samples=7)])
    (got,) = store.transactions()
    assert got.samples == 7
    store.save_transactions([msgspec.structs.replace(tx, at=at(90), ts=at(91))])
    assert len(store.transactions()) == 2


def test_transaction_filters(store: Store) -> None:
    store.save_transactions(
        [
            a_transaction(transaction_id="1", station="CP-1", at=at(10), ts=at(10)),
            a_transaction(transaction_id="2", station="CP-2", at=at(20), ts=at(20), token_ref=None),
            a_transaction(transaction_id="3", station="CP-1", at=at(30), ts=at(30)),
        ]
    )
    assert [t.transaction_id for t in store.transactions()] == ["3", "2", "1"]
    assert [t.transaction_id for t in store.transactions(station="CP-1")] == ["3", "1"]
    assert [t.transaction_id for t in store.transactions(since=at(20))] == ["3", "2"]
    assert [t.transaction_id for t in store.transactions(token_ref=TOKEN)] == ["3", "1"]
    assert [t.transaction_id for t in store.transactions(limit=1)] == ["3"]


def test_saving_pseudonyms_records_their_key_versions(store: Store) -> None:
    assert not store.has_pseudonymised_data()
    store.save_transactions([a_transaction()])
    assert store.has_pseudonymised_data()
    assert store.pseudonym_key_versions() == frozenset({1, 2})


def boot(ts_minutes: float, firmware: str, station: str = "CP-0001") -> StationBooted:
    return an_event(
        StationBooted,
        ts=at(ts_minutes),
        station=station,
        ocpp="1.6",
        vendor="ACME",
        model="Wallbox-22",
        serial="SN-1",
        firmware=firmware,
    )


def test_station_boot_round_trips(store: Store) -> None:
    store.save_station_boot(boot(0, "1.0.0"))
    (got,) = store.stations()
    assert (got.station, got.ocpp, got.vendor, got.model, got.serial, got.firmware) == (
        "CP-0001",
        "1.6",
        "ACME",
        "Wallbox-22",
        "SN-1",
        "1.0.0",
    )
    assert (got.first_seen, got.last_seen, got.last_boot, got.security_profile) == (at(0), at(0), at(0), None)


def test_a_newer_boot_updates_identity_and_an_older_one_does_not(store: Store) -> None:
    store.save_station_boot(boot(10, "2.0.0"))
    store.save_station_boot(boot(20, "2.1.0"))
    store.save_station_boot(boot(5, "1.0.0"))  # an old capture replayed later
    (got,) = store.stations()
    assert got.firmware == "2.1.0"
    assert (got.first_seen, got.last_seen, got.last_boot) == (at(5), at(20), at(20))


def test_sightings_in_one_batch_fold_like_separate_writes(store: Store) -> None:
    connect = an_event(ConnectionEvent, ts=at(30), station="CP-0001", event="connect", security_profile=2)
    lower = an_event(ConnectionEvent, ts=at(25), station="CP-0001", event="connect", security_profile=1)
    other = an_event(ConnectionEvent, ts=at(31), station="CP-0002", event="disconnect")
    assert store.save_station_sightings([boot(20, "2.1.0"), boot(10, "2.0.0"), connect, lower, other]) == 2
    one, two = store.stations()
    assert (one.firmware, one.security_profile, one.first_seen, one.last_seen) == ("2.1.0", 2, at(10), at(30))
    assert (two.station, two.vendor, two.security_profile, two.last_boot) == ("CP-0002", None, None, None)
    # a later connection at a lower profile is recorded (the detector judges it, the store keeps the fact)
    store.save_station_sightings(
        [an_event(ConnectionEvent, ts=at(40), station="CP-0001", event="connect", security_profile=0)]
    )
    assert store.stations()[0].security_profile == 0
    assert store.stations()[0].firmware == "2.1.0"
