"""Sealed tokens and the audited two-person reveal, over a real SQLite database; the audit chain's verify."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine

from chargeguard.errors import KeyMaterialError, VaultError
from chargeguard.vault.audit import AuditLog
from chargeguard.vault.keys import (
    LocalKeyFileProvider,
    WrappedKey,
    add_master_key_version,
    write_new_master_key_file,
)
from chargeguard.vault.pseudonyms import Pseudonymiser
from chargeguard.vault.rotation import rotate
from chargeguard.vault.sealed import PERMISSION_APPROVE, PERMISSION_REVEAL, Principal, SealedVault

TOKEN = "04A2B3C4D5E6F7"
ALICE = Principal("alice", frozenset({PERMISSION_REVEAL}))
BOB = Principal("bob", frozenset({PERMISSION_APPROVE}))
MALLORY = Principal("mallory")


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "vault.sqlite"


@pytest.fixture
def engine(db_path: Path) -> Iterator[Engine]:
    eng = create_engine(f"sqlite:///{db_path}")
    yield eng
    eng.dispose()


@pytest.fixture
def provider(tmp_path: Path) -> LocalKeyFileProvider:
    return write_new_master_key_file(tmp_path / "master.key")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def vault(engine: Engine, provider: LocalKeyFileProvider, clock: Clock) -> SealedVault:
    pseudonymiser = Pseudonymiser({1: b"p" * 32}, 1)
    return SealedVault(engine, provider, pseudonymiser, AuditLog(engine, clock=clock), clock=clock)


def _approved(vault: SealedVault, pseudonym: str) -> str:
    request = vault.request_reveal(pseudonym, ALICE, "cloned card confirmed, block at eMSP (case 4711)")
    vault.approve_reveal(request, BOB)
    return request


def test_seal_then_two_person_reveal_returns_the_token_and_audits(vault: SealedVault, engine: Engine) -> None:
    pseudonym = vault.seal(TOKEN)
    assert vault.seal(TOKEN) == pseudonym and vault.is_sealed(pseudonym)
    request = _approved(vault, pseudonym)
    assert vault.reveal(request, ALICE) == TOKEN
    audit = AuditLog(engine)
    actions = [(r.actor, r.action, r.pseudonym) for r in audit.records()]
    assert actions == [
        ("alice", "reveal.requested", pseudonym),
        ("bob", "reveal.approved", pseudonym),
        ("alice", "reveal.done", pseudonym),
    ]
    done = list(audit.records())[-1]
    assert done.reason.startswith("cloned card confirmed") and done.detail["approved_by"] == "bob"
    assert audit.verify().ok
    with pytest.raises(VaultError, match="already used"):
        vault.reveal(request, ALICE)


def test_database_never_holds_the_raw_token(vault: SealedVault, db_path: Path) -> None:
    vault.seal(TOKEN)
    vault.seal("DE-8EO-C12345678-X")
    blob = db_path.read_bytes()
    for needle in (TOKEN, TOKEN.lower(), "C12345678"):
        assert needle.encode() not in blob


def test_reveal_without_second_approver_is_refused_and_audited(vault: SealedVault, engine: Engine) -> None:
    pseudonym = vault.seal(TOKEN)
    request = vault.request_reveal(pseudonym, ALICE, "cloned card confirmed, block at eMSP")
    with pytest.raises(VaultError, match="no second person has approved"):
        vault.reveal(request, ALICE)
    self_approver = Principal("Alice", frozenset({PERMISSION_REVEAL, PERMISSION_APPROVE}))
    with pytest.raises(VaultError, match="second person"):
        vault.approve_reveal(request, self_approver)
    with pytest.raises(VaultError, match=r"lacks the vault\.approve"):
        vault.approve_reveal(request, MALLORY)
    refused = [r for r in AuditLog(engine).records() if r.action == "reveal.refused"]
    assert len(refused) == 3


def test_reveal_needs_permission_and_reason(vault: SealedVault) -> None:
    pseudonym = vault.seal(TOKEN)
    with pytest.raises(VaultError, match=r"lacks the vault\.reveal"):
        vault.request_reveal(pseudonym, MALLORY, "a perfectly good reason")
    with pytest.raises(VaultError, match="reason"):
        vault.request_reveal(pseudonym, ALICE, "  ")
    request = _approved(vault, pseudonym)
    with pytest.raises(VaultError, match="only the requester"):
        vault.reveal(request, Principal("carol", frozenset({PERMISSION_REVEAL})))


def test_expired_request_is_refused(vault: SealedVault, clock: Clock) -> None:
    request = _approved(vault, vault.seal(TOKEN))
    clock.now += timedelta(hours=25)
    with pytest.raises(VaultError, match="expired"):
        vault.reveal(request, ALICE)


def test_wrong_pseudonym_key_version_on_reveal_is_refused(vault: SealedVault) -> None:
    other = Pseudonymiser({2: b"q" * 32}, 2)
    with pytest.raises(KeyMaterialError, match="wrong key version"):
        vault.request_reveal(other(TOKEN), ALICE, "cloned card confirmed, block at eMSP")


def test_wrong_master_key_version_on_reveal_is_refused(
    engine: Engine, tmp_path: Path, clock: Clock, provider: LocalKeyFileProvider
) -> None:
    pseudonymiser = Pseudonymiser({1: b"p" * 32}, 1)
    rotated = add_master_key_version(tmp_path / "master.key")  # records now wrapped under local:2
    sealer = SealedVault(engine, rotated, pseudonymiser, AuditLog(engine, clock=clock), clock=clock)
    pseudonym = sealer.seal(TOKEN)
    old_only = SealedVault(engine, provider, pseudonymiser, AuditLog(engine, clock=clock), clock=clock)
    request = _approved(old_only, pseudonym)
    with pytest.raises(KeyMaterialError, match=r"'local:2'"):
        old_only.reveal(request, ALICE)
    # the rotated provider still opens records of both versions
    assert sealer.reveal(_approved(sealer, pseudonym), ALICE) == TOKEN


def test_other_master_key_with_same_version_is_refused(tmp_path: Path) -> None:
    a = write_new_master_key_file(tmp_path / "a.key")
    b = write_new_master_key_file(tmp_path / "b.key")
    wrapped = a.wrap(b"k" * 32, aad=b"x")
    assert a.unwrap(wrapped, aad=b"x") == b"k" * 32
    with pytest.raises(KeyMaterialError, match="does not open"):
        b.unwrap(wrapped, aad=b"x")
    with pytest.raises(KeyMaterialError, match="does not open"):
        a.unwrap(wrapped, aad=b"y")
    with pytest.raises(KeyMaterialError, match="does not hold"):
        a.unwrap(WrappedKey("kms:arn:x", wrapped.blob), aad=b"x")


def test_master_key_file_refusals(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    write_new_master_key_file(path)
    path.chmod(0o644)
    with pytest.raises(KeyMaterialError, match="mode 0644"):
        LocalKeyFileProvider(path)
    path.chmod(0o400)
    assert LocalKeyFileProvider(path).current_key_id == "local:1"


def test_swapped_ciphertexts_do_not_reveal(vault: SealedVault, db_path: Path) -> None:
    p1, p2 = vault.seal(TOKEN), vault.seal("04FFEEDDCCBBAA")
    con = sqlite3.connect(db_path)
    with con:
        rows = dict(con.execute("SELECT pseudonym, record_id FROM vault_sealed_tokens").fetchall())
        con.execute("UPDATE vault_sealed_tokens SET pseudonym = 'x' WHERE record_id = ?", (rows[p1],))
        con.execute("UPDATE vault_sealed_tokens SET pseudonym = ? WHERE record_id = ?", (p1, rows[p2]))
        con.execute("UPDATE vault_sealed_tokens SET pseudonym = ? WHERE record_id = ?", (p2, rows[p1]))
    con.close()
    with pytest.raises(VaultError, match="does not belong"):
        vault.reveal(_approved(vault, p1), ALICE)


def test_verify_detects_a_row_edited_in_the_database(
    vault: SealedVault, engine: Engine, db_path: Path
) -> None:
    pseudonym = vault.seal(TOKEN)
    vault.reveal(_approved(vault, pseudonym), ALICE)
    audit = AuditLog(engine)
    clean = audit.verify()
    assert clean.ok and clean.records == 3
    con = sqlite3.connect(db_path)
    with con:
        con.execute("UPDATE vault_audit SET actor = 'mallory' WHERE seq = 2")
    con.close()
    report = audit.verify()
    assert not report.ok and report.problems == ["record 2: content does not match its hash (edited)"]


def test_verify_detects_deleted_rows_and_rewritten_head(
    vault: SealedVault, engine: Engine, db_path: Path
) -> None:
    pseudonym = vault.seal(TOKEN)
    vault.reveal(_approved(vault, pseudonym), ALICE)
    audit = AuditLog(engine)
    head = (audit.verify().head_seq, audit.verify().head_hash)
    con = sqlite3.connect(db_path)
    with con:
        con.execute("DELETE FROM vault_audit WHERE seq = 3")
    report = audit.verify(expected_head=head)
    assert not report.ok and "newest records removed" in report.problems[0]
    with con:
        con.execute("DELETE FROM vault_audit WHERE seq = 1")
    con.close()
    problems = audit.verify().problems
    assert any("expected sequence 1" in p for p in problems) and any("does not chain" in p for p in problems)


def test_audit_reason_is_redacted(engine: Engine) -> None:
    audit = AuditLog(engine)
    record = audit.append("alice", "note", reason="card 04A2B3C4D5E6F7 was cloned")
    assert "04A2B3C4D5E6F7" not in record.reason and audit.verify().ok


def test_rotation_rederives_sealed_records_and_rekeys_the_sealed_index(
    engine: Engine, provider: LocalKeyFileProvider, clock: Clock
) -> None:
    old = Pseudonymiser({1: b"p" * 32}, 1)
    vault = SealedVault(engine, provider, old, AuditLog(engine, clock=clock), clock=clock)
    tokens = [f"04A2B3C4D5E6{i:02X}" for i in range(6)]
    for token in tokens:
        vault.seal(token)
    fresh = Pseudonymiser({1: b"p" * 32, 2: b"r" * 32}, 2)  # fresh key, not layered
    report = rotate(fresh, vault, rederive=lambda refs: vault.rederive(fresh, refs), batch_size=4)
    assert report.complete and report.rederived == 6
    assert vault.pseudonym_versions() == {2: 6}
    moved = SealedVault(engine, provider, fresh, AuditLog(engine, clock=clock), clock=clock)
    assert moved.reveal(_approved(moved, fresh(tokens[3])), ALICE) == tokens[3]
    assert any(r.action == "rotation.rederived" for r in AuditLog(engine).records())


def test_sealing_is_off_unless_a_master_key_is_configured(engine: Engine, tmp_path: Path) -> None:
    from chargeguard.vault.sealed import open_sealed_vault

    pseudonymiser = Pseudonymiser({1: b"p" * 32}, 1)
    assert open_sealed_vault(engine, pseudonymiser, master_key_file=None) is None
    with pytest.raises(KeyMaterialError, match="does not exist"):
        open_sealed_vault(engine, pseudonymiser, master_key_file=tmp_path / "absent.key")
    write_new_master_key_file(tmp_path / "m.key")
    vault = open_sealed_vault(engine, pseudonymiser, master_key_file=tmp_path / "m.key")
    assert vault is not None and vault.is_sealed(vault.seal(TOKEN))
