"""Authenticated principals: signing keys, public key lines, statements bound to one step, the vault's checks."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import create_engine

from chargeguard.errors import ConfigError, KeyMaterialError, VaultError
from chargeguard.vault.audit import AuditLog
from chargeguard.vault.keys import write_new_master_key_file
from chargeguard.vault.permissions import load_principals
from chargeguard.vault.pseudonyms import Pseudonymiser
from chargeguard.vault.sealed import PERMISSION_APPROVE, PERMISSION_REVEAL, Principal, SealedVault
from chargeguard.vault.signatures import (
    PASSPHRASE_ENV,
    authentication_problem,
    fingerprint,
    generate_signing_key,
    load_signing_key,
    parse_public_key,
    sign,
    statement,
    stored_reason,
)

TOKEN = "04A2B3C4D5E6F7"


def test_generated_key_loads_and_its_public_line_verifies_its_signatures(tmp_path: Path) -> None:
    line = generate_signing_key(tmp_path / "a.pem")
    assert (tmp_path / "a.pem").stat().st_mode & 0o777 == 0o600
    key = load_signing_key(tmp_path / "a.pem")
    public = parse_public_key(line, where="test")
    assert fingerprint(public) == fingerprint(key.public_key())
    message = statement(
        "reveal.approve", "bob", reason="cloned card 1", request="ab" * 16, pseudonym="tok1_x"
    )
    signed = sign(key, message)
    assert authentication_problem(signed, [public], message, required=True) is None
    other = statement("reveal.approve", "bob", reason="cloned card 2", request="ab" * 16, pseudonym="tok1_x")
    assert "not this step's" in str(authentication_problem(signed, [public], other, required=True))
    stranger = parse_public_key(generate_signing_key(tmp_path / "b.pem"), where="test")
    assert "does not verify" in str(authentication_problem(signed, [stranger], message, required=True))
    assert "no public key" in str(authentication_problem(None, [], message, required=True))
    assert "not signed" in str(authentication_problem(None, [public], message, required=True))
    assert authentication_problem(None, [], message, required=False) is None  # library callers


def test_openssh_keys_are_accepted_and_bad_public_keys_refused(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    ssh_line = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    assert fingerprint(parse_public_key(ssh_line.decode() + " bob@laptop", where="t")) == fingerprint(
        key.public_key()
    )
    openssh = tmp_path / "id_ed25519"
    openssh.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
        )
    )
    openssh.chmod(0o600)
    assert fingerprint(load_signing_key(openssh).public_key()) == fingerprint(key.public_key())
    for bad in ("ed25519:AAAA", "ed25519:not base64!", "ssh-rsa AAAAB3NzaC1yc2E", "hunter2"):
        with pytest.raises(ConfigError, match=r"Ed25519 public key|expected"):
            parse_public_key(bad, where="keys.bob")


def test_encrypted_keys_need_their_passphrase_and_loose_modes_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "enc.pem"
    generate_signing_key(path, passphrase="correct horse")
    assert b"ENCRYPTED" in path.read_bytes()
    with pytest.raises(KeyMaterialError, match="is encrypted"):
        load_signing_key(path)
    monkeypatch.setenv(PASSPHRASE_ENV, "wrong horse")
    with pytest.raises(KeyMaterialError, match="wrong passphrase"):
        load_signing_key(path)
    monkeypatch.setenv(PASSPHRASE_ENV, "correct horse")
    assert isinstance(load_signing_key(path), Ed25519PrivateKey)
    with pytest.raises(KeyMaterialError, match="never overwritten"):
        generate_signing_key(path)
    path.chmod(0o644)
    with pytest.raises(KeyMaterialError, match="0644"):
        load_signing_key(path)


def test_principals_file_keys_must_name_listed_people(tmp_path: Path) -> None:
    line = generate_signing_key(tmp_path / "k.pem")
    path = tmp_path / "p.toml"
    path.write_text(f'[principals]\nbob = ["vault.approve"]\n[keys]\nBob = ["{line}"]\n')
    path.chmod(0o600)
    bob = load_principals(path).principal("BOB")
    assert bob.permissions == {PERMISSION_APPROVE} and len(bob.public_keys) == 1
    path.write_text(f'[principals]\nbob = ["vault.approve"]\n[keys]\neve = "{line}"\n')
    with pytest.raises(ConfigError, match="names nobody"):
        load_principals(path)
    path.write_text('[principals]\nbob = ["vault.approve"]\n[keys]\nbob = "ed25519:AAAA"\n')
    with pytest.raises(ConfigError, match="not a valid Ed25519 public key"):
        load_principals(path)


def test_a_signature_for_one_request_does_not_approve_another(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'v.db'}")
    pseudonymiser = Pseudonymiser({1: b"k" * 32}, 1)
    vault = SealedVault(
        engine,
        write_new_master_key_file(tmp_path / "master.key"),
        pseudonymiser,
        AuditLog(engine),
        require_signatures=True,
    )
    for name in ("alice", "bob"):
        generate_signing_key(tmp_path / f"{name}.pem")
    keys = {name: load_signing_key(tmp_path / f"{name}.pem") for name in ("alice", "bob")}
    alice = Principal("alice", frozenset({PERMISSION_REVEAL}), (keys["alice"].public_key(),))
    bob = Principal("bob", frozenset({PERMISSION_APPROVE}), (keys["bob"].public_key(),))
    pseudonym = vault.seal(TOKEN)
    reason = "cloned card 4411 " + TOKEN  # a card in the reason is redacted before anyone signs or stores it

    def signed(who: Principal, action: str, request: str) -> Principal:
        message = statement(
            action, who.name, reason=stored_reason(reason), request=request, pseudonym=pseudonym
        )
        return replace(who, signed=sign(keys[who.name], message))

    first, second = "1" * 32, "2" * 32
    with pytest.raises(VaultError, match="not signed"):
        vault.request_reveal(pseudonym, alice, reason, request_id=first)
    vault.request_reveal(pseudonym, signed(alice, "reveal.request", first), reason, request_id=first)
    vault.request_reveal(pseudonym, signed(alice, "reveal.request", second), reason, request_id=second)
    approval = signed(bob, "reveal.approve", first)
    with pytest.raises(VaultError, match="not this step's"):
        vault.approve_reveal(second, approval)  # replaying bob's approval of the first request
    with pytest.raises(VaultError, match="not this step's"):
        vault.reveal(first, signed(alice, "reveal.request", first))  # a request signature is not a run's
    vault.approve_reveal(first, approval)
    assert vault.reveal(first, signed(alice, "reveal.run", first)) == TOKEN
    public = {"alice": [keys["alice"].public_key()], "bob": [keys["bob"].public_key()]}
    report = AuditLog(engine).verify(public_keys=public)
    assert report.ok and report.signatures_ok == 4, report.problems
    assert TOKEN not in str([r.reason for r in AuditLog(engine).records()])
    swapped = AuditLog(engine).verify(public_keys={"alice": public["bob"], "bob": public["alice"]})
    assert len(swapped.problems) == 4
    engine.dispose()


def test_principals_stay_hashable_with_public_keys(tmp_path: Path) -> None:
    public = parse_public_key(generate_signing_key(tmp_path / "k.pem"), where="test")
    bob = Principal("bob", frozenset({PERMISSION_APPROVE}), (public,))
    assert {bob: 1}[Principal("bob", frozenset({PERMISSION_APPROVE}))] == 1


def test_verify_counts_unsigned_steps_and_can_require_signatures(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'a.db'}")
    audit = AuditLog(engine)
    audit.append(
        "bob", "reveal.approved", pseudonym="tok1_x", reason="cloned card 9", detail={"request": "r"}
    )
    audit.append("ops", "retention.applied", reason="retention policy")
    report = audit.verify(public_keys={})
    assert report.ok and report.unsigned == 1 and report.signatures_ok == 0
    strict = audit.verify(public_keys={}, require_signatures=True)
    assert strict.problems == ["record 1: reveal.approved by bob carries no signature"]
    engine.dispose()
