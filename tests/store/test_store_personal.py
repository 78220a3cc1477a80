"""Retention and erasure over the store, driven by the vault's policy and erasure functions."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from sqlalchemy import create_engine, func, select

from chargeguard.allowlist import AllowEntry
from chargeguard.events import Alert, Severity, TransactionEnded
from chargeguard.store import Store, schema
from chargeguard.testing import an_event, at
from chargeguard.vault.audit import AuditLog
from chargeguard.vault.pseudonyms import Pseudonymiser
from chargeguard.vault.retention import DataKind, RetentionPolicy, apply_retention, erase_pseudonyms
from chargeguard.vault.sealed import Principal

P = Pseudonymiser({1: b"k" * 32}, 1)
ALICE, BOB = P.pseudonymise("04A2B3C4D5E6F7"), P.pseudonymise("04FFEEDDCCBBAA")


def an_alert(alert_id: str, minutes: float, token: str | None, evidence: dict[str, object]) -> Alert:
    return Alert(
        id=alert_id,
        kind="token.concurrent_use",
        severity=Severity.HIGH,
        confidence=0.9,
        ts=at(minutes),
        station="CP-1",
        stations=("CP-1", "CP-2"),
        transactions=("7",),
        token_ref=token,
        summary="s",
        evidence=evidence,
        last_ts=at(minutes + 5),
    )


def a_tx(n: int, minutes: float, token: str | None, stop: str | None = None) -> TransactionEnded:
    return an_event(
        TransactionEnded,
        transaction_id=str(n),
        started_at=at(minutes - 30),
        at=at(minutes),
        ts=at(minutes),
        token_ref=token,
        stop_token_ref=stop,
    )


def audit(tmp_path: Path) -> AuditLog:
    return AuditLog(create_engine(f"sqlite:///{tmp_path / 'audit.db'}"))


def test_the_store_holds_alerts_and_transactions(store: Store) -> None:
    assert store.kinds() == {DataKind.ALERTS, DataKind.TRANSACTIONS}


def test_retention_deletes_by_event_time(store: Store, tmp_path: Path) -> None:
    long_running = replace(
        an_alert("al_long", 0, None, {}), last_ts=at(70)
    )  # began before, lasted past the cutoff
    store.save_alerts([an_alert("al_old", 0, ALICE, {}), an_alert("al_new", 100, ALICE, {}), long_running])
    store.save_transactions([a_tx(1, 10, ALICE), a_tx(2, 200, BOB)])
    # "now" is BASE_TS + 3h: alerts before +1h go (their last evidence counts), transactions before +2h go
    policy = RetentionPolicy.parse({"alerts": "2h", "transactions": "1h"})
    removed = apply_retention(policy, [store], audit(tmp_path), clock=lambda: at(180))
    assert removed == {"alerts": 1, "transactions": 1}
    assert [a.id for a in store.alerts()] == ["al_new", "al_long"]
    assert [t.transaction_id for t in store.transactions()] == ["2"]
    with store._engine.connect() as conn:  # the old alert's stations and transactions went with it
        assert conn.execute(select(func.count()).select_from(schema.alert_stations)).scalar_one() == 4
        assert conn.execute(select(func.count()).select_from(schema.alert_transactions)).scalar_one() == 2


def test_erasure_removes_every_link_to_the_person(store: Store, tmp_path: Path) -> None:
    store.save_alerts(
        [
            an_alert("al_alice", 0, ALICE, {}),
            an_alert("al_station", 1, None, {"tokens": [ALICE, BOB], "note": "enumeration"}),
            an_alert("al_bob", 2, BOB, {"other": ALICE}),
        ]
    )
    store.save_transactions([a_tx(1, 10, ALICE), a_tx(2, 20, BOB, stop=ALICE), a_tx(3, 30, BOB)])
    store.add_allow(AllowEntry("token.*", "token", ALICE, at(600), "fleet card", "carol"))
    receipt = erase_pseudonyms(
        [ALICE.upper()],
        requester=Principal("dpo", frozenset({"vault.erase"})),
        reason="GDPR request #2026-17",
        stores=[store],
        audit=audit(tmp_path),
        pseudonymiser=P,
    )
    assert receipt.removed == {"alerts": 3, "transactions": 2}
    assert {a.id for a in store.alerts()} == {"al_station", "al_bob"}
    station = store.alert("al_station")
    bob = store.alert("al_bob")
    assert station is not None and station.evidence == {"tokens": ["[erased]", BOB], "note": "enumeration"}
    assert bob is not None and bob.evidence == {"other": "[erased]"} and bob.token_ref == BOB
    assert [t.transaction_id for t in store.transactions()] == ["3"]
    (entry,) = store.allow_records(include_removed=True)
    assert (entry.entry.value, entry.removed_by, entry.entry.added_by) == ("[erased]", "erasure", "carol")
    assert store.allow_entries() == []
    assert ALICE not in {
        p for v in store.pseudonym_versions() for p in store.pseudonyms_under(v, after=None, limit=99)
    }
