"""vault reveal request/approve/run, vault erase and vault retention apply through the real CLI and a real store."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine
from typer.testing import CliRunner

from chargeguard.cli import app
from chargeguard.events import Alert, Severity, TransactionEnded
from chargeguard.settings import Settings
from chargeguard.store import Store
from chargeguard.testing import an_event, at
from chargeguard.vault.audit import AuditLog
from chargeguard.vault.keys import write_new_key_file, write_new_master_key_file
from chargeguard.vault.signatures import generate_signing_key
from chargeguard.vault.token_vault import open_token_vault

CARD = "04A2B3C4D5E6F7"
OTHER = "04FFEEDDCCBBAA"
PRINCIPALS = """
[principals]
alice = ["vault.reveal", "vault.erase"]
bob = ["vault.approve"]
carol = ["vault.reveal", "vault.approve"]
mallory = []
dave = ["vault.approve"]  # listed without a public key: cannot act
"""
PEOPLE = ("alice", "bob", "carol", "mallory")


def by(home: Path, name: str) -> list[str]:
    """``--by NAME --key FILE``: the person and their own signing key."""
    return ["--by", name, "--key", str(home / "keys" / f"{name.casefold()}.pem")]


def an_alert(alert_id: str, token: str) -> Alert:
    return Alert(
        id=alert_id,
        kind="token.concurrent_use",
        severity=Severity.HIGH,
        confidence=0.9,
        ts=at(0),
        station="CP-1",
        stations=("CP-1",),
        transactions=("7",),
        token_ref=token,
        summary="s",
        evidence={},
        last_ts=at(5),
    )


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    write_new_key_file(home / "pseudonym.key")
    write_new_master_key_file(home / "master.key")
    (home / "keys").mkdir()
    lines = [f'{name} = "{generate_signing_key(home / "keys" / f"{name}.pem")}"' for name in PEOPLE]
    (home / "vault-principals.toml").write_text(PRINCIPALS + "[keys]\n" + "\n".join(lines) + "\n")
    (home / "vault-principals.toml").chmod(0o600)
    return home


@pytest.fixture
def env(home: Path) -> dict[str, str]:
    return {
        "CHARGEGUARD_HOME": str(home),
        "CHARGEGUARD_SEAL_TOKENS": "true",
        "CHARGEGUARD_MASTER_KEY_FILE": str(home / "master.key"),
    }


@pytest.fixture
def pseudonyms(home: Path) -> dict[str, str]:
    """Seal two cards and store an alert and a transaction for each, as a scan with sealing on would."""
    settings = Settings(home=home, seal_tokens=True, master_key_file=home / "master.key")
    with Store.open(settings.effective_db_url) as store, open_token_vault(settings, store) as vault:
        out = {raw: vault(raw) for raw in (CARD, OTHER)}
        store.save_alerts([an_alert(f"al_{n}", p) for n, p in enumerate(out.values())])
        store.save_transactions(
            [
                an_event(TransactionEnded, transaction_id=str(n), ts=at(n), at=at(n), token_ref=p)
                for n, p in enumerate(out.values())
            ]
        )
    return out


def invoke(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


def test_two_person_reveal_prints_the_token_once_and_audits_every_step(
    env: dict[str, str], pseudonyms: dict[str, str], home: Path
) -> None:
    p = pseudonyms[CARD]
    code, out, err = invoke(
        env, "vault", "reveal", "request", "--pseudonym", p, "--reason", "x", *by(home, "alice")
    )
    assert code == 2 and "reason" in err
    code, out, err = invoke(
        env, "vault", "reveal", "request", "--pseudonym", p, "--reason", "cloned card 17", *by(home, "bob")
    )
    assert code == 2 and "lacks the vault.reveal permission" in err
    code, out, err = invoke(
        env, "vault", "reveal", "request", "--pseudonym", p, "--reason", "cloned card 17", *by(home, "alice")
    )
    assert code == 0, err
    request = out.strip()
    assert len(request) == 32 and CARD not in out + err
    code, _, err = invoke(env, "vault", "reveal", "run", request, *by(home, "alice"))
    assert code == 2 and "no second person has approved" in err
    code, _, err = invoke(env, "vault", "reveal", "approve", request, *by(home, "ALICE"))
    assert code == 2 and "lacks the vault.approve permission" in err
    code, own, err = invoke(
        env, "vault", "reveal", "request", "--pseudonym", p, "--reason", "cloned card 18", *by(home, "carol")
    )
    assert code == 0, err
    code, _, err = invoke(env, "vault", "reveal", "approve", own.strip(), *by(home, "Carol"))
    assert code == 2 and "must be a second person" in err  # carol may approve, but not her own request
    code, _, err = invoke(env, "vault", "reveal", "approve", request, *by(home, "mallory"))
    assert code == 2 and "lacks the vault.approve permission" in err
    code, _, err = invoke(env, "vault", "reveal", "approve", "f" * 32, *by(home, "bob"))
    assert code == 2 and "no reveal request" in err
    code, _, err = invoke(env, "vault", "reveal", "approve", request, *by(home, "bob"))
    assert code == 0, err
    code, _, err = invoke(env, "vault", "reveal", "run", request, *by(home, "carol"))
    assert code == 2 and "only the requester" in err
    code, out, err = invoke(env, "vault", "reveal", "run", request, *by(home, "alice"))
    assert code == 0, err
    assert out == CARD + "\n" and CARD not in err
    code, out, err = invoke(env, "vault", "reveal", "run", request, *by(home, "alice"))
    assert code == 2 and "already used" in err and CARD not in out
    engine_url = f"sqlite:///{home / 'chargeguard.db'}"
    records = list(AuditLog(create_engine(engine_url)).records())
    actions = [(r.actor, r.action) for r in records]
    assert ("alice", "reveal.requested") in actions and ("bob", "reveal.approved") in actions
    assert ("alice", "reveal.done") in actions
    assert ("carol", "reveal.refused") in actions and ("mallory", "reveal.refused") in actions
    done = next(r for r in records if r.action == "reveal.done")
    assert done.pseudonym == p and done.reason == "cloned card 17" and done.detail["approved_by"] == "bob"
    code, out, _ = invoke(env, "vault", "verify")
    assert code == 0 and "audit log intact" in out
    # nothing on disk holds the raw card (sealed ciphertext only)
    assert CARD.encode() not in (home / "chargeguard.db").read_bytes()


def test_reveal_refusals_for_configuration(
    env: dict[str, str], pseudonyms: dict[str, str], home: Path
) -> None:
    args = ["vault", "reveal", "request", "--pseudonym", pseudonyms[CARD], "--reason", "cloned card 17"]
    no_master = {k: v for k, v in env.items() if k != "CHARGEGUARD_MASTER_KEY_FILE"}
    code, _, err = invoke(no_master, *args, *by(home, "alice"))
    assert code == 2 and "no master key is configured" in err
    (home / "vault-principals.toml").chmod(0o666)
    code, _, err = invoke(env, *args, *by(home, "alice"))
    assert code == 2 and "nobody but its owner may write it" in err
    (home / "vault-principals.toml").chmod(0o600)
    code, _, err = invoke(env, *args, *by(home, "alice"), "--principals", str(home / "none.toml"))
    assert code == 2 and "no public key in the principals file" in err  # a missing file grants nothing
    bad = home / "bad.toml"
    bad.write_text('[principals]\nalice = ["vault.everything"]\n')
    bad.chmod(0o600)
    code, _, err = invoke(env, *args, *by(home, "alice"), "--principals", str(bad))
    assert code == 2 and "unknown permission" in err
    code, _, err = invoke(env, "vault", "reveal", "request", "--pseudonym", "tok1_aaaaaaaaaaaaaaa",
                          "--reason", "cloned card 17", *by(home, "alice"))  # fmt: skip
    assert code == 2 and "not valid under any loaded key version" in err
    (home / "master.key").chmod(0o644)
    code, _, err = invoke(env, *args, *by(home, "alice"))
    assert code == 2 and "0644" in err


def _count(home: Path, table: str) -> int:
    with sqlite3.connect(home / "chargeguard.db") as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def test_erase_removes_everything_linked_and_writes_an_audit_record(
    env: dict[str, str], pseudonyms: dict[str, str], home: Path, tmp_path: Path
) -> None:
    p = pseudonyms[CARD]
    captures = tmp_path / "captures"
    captures.mkdir()
    (captures / "cap.jsonl").write_text(f'{{"token":"{p}"}}\n{{"token":"{pseudonyms[OTHER]}"}}\n')
    assert _count(home, "vault_sealed_tokens") == 2
    code, _, err = invoke(
        env, "vault", "erase", "--pseudonym", p, *by(home, "bob"), "--reason", "GDPR request 17"
    )
    assert code == 2 and "lacks the vault.erase permission" in err
    code, _, err = invoke(
        env, "vault", "erase", "--pseudonym", "tok1_nope", *by(home, "alice"), "--reason", "GDPR request 17"
    )
    assert code == 2 and "not valid pseudonyms" in err
    code, out, err = invoke(
        env, "vault", "erase", "--pseudonym", p, *by(home, "alice"), "--reason", "GDPR request 17",
        "--captures", str(captures),
    )  # fmt: skip
    assert code == 0, err
    assert "alerts 1" in out and "transactions 1" in out and "sealed_tokens 1" in out and "captures 1" in out
    assert _count(home, "vault_sealed_tokens") == 1 and _count(home, "alerts") == 1
    assert (
        p not in (captures / "cap.jsonl").read_text()
        and pseudonyms[OTHER] in (captures / "cap.jsonl").read_text()
    )
    with Store.open(f"sqlite:///{home / 'chargeguard.db'}") as store:
        assert [a.token_ref for a in store.alerts()] == [pseudonyms[OTHER]]
    records = list(AuditLog(create_engine(f"sqlite:///{home / 'chargeguard.db'}")).records())
    erasure = next(r for r in records if r.action == "erasure.done")
    assert (
        erasure.actor == "alice"
        and erasure.reason == "GDPR request 17"
        and erasure.detail["pseudonyms"] == [p]
    )
    assert ("bob", "erasure.refused") in [(r.actor, r.action) for r in records]
    # the erased card can no longer be revealed
    code, _, err = invoke(
        env, "vault", "reveal", "request", "--pseudonym", p, "--reason", "cloned card 17", *by(home, "alice")
    )
    assert code == 2 and "no sealed token" in err


def test_retention_apply_deletes_by_setting_and_audits(
    env: dict[str, str], pseudonyms: dict[str, str], home: Path
) -> None:
    # the stored events are from BASE_TS (2026-03-01); sealed tokens were created now
    code, out, err = invoke(env, "vault", "retention", "purge")
    assert code == 2 and "only action is 'apply'" in err
    bad = {**env, "CHARGEGUARD_RETENTION": '{"everything": "1d"}'}
    code, _, err = invoke(bad, "vault", "retention", "apply")
    assert code == 2 and "unknown data kind" in err
    keep = {**env, "CHARGEGUARD_RETENTION": '{"alerts": null, "transactions": null, "sealed_tokens": null}'}
    code, out, err = invoke(keep, "vault", "retention", "apply")
    assert code == 0, err
    assert _count(home, "alerts") == 2 and _count(home, "vault_sealed_tokens") == 2
    age = (datetime.now(UTC) - at(0)).days
    policy = f'{{"alerts": "{age - 1}d", "transactions": null, "sealed_tokens": "1d"}}'
    code, out, err = invoke(
        {**env, "CHARGEGUARD_RETENTION": policy}, "vault", "retention", "apply", "--by", "ops"
    )
    assert code == 0, err
    assert "alerts 2" in out and "sealed_tokens 0" in out
    assert (
        _count(home, "alerts") == 0
        and _count(home, "transactions") == 2
        and _count(home, "vault_sealed_tokens") == 2
    )
    records = list(AuditLog(create_engine(f"sqlite:///{home / 'chargeguard.db'}")).records())
    applied = [r for r in records if r.action == "retention.applied"]
    assert len(applied) == 2 and applied[-1].actor == "ops" and applied[-1].detail["removed"]["alerts"] == 2


def test_layered_rotation_moves_the_sealed_index_so_reveal_follows_the_new_pseudonym(
    env: dict[str, str], pseudonyms: dict[str, str], home: Path
) -> None:
    code, _, err = invoke(env, "vault", "rotate")
    assert code == 0, err
    assert "2 sealed token index entries to version 2; complete" in err
    with sqlite3.connect(home / "chargeguard.db") as conn:
        sealed = sorted(p for (p,) in conn.execute("SELECT pseudonym FROM vault_sealed_tokens"))
        stored = sorted(p for (p,) in conn.execute("SELECT token_ref FROM alerts"))
    assert sealed == stored and all(p.startswith("tok2_") for p in sealed)
    new = next(p for p in sealed if p not in pseudonyms.values())
    code, out, err = invoke(
        env,
        "vault",
        "reveal",
        "request",
        "--pseudonym",
        new,
        "--reason",
        "cloned card 19",
        *by(home, "alice"),
    )
    assert code == 0, err
    request = out.strip()
    assert invoke(env, "vault", "reveal", "approve", request, *by(home, "bob"))[0] == 0
    code, out, err = invoke(env, "vault", "reveal", "run", request, *by(home, "alice"))
    assert code == 0, err
    assert out.strip() in (CARD, OTHER)


def test_erase_by_the_card_read_from_stdin_across_key_versions(
    env: dict[str, str], pseudonyms: dict[str, str], home: Path
) -> None:
    args = ["vault", "erase", *by(home, "alice"), "--reason", "GDPR request 18"]
    code, _, err = invoke(env, *args)
    assert code == 2 and "--card-from-stdin" in err
    # a rotation interrupted half-way leaves the card's sealed token under version 2, its alert under 1
    assert invoke(env, "vault", "rotate")[0] == 0
    with sqlite3.connect(home / "chargeguard.db") as conn:
        for n, old in enumerate(pseudonyms.values()):
            conn.execute("UPDATE alerts SET token_ref = ? WHERE id = ?", (old, f"al_{n}"))
    result = CliRunner().invoke(app, [*args, "--card-from-stdin"], env=env, input=CARD + "\n")
    assert result.exit_code == 0, result.stderr
    assert "erased 2 pseudonym(s)" in result.stdout and "alerts 1" in result.stdout
    assert "sealed_tokens 1" in result.stdout and CARD not in result.stdout + result.stderr
    assert _count(home, "alerts") == 1 and _count(home, "vault_sealed_tokens") == 1
    records = list(AuditLog(create_engine(f"sqlite:///{home / 'chargeguard.db'}")).records())
    erasure = next(r for r in records if r.action == "erasure.done")
    assert pseudonyms[CARD] in erasure.detail["pseudonyms"] and CARD not in str(erasure)


def test_a_person_cannot_approve_as_someone_else_and_verify_checks_every_signature(
    env: dict[str, str], pseudonyms: dict[str, str], home: Path
) -> None:
    from sqlalchemy import text

    from chargeguard.vault.audit import GENESIS, record_hash

    p = pseudonyms[CARD]
    code, out, err = invoke(
        env, "vault", "reveal", "request", "--pseudonym", p, "--reason", "cloned card 20", *by(home, "alice")
    )
    assert code == 0, err
    request = out.strip()
    carol_key = str(home / "keys" / "carol.pem")
    # carol types bob's name but holds only her own key: the signature is not bob's
    code, _, err = invoke(env, "vault", "reveal", "approve", request, "--by", "bob", "--key", carol_key)
    assert code == 2 and "does not verify under this person's public key" in err
    # dave is listed with vault.approve but without a public key: nobody can act as him
    code, _, err = invoke(env, "vault", "reveal", "approve", request, "--by", "dave", "--key", carol_key)
    assert code == 2 and "no public key in the principals file" in err
    code, _, err = invoke(env, "vault", "reveal", "run", request, *by(home, "alice"))
    assert code == 2 and "no second person has approved" in err
    assert invoke(env, "vault", "reveal", "approve", request, *by(home, "bob"))[0] == 0
    code, out, err = invoke(env, "vault", "reveal", "run", request, *by(home, "alice"))
    assert code == 0 and out == CARD + "\n", err
    db = f"sqlite:///{home / 'chargeguard.db'}"
    records = list(AuditLog(create_engine(db)).records())
    refused = [r for r in records if r.action == "reveal.refused"]
    assert [r.actor for r in refused] == ["bob", "dave", "alice"]  # the failed attempts are audited
    approved = next(r for r in records if r.action == "reveal.approved")
    assert approved.actor == "bob" and len(approved.detail["signature"]) == 88
    code, out, _ = invoke(env, "vault", "verify")
    assert code == 0 and "signatures: 3 verified, 0 reveal/erasure record(s) unsigned" in out, out
    # someone with write access to the database changes the approval's reason and re-chains every record
    # after it: the hash chain is consistent again, bob's signature is not
    engine = create_engine(db)
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE vault_audit SET reason = 'routine check' WHERE seq = :seq"), {"seq": approved.seq}
        )
        prev = GENESIS
        for row in conn.execute(text("SELECT * FROM vault_audit ORDER BY seq")).mappings().all():
            digest = record_hash(
                seq=row["seq"], ts=row["ts"], actor=row["actor"], action=row["action"],
                pseudonym=row["pseudonym"], reason=row["reason"], detail_json=row["detail"], prev_hash=prev,
            )  # fmt: skip
            conn.execute(
                text("UPDATE vault_audit SET prev_hash = :p, hash = :h WHERE seq = :s"),
                {"p": prev, "h": digest, "s": row["seq"]},
            )
            prev = digest
    engine.dispose()
    code, out, _ = invoke(env, "vault", "verify")
    assert code == 1 and f"record {approved.seq}: the signature of bob does not verify" in out, out
    assert "does not chain" not in out and "does not match its hash" not in out


def test_erasure_is_signed_and_keygen_writes_a_private_key_and_its_public_line(
    env: dict[str, str], pseudonyms: dict[str, str], home: Path, tmp_path: Path
) -> None:
    p = pseudonyms[OTHER]
    args = ["vault", "erase", "--pseudonym", p, "--reason", "GDPR request 21"]
    code, _, err = invoke(env, *args, "--by", "alice", "--key", str(home / "keys" / "bob.pem"))
    assert code == 2 and "does not verify" in err
    code, _, err = invoke(env, *args, *by(home, "alice"))
    assert code == 0, err
    code, out, _ = invoke(env, "vault", "verify")
    assert code == 0 and "signatures: 1 verified" in out, out
    code, out, err = invoke({}, "vault", "keygen", "--out", str(tmp_path / "erin.pem"), "--name", "erin")
    assert code == 0, err
    assert out.startswith('erin = "ed25519:') and (tmp_path / "erin.pem").stat().st_mode & 0o777 == 0o600
    code, _, err = invoke({}, "vault", "keygen", "--out", str(tmp_path / "erin.pem"), "--name", "erin")
    assert code == 2 and "never overwritten" in err
