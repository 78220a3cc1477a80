"""Key rotation: layered keys keep linkage without raw tokens, re-derivation, resumption, refusals."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from chargeguard.errors import KeyMaterialError, VaultError
from chargeguard.vault.keys import add_key_version, read_key_ring, retire_key_version, write_new_key_file
from chargeguard.vault.pseudonyms import Pseudonymiser
from chargeguard.vault.rotation import lookup_candidates, rotate

K1, K2, K3 = b"1" * 32, b"2" * 32, b"3" * 32
TOKENS = [f"04A2B3C4D5E6{i:02X}" for i in range(40)]


class MemoryStore:
    """In-memory reference implementation of PseudonymRekeyStore: a list of (row id, token_ref) rows."""

    def __init__(self, pseudonymiser: Pseudonymiser, refs: Sequence[str]) -> None:
        self.p = pseudonymiser
        self.rows = {i: ref for i, ref in enumerate(refs)}
        self.rekey_calls = 0
        self.fail_after: int | None = None

    def pseudonym_versions(self) -> Mapping[int, int]:
        out: dict[int, int] = {}
        for ref in set(self.rows.values()):
            version = int(ref[3 : ref.index("_")])
            out[version] = out.get(version, 0) + 1
        return out

    def pseudonyms_under(self, version: int, *, after: str | None, limit: int) -> Sequence[str]:
        prefix = f"tok{version}_"
        refs = sorted(
            {r for r in self.rows.values() if r.startswith(prefix) and (after is None or r > after)}
        )
        return refs[:limit]

    def rekey(self, mapping: Mapping[str, str]) -> int:
        if self.fail_after is not None and self.rekey_calls >= self.fail_after:
            raise RuntimeError("simulated crash")
        self.rekey_calls += 1
        changed = 0
        for row, ref in self.rows.items():
            if ref in mapping:
                self.rows[row] = mapping[ref]
                changed += 1
        return changed


class SqliteStore:
    """PseudonymRekeyStore over a real SQLite table (two columns hold pseudonyms)."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path)
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS sessions (id INTEGER PRIMARY KEY, token_ref TEXT, stop_ref TEXT)"
        )

    def insert(self, token_ref: str, stop_ref: str | None) -> None:
        with self.db:
            self.db.execute("INSERT INTO sessions (token_ref, stop_ref) VALUES (?, ?)", (token_ref, stop_ref))

    def _refs(self) -> str:
        return (
            "SELECT token_ref AS r FROM sessions UNION SELECT stop_ref FROM sessions WHERE stop_ref NOTNULL"
        )

    def pseudonym_versions(self) -> Mapping[int, int]:
        rows = self.db.execute(
            f"SELECT substr(r, 4, instr(r, '_') - 4), count(*) FROM ({self._refs()}) GROUP BY 1"
        ).fetchall()
        return {int(v): n for v, n in rows}

    def pseudonyms_under(self, version: int, *, after: str | None, limit: int) -> Sequence[str]:
        rows = self.db.execute(
            f"SELECT r FROM ({self._refs()}) WHERE substr(r, 1, ?) = ? AND r > ? ORDER BY r LIMIT ?",
            (len(f"tok{version}_"), f"tok{version}_", after or "", limit),
        ).fetchall()
        return [r for (r,) in rows]

    def rekey(self, mapping: Mapping[str, str]) -> int:
        changed = 0
        with self.db:  # one transaction per batch
            for old, new in mapping.items():
                changed += self.db.execute(
                    "UPDATE sessions SET token_ref = ? WHERE token_ref = ?", (new, old)
                ).rowcount
                changed += self.db.execute(
                    "UPDATE sessions SET stop_ref = ? WHERE stop_ref = ?", (new, old)
                ).rowcount
        return changed

    def all_refs(self) -> list[str]:
        return [r for (r,) in self.db.execute(self._refs()).fetchall()]


def test_layered_pseudonym_equals_upgrade_of_old_pseudonym() -> None:
    old = Pseudonymiser({1: K1}, 1)
    new = Pseudonymiser({1: K1, 2: K2}, 2, layers={2: 1})
    for token in TOKENS[:5]:
        assert new(token) == new.upgrade(old(token))
        assert new.version_of(new(token)) == 2
        assert new(old(token)) == new(token)  # an old pseudonym on input is moved, so linkage holds
        assert new(token) != old(token)
    three = Pseudonymiser({1: K1, 2: K2, 3: K3}, 3, layers={3: 2, 2: 1})
    assert three.upgrade(old("04A2B3C4")) == three("04A2B3C4")


def test_fresh_key_cannot_upgrade_and_old_pseudonym_passes_unchanged() -> None:
    old = Pseudonymiser({1: K1}, 1)
    fresh = Pseudonymiser({1: K1, 2: K2}, 2)
    p1 = old("04A2B3C4")
    assert fresh.upgrade(p1) is None
    assert fresh(p1) == p1
    with pytest.raises(KeyMaterialError, match="not a layer"):
        fresh.layer(2, p1)


def test_pseudonymiser_refuses_bad_layers_and_unknown_version() -> None:
    with pytest.raises(KeyMaterialError):
        Pseudonymiser({1: K1, 2: K2}, 2, layers={2: 3})
    with pytest.raises(KeyMaterialError):
        Pseudonymiser({1: K1, 2: K2}, 2, layers={1: 2})
    with pytest.raises(KeyMaterialError, match="version 7 is not loaded"):
        Pseudonymiser({1: K1}, 1).hash_under(7, "x")


