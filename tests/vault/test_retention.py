"""Retention per data kind and erasure by pseudonym, against a real SQLite table and a capture directory."""

from __future__ import annotations

import gzip
import os
import sqlite3
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from chargeguard.errors import ConfigError, VaultError
from chargeguard.vault.audit import AuditLog
from chargeguard.vault.keys import write_new_master_key_file
from chargeguard.vault.pseudonyms import Pseudonymiser
from chargeguard.vault.retention import (
    PERMISSION_ERASE,
    CaptureDirectory,
    DataKind,
    RetentionPolicy,
    apply_retention,
    erase_pseudonyms,
    erase_token,
)
from chargeguard.vault.sealed import Principal, SealedVault

NOW = datetime(2026, 6, 1, tzinfo=UTC)
DPO = Principal("dpo", frozenset({PERMISSION_ERASE}))
P1 = Pseudonymiser({1: b"a" * 32}, 1)
P2 = Pseudonymiser({1: b"a" * 32, 2: b"b" * 32}, 2, layers={2: 1})


class SqlTables:
    """PersonalDataStore over two real SQLite tables (alerts and transactions)."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path)
        with self.db:
            self.db.execute("CREATE TABLE alerts (id INTEGER PRIMARY KEY, ts TEXT, token_ref TEXT)")
            self.db.execute("CREATE TABLE transactions (id INTEGER PRIMARY KEY, ts TEXT, token_ref TEXT)")

    def add(self, table: str, ts: datetime, ref: str | None) -> None:
        with self.db:
            self.db.execute(f"INSERT INTO {table} (ts, token_ref) VALUES (?, ?)", (ts.isoformat(), ref))

    def count(self, table: str) -> int:
        return int(self.db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])

    def kinds(self) -> frozenset[DataKind]:
        return frozenset({DataKind.ALERTS, DataKind.TRANSACTIONS})

    def delete_older_than(self, kind: DataKind, cutoff: datetime) -> int:
        with self.db:
            return self.db.execute(f"DELETE FROM {kind.value} WHERE ts < ?", (cutoff.isoformat(),)).rowcount

    def erase_pseudonyms(self, pseudonyms: Sequence[str]) -> Mapping[DataKind, int]:
        marks = ",".join("?" * len(pseudonyms))
        out: dict[DataKind, int] = {}
        with self.db:  # one transaction for all tables
            for kind in (DataKind.ALERTS, DataKind.TRANSACTIONS):
                sql = f"DELETE FROM {kind.value} WHERE token_ref IN ({marks})"
                out[kind] = self.db.execute(sql, list(pseudonyms)).rowcount
        return out


def test_policy_parsing_and_refusals() -> None:
    policy = RetentionPolicy.parse({"alerts": "2w", "captures": 7, "transactions": None})
    assert policy.periods[DataKind.ALERTS] == timedelta(weeks=2)
    assert policy.periods[DataKind.CAPTURES] == timedelta(days=7)
    assert policy.cutoff(DataKind.TRANSACTIONS, NOW) is None
    assert policy.periods[DataKind.SEALED_TOKENS] == timedelta(days=180)  # default kept
    for bad in ({"alert": "1d"}, {"alerts": "0d"}, {"alerts": "soon"}, {"alerts": -3}):
        with pytest.raises(ConfigError):
            RetentionPolicy.parse(bad)


def test_retention_deletes_only_expired_rows_and_audits(tmp_path: Path) -> None:
    store = SqlTables(tmp_path / "s.sqlite")
    ref = P1("04A2B3C4")
    store.add("alerts", NOW - timedelta(days=400), ref)
    store.add("alerts", NOW - timedelta(days=10), ref)
    store.add("transactions", NOW - timedelta(days=200), ref)
    store.add("transactions", NOW - timedelta(days=100), ref)
    engine = create_engine(f"sqlite:///{tmp_path / 'vault.sqlite'}")
    audit = AuditLog(engine, clock=lambda: NOW)
    removed = apply_retention(RetentionPolicy(), [store], audit, clock=lambda: NOW)
    assert removed == {"alerts": 1, "transactions": 1}
    assert store.count("alerts") == 1 and store.count("transactions") == 1
    record = next(iter(audit.records()))
    assert record.action == "retention.applied" and record.detail["removed"] == removed
    engine.dispose()


def test_erasure_by_card_covers_every_key_version_sealed_and_captures(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'vault.sqlite'}")
    audit = AuditLog(engine, clock=lambda: NOW)
    store = SqlTables(tmp_path / "s.sqlite")
    card, other = "04A2B3C4D5E6F7", "04FFEEDDCCBBAA"
    store.add("alerts", NOW, P1(card))  # written before a layered rotation started
    store.add("transactions", NOW, P2(card))  # written after
    store.add("transactions", NOW, P2(other))
    captures = tmp_path / "captures"
    captures.mkdir()
    (captures / "a.jsonl").write_text(f'{{"idTag": "{P2(card)}"}}\n{{"idTag": "{P2(other)}"}}\n')
    with gzip.open(captures / "b.jsonl.gz", "wt") as handle:
        handle.write(f'{{"idTag": "{P1(card).upper()}"}}\n{{"x": 1}}\n')
    sealed = SealedVault(engine, write_new_master_key_file(tmp_path / "m.key"), P2, audit, clock=lambda: NOW)
    sealed.seal(card)
    receipt = erase_token(
        card,
        {1: 1, 2: 2},
        requester=DPO,
        reason="GDPR Art. 17 request #2026-0042",
        stores=[store, CaptureDirectory(captures)],
        audit=audit,
        pseudonymiser=P2,
        sealed=sealed,
    )
    assert receipt.removed == {"alerts": 1, "transactions": 1, "captures": 2, "sealed_tokens": 1}
    assert store.count("transactions") == 1 and store.count("alerts") == 0
    assert (captures / "a.jsonl").read_text() == f'{{"idTag": "{P2(other)}"}}\n'
    assert gzip.decompress((captures / "b.jsonl.gz").read_bytes()) == b'{"x": 1}\n'
    assert not sealed.is_sealed(P2(card))
    record = list(audit.records())[-1]
    assert record.action == "erasure.done" and record.seq == receipt.audit_seq and record.actor == "dpo"
    assert sorted(record.detail["pseudonyms"]) == sorted({P1(card), P2(card)})
    assert audit.verify().ok
    engine.dispose()


def test_erasure_refusals(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'vault.sqlite'}")
    audit = AuditLog(engine, clock=lambda: NOW)
    store = SqlTables(tmp_path / "s.sqlite")
    args = {"stores": [store], "audit": audit, "pseudonymiser": P2}
    with pytest.raises(VaultError, match="lacks"):
        erase_pseudonyms([P2("x")], requester=Principal("intern"), reason="GDPR request 77", **args)  # type: ignore[arg-type]
    with pytest.raises(VaultError, match="reason"):
        erase_pseudonyms([P2("x")], requester=DPO, reason="", **args)  # type: ignore[arg-type]
    with pytest.raises(VaultError, match="not valid pseudonyms"):
        erase_pseudonyms(["04A2B3C4"], requester=DPO, reason="GDPR request 77", **args)  # type: ignore[arg-type]
    assert [r.action for r in audit.records()] == ["erasure.refused"]
    engine.dispose()


def test_capture_retention_deletes_old_files(tmp_path: Path) -> None:
    old, new = tmp_path / "old.jsonl.gz", tmp_path / "new.jsonl"
    old.write_bytes(gzip.compress(b"{}\n"))
    new.write_text("{}\n")
    (tmp_path / "notes.txt").write_text("keep")
    stamp = (NOW - timedelta(days=40)).timestamp()
    os.utime(old, (stamp, stamp))
    directory = CaptureDirectory(tmp_path)
    assert directory.delete_older_than(DataKind.CAPTURES, NOW - timedelta(days=30)) == 1
    assert not old.exists() and new.exists() and (tmp_path / "notes.txt").exists()
    with pytest.raises(ConfigError):
        CaptureDirectory(tmp_path / "missing")
