"""Key rotation over the store: pseudonyms in every column and in evidence move to the new key version."""

from __future__ import annotations

import pytest

from chargeguard.allowlist import AllowEntry
from chargeguard.events import Alert, Severity, TransactionEnded
from chargeguard.store import Store
from chargeguard.testing import an_event, at
from chargeguard.vault.pseudonyms import Pseudonymiser
from chargeguard.vault.rotation import PseudonymRekeyStore, rotate

OLD = Pseudonymiser({1: b"k" * 32}, 1)
LAYERED = Pseudonymiser({1: b"k" * 32, 2: b"n" * 32}, 2, layers={2: 1})
CARDS = [f"04A2B3C4D5E6{i:02X}" for i in range(12)]
STORED = [0, 1, 2, 3, 4, 5, 6, 8, 9, 10, 11]  # card 7 is never stored


def v1(i: int) -> str:
    return OLD.pseudonymise(CARDS[i])


def fill(store: Store) -> None:
    store.save_transactions(
        [
            an_event(
                TransactionEnded,
                transaction_id=str(i),
                started_at=at(i),
                at=at(i + 1),
                ts=at(i + 1),
                token_ref=v1(i),
                stop_token_ref=v1(i + 1) if i % 2 else None,
            )
            for i in range(6)
        ]
    )
    store.save_alerts(
        [
            Alert(
                id="al_enum",
                kind="token.enumeration",
                severity=Severity.HIGH,
                confidence=0.9,
                ts=at(0),
                station="CP-1",
                stations=("CP-1",),
                transactions=(),
                token_ref=None,
                summary="many cards",
                evidence={"tokens": [v1(8), v1(9)], "first": {"token": v1(10)}, "note": "tok1_notapseudonym"},
            ),
            Alert(
                id="al_use",
                kind="token.concurrent_use",
                severity=Severity.HIGH,
                confidence=0.9,
                ts=at(1),
                station="CP-1",
                stations=("CP-1", "CP-2"),
                transactions=("1", "2"),
                token_ref=v1(0),
                summary="s",
                evidence={},
            ),
        ]
    )
    store.add_allow(AllowEntry("token.*", "token", v1(11), at(600), "fleet", "alice"))
    store.add_allow(AllowEntry("*", "station", "CP-9", at(600), "test station", "alice"))


def test_the_store_is_a_rekey_store(store: Store) -> None:
    assert isinstance(store, PseudonymRekeyStore)


def test_versions_and_listing_cover_columns_and_evidence(store: Store) -> None:
    fill(store)
    expected = sorted(v1(i) for i in STORED)
    assert store.pseudonym_versions() == {1: 11}
    assert store.pseudonyms_under(1, after=None, limit=100) == expected
    assert store.pseudonyms_under(1, after=None, limit=5) == expected[:5]
    assert store.pseudonyms_under(1, after=expected[4], limit=5) == expected[5:10]
    assert store.pseudonyms_under(2, after=None, limit=5) == []


def test_rotation_moves_every_occurrence(store: Store) -> None:
    fill(store)
    report = rotate(LAYERED, store, batch_size=5)
    assert report.complete and report.remaining == {}
    assert store.pseudonym_versions() == {2: 11}
    new = {i: LAYERED.pseudonymise(CARDS[i]) for i in range(12)}
    assert all(p.startswith("tok2_") for p in new.values())
    txs = {t.transaction_id: t for t in store.transactions()}
    assert [txs[str(i)].token_ref for i in range(6)] == [new[i] for i in range(6)]
    assert txs["1"].stop_token_ref == new[2] and txs["0"].stop_token_ref is None
    enum = store.alert("al_enum")
    assert enum is not None
    assert enum.evidence == {
        "tokens": [new[8], new[9]],
        "first": {"token": new[10]},
        "note": "tok1_notapseudonym",
    }
    use = store.alert("al_use")
    assert use is not None and use.token_ref == new[0] and use.transactions == ("1", "2")
    assert [e.value for e in store.allow_entries()] == [new[11], "CP-9"]
    assert 2 in store.pseudonym_key_versions()
    # running it again finds nothing left to move
    again = rotate(LAYERED, store, batch_size=5)
    assert again.rows_changed == 0 and again.complete


def test_rekey_reports_rows_changed(store: Store) -> None:
    fill(store)
    assert store.rekey({v1(1): LAYERED.upgrade(v1(1)) or ""}) == 1
    assert store.rekey({v1(2): LAYERED.upgrade(v1(2)) or ""}) == 2  # tx 2's token and tx 1's stop token
    assert store.rekey({v1(9): LAYERED.upgrade(v1(9)) or ""}) == 1  # one alert's evidence
    assert store.rekey({}) == 0


@pytest.mark.parametrize("limit", [1, 3])
def test_listing_pages_through_everything(store: Store, limit: int) -> None:
    fill(store)
    seen: list[str] = []
    after: str | None = None
    while page := store.pseudonyms_under(1, after=after, limit=limit):
        seen += page
        after = max(page)
    assert seen == sorted(v1(i) for i in STORED)