def test_layered_rotation_moves_every_record_and_keeps_linkage() -> None:
    old = Pseudonymiser({1: K1}, 1)
    store = MemoryStore(old, [old(t) for t in TOKENS] + [old(TOKENS[0])])
    new = Pseudonymiser({1: K1, 2: K2}, 2, layers={2: 1})
    report = rotate(new, store, batch_size=7)
    assert report.complete and report.layered == len(TOKENS) and report.rows_changed == len(TOKENS) + 1
    assert sorted(store.rows.values()) == sorted([new(t) for t in TOKENS] + [new(TOKENS[0])])
    assert rotate(new, store).moved == {}  # idempotent


def test_interrupted_rotation_resumes_and_never_leaves_records_keyless() -> None:
    old = Pseudonymiser({1: K1}, 1)
    store = MemoryStore(old, [old(t) for t in TOKENS])
    new = Pseudonymiser({1: K1, 2: K2}, 2, layers={2: 1})
    store.fail_after = 2
    with pytest.raises(RuntimeError):
        rotate(new, store, batch_size=5)
    versions = store.pseudonym_versions()
    assert versions == {1: 30, 2: 10}
    assert all(new.version_of(ref) in (1, 2) for ref in store.rows.values())
    # mid-rotation lookups find a card under either version
    for token in (TOKENS[0], TOKENS[-1]):
        assert set(lookup_candidates(new, token, versions)) & set(store.rows.values())
    store.fail_after = None
    report = rotate(new, store, batch_size=5)
    assert report.complete and report.moved == {1: 30}
    assert sorted(store.rows.values()) == sorted(new(t) for t in TOKENS)


def test_rotation_refuses_when_store_holds_unknown_version() -> None:
    old = Pseudonymiser({1: K1}, 1)
    store = MemoryStore(old, [old("04A2B3C4")])
    lost = Pseudonymiser({2: K2}, 2)  # version 1 key lost
    with pytest.raises(KeyMaterialError, match=r"version\(s\) \[1\]"):
        rotate(lost, store)
    assert store.rekey_calls == 0


def test_fresh_key_rotation_rederives_from_sealed_and_reports_unmovable() -> None:
    old = Pseudonymiser({1: K1}, 1)
    sealed = {old(t): t for t in TOKENS[:10]}  # stands in for the sealed-token vault
    store = MemoryStore(old, [old(t) for t in TOKENS[:15]])
    fresh = Pseudonymiser({1: K1, 2: K2}, 2)

    def rederive(refs: Sequence[str]) -> Mapping[str, str]:
        return {r: fresh.hash_under(2, sealed[r]) for r in refs if r in sealed}

    report = rotate(fresh, store, rederive=rederive, batch_size=4)
    assert report.rederived == 10 and report.unmovable == {1: 5}
    assert not report.complete and report.remaining == {1: 5}
    assert {fresh(t) for t in TOKENS[:10]} <= set(store.rows.values())


def test_rederive_returning_garbage_is_refused() -> None:
    old = Pseudonymiser({1: K1}, 1)
    store = MemoryStore(old, [old("04A2B3C4")])
    fresh = Pseudonymiser({1: K1, 2: K2}, 2)
    with pytest.raises(VaultError):
        rotate(fresh, store, rederive=lambda refs: {r: "tok2_notvalidatall00" for r in refs})


def test_rotation_through_key_file_and_sqlite_table(tmp_path: Path) -> None:
    key_file = tmp_path / "keys"
    write_new_key_file(key_file)
    ring = read_key_ring(key_file)
    p1 = Pseudonymiser(ring.keys, ring.current, layers=ring.layers)
    db = SqliteStore(tmp_path / "store.sqlite")
    for token in TOKENS:
        db.insert(p1(token), p1(TOKENS[0]))
    ring2 = add_key_version(key_file, layered=True)
    assert ring2.current == 2 and ring2.layers == {2: 1}
    assert read_key_ring(key_file) == ring2 and (key_file.stat().st_mode & 0o777) == 0o600
    p2 = Pseudonymiser(ring2.keys, ring2.current, layers=ring2.layers)
    report = rotate(p2, db, batch_size=9)
    assert report.complete
    assert sorted(db.all_refs()) == sorted({p2(t) for t in TOKENS})
    with pytest.raises(KeyMaterialError, match="inner layer"):
        retire_key_version(key_file, 1)


def test_fresh_version_can_be_retired_but_not_current(tmp_path: Path) -> None:
    key_file = tmp_path / "keys"
    write_new_key_file(key_file)
    ring = add_key_version(key_file, layered=False)
    assert ring.layers == {}
    with pytest.raises(KeyMaterialError, match="current"):
        retire_key_version(key_file, 2)
    assert sorted(retire_key_version(key_file, 1).keys) == [2]
    assert sorted(read_key_ring(key_file).keys) == [2]


def test_keys_loaded_the_pipeline_way_keep_their_layers(tmp_path: Path) -> None:
    from chargeguard.vault.keys import load_pseudonym_keys

    key_file = tmp_path / "keys"
    write_new_key_file(key_file)
    keys1, _ = load_pseudonym_keys(env_key=None, key_file=key_file, store_has_data=False)
    before = Pseudonymiser(keys1, max(keys1))("04A2B3C4")
    add_key_version(key_file, layered=True)
    keys2, created = load_pseudonym_keys(env_key=None, key_file=key_file, store_has_data=True)
    after = Pseudonymiser(keys2, max(keys2))
    assert created is None and after.upgrade(before) == after("04A2B3C4")
