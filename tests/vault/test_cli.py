"""The tokens and vault commands: exit codes, masked output, refusals, verify detecting an edited row."""

from __future__ import annotations

import gzip
import sqlite3
from pathlib import Path

import orjson
import pytest
from sqlalchemy import create_engine
from typer.testing import CliRunner

from chargeguard.cli import app
from chargeguard.vault.audit import AuditLog
from chargeguard.vault.keys import read_key_ring, write_new_key_file
from chargeguard.vault.pseudonyms import Pseudonymiser

CARD = "04A2B3C4D5E6F7"
LINE = {
    "ts": "2026-03-01T08:00:00Z",
    "station": "CP-1",
    "ocpp": "1.6",
    "from": "station",
    "frame": [2, "a1b2c3d4", "Authorize", {"idTag": CARD}],
}


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"CHARGEGUARD_HOME": str(tmp_path / "home")}


def test_tokens_scan_exit_codes_and_masking(tmp_path: Path, env: dict[str, str]) -> None:
    dirty = tmp_path / "dirty.jsonl.gz"
    dirty.write_bytes(gzip.compress(orjson.dumps(LINE) + b"\n"))
    clean = tmp_path / "clean.csv"
    clean.write_text("a,b\n1,2\n")
    runner = CliRunner()
    result = runner.invoke(app, ["tokens", "scan", str(dirty), str(clean)], env=env)
    assert result.exit_code == 1
    assert CARD not in result.output and "04**********F7" in result.output and "line 1" in result.output
    result = runner.invoke(app, ["tokens", "scan", "--json", str(dirty)], env=env)
    finding = orjson.loads(result.stdout.splitlines()[0])
    assert finding["field"] == "idTag" and finding["masked"] == "04**********F7"
    assert runner.invoke(app, ["tokens", "scan", str(clean)], env=env).exit_code == 0
    assert runner.invoke(app, ["tokens", "scan", str(tmp_path / "missing")], env=env).exit_code == 1


def test_tokens_pseudonymise_uses_configured_key_or_refuses(tmp_path: Path, env: dict[str, str]) -> None:
    src = tmp_path / "cap.jsonl"
    src.write_bytes(orjson.dumps(LINE) + b"\n")
    runner = CliRunner()
    result = runner.invoke(app, ["tokens", "pseudonymise", str(src), str(tmp_path / "out.jsonl")], env=env)
    assert result.exit_code == 2 and "--new-key" in result.output
    keys = write_new_key_file(tmp_path / "home" / "pseudonym.key")
    result = runner.invoke(app, ["tokens", "pseudonymise", str(src), str(tmp_path / "out.jsonl.gz")], env=env)
    assert result.exit_code == 0, result.output
    shared = orjson.loads(gzip.decompress((tmp_path / "out.jsonl.gz").read_bytes()))
    assert shared["frame"][3]["idTag"] == Pseudonymiser(keys, 1)(CARD)
    result = runner.invoke(
        app,
        [
            "tokens",
            "pseudonymise",
            str(src),
            str(tmp_path / "o2.jsonl"),
            "--new-key",
            str(tmp_path / "s.key"),
        ],
    )
    assert result.exit_code == 0
    other = orjson.loads((tmp_path / "o2.jsonl").read_bytes())["frame"][3]["idTag"]
    assert other != shared["frame"][3]["idTag"]  # a separate sharing key does not link to production data
    assert runner.invoke(app, ["tokens", "scan", str(tmp_path / "o2.jsonl")]).exit_code == 0


def test_vault_verify_detects_edited_row(tmp_path: Path, env: dict[str, str]) -> None:
    db = tmp_path / "store.sqlite"
    engine = create_engine(f"sqlite:///{db}")
    audit = AuditLog(engine)
    audit.append("alice", "reveal.requested", pseudonym="tok1_aaaaaaaaaaaaaaa", reason="cloned card case 1")
    audit.append("bob", "reveal.approved", pseudonym="tok1_aaaaaaaaaaaaaaa", reason="cloned card case 1")
    engine.dispose()
    runner = CliRunner()
    result = runner.invoke(app, ["vault", "verify", "--db", f"sqlite:///{db}"], env=env)
    assert result.exit_code == 0 and "audit log intact" in result.output
    head = result.output.split("head ")[1].split()[0]
    ok = runner.invoke(app, ["vault", "verify", "--db", f"sqlite:///{db}", "--expect-head", head], env=env)
    assert ok.exit_code == 0
    con = sqlite3.connect(db)
    with con:
        con.execute("UPDATE vault_audit SET reason = 'nothing to see' WHERE seq = 1")
    con.close()
    result = runner.invoke(app, ["vault", "verify", "--db", f"sqlite:///{db}"], env=env)
    assert result.exit_code == 1 and "record 1: content does not match its hash" in result.output
    bad = runner.invoke(
        app, ["vault", "verify", "--db", f"sqlite:///{db}", "--expect-head", "1:xyz"], env=env
    )
    assert bad.exit_code == 2


def test_vault_rotate_on_empty_store_adds_layered_key(tmp_path: Path, env: dict[str, str]) -> None:
    key_file = tmp_path / "home" / "pseudonym.key"
    write_new_key_file(key_file)
    runner = CliRunner()
    result = runner.invoke(app, ["vault", "rotate"], env=env)
    assert result.exit_code == 0, result.output
    ring = read_key_ring(key_file)
    assert ring.current == 2 and ring.layers == {2: 1}


def test_vault_rotate_moves_stored_pseudonyms_and_resumes(tmp_path: Path, env: dict[str, str]) -> None:
    from chargeguard.events import TransactionEnded
    from chargeguard.store import Store
    from chargeguard.testing import an_event, at

    key_file = tmp_path / "home" / "pseudonym.key"
    keys = write_new_key_file(key_file)
    old = Pseudonymiser(keys, 1)
    cards = [f"04A2B3C4D5E6{i:02X}" for i in range(5)]
    store = Store.open(f"sqlite:///{tmp_path / 'home' / 'chargeguard.db'}")
    store.save_transactions(
        [
            an_event(TransactionEnded, transaction_id=str(i), at=at(i), ts=at(i), token_ref=old(card))
            for i, card in enumerate(cards)
        ]
    )
    store.mark_pseudonymised([1])
    store.close()
    runner = CliRunner()
    fresh = runner.invoke(app, ["vault", "rotate", "--fresh"], env=env)
    assert fresh.exit_code == 2 and "raw tokens" in fresh.output
    assert sorted(read_key_ring(key_file).keys) == [1]
    result = runner.invoke(app, ["vault", "rotate"], env=env)
    assert result.exit_code == 0, result.output
    assert "moved 5 pseudonym(s) to version 2; rotation complete" in result.output
    ring = read_key_ring(key_file)
    new = Pseudonymiser(ring.keys, ring.current, layers=ring.layers)
    store = Store.open(f"sqlite:///{tmp_path / 'home' / 'chargeguard.db'}")
    try:
        assert store.pseudonym_versions() == {2: 5}
        assert sorted(t.token_ref or "" for t in store.transactions()) == sorted(new(c) for c in cards)
    finally:
        store.close()
    resumed = runner.invoke(app, ["vault", "rotate", "--resume"], env=env)
    assert resumed.exit_code == 0 and "moved 0 pseudonym(s)" in resumed.output
    assert read_key_ring(key_file).current == 2
