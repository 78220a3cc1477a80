"""The vault's tables on a real PostgreSQL: sealed tokens (bytea), reveal, rotation queries, audit tampering.

PostgreSQL comes from ``CHARGEGUARD_TEST_PG_URL`` (``.ci/run`` exports it); skipped without it unless
``CHARGEGUARD_REQUIRE_PG=1``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from chargeguard.vault.audit import AuditLog
from chargeguard.vault.keys import write_new_master_key_file
from chargeguard.vault.pseudonyms import Pseudonymiser
from chargeguard.vault.rotation import rotate
from chargeguard.vault.sealed import PERMISSION_APPROVE, PERMISSION_REVEAL, Principal, SealedVault

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_engine() -> Iterator[Engine]:
    base = os.environ.get("CHARGEGUARD_TEST_PG_URL")
    if not base:
        if os.environ.get("CHARGEGUARD_REQUIRE_PG") == "1":
            pytest.fail("CHARGEGUARD_REQUIRE_PG=1 but CHARGEGUARD_TEST_PG_URL is not set")
        pytest.skip("PostgreSQL tests need CHARGEGUARD_TEST_PG_URL")
    libpq = make_url(base).set(drivername="postgresql").render_as_string(hide_password=False)
    schema = f"cgvault_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(libpq, autocommit=True, connect_timeout=10) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
    engine = create_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()
        with psycopg.connect(libpq, autocommit=True, connect_timeout=10) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def test_seal_reveal_rotate_and_tamper_on_postgres(pg_engine: Engine, tmp_path: Path) -> None:
    provider = write_new_master_key_file(tmp_path / "master.key")
    old = Pseudonymiser({1: b"p" * 32}, 1)
    audit = AuditLog(pg_engine)
    vault = SealedVault(pg_engine, provider, old, audit)
    cards = [f"04A2B3C4D5E6{i:02X}" for i in range(5)]
    for card in cards:
        vault.seal(card)
    assert vault.pseudonym_versions() == {1: 5}
    fresh = Pseudonymiser({1: b"p" * 32, 12: b"r" * 32}, 12)
    report = rotate(fresh, vault, rederive=lambda refs: vault.rederive(fresh, refs), batch_size=2)
    assert report.complete and vault.pseudonym_versions() == {12: 5}
    moved = SealedVault(pg_engine, provider, fresh, audit)
    alice = Principal("alice", frozenset({PERMISSION_REVEAL}))
    request = moved.request_reveal(fresh(cards[2]), alice, "cloned card confirmed, case 99")
    moved.approve_reveal(request, Principal("bob", frozenset({PERMISSION_APPROVE})))
    assert moved.reveal(request, alice) == cards[2]
    assert audit.verify().ok
    with pg_engine.begin() as conn:
        conn.execute(text("UPDATE vault_audit SET reason = 'routine' WHERE action = 'reveal.done'"))
    report_after = audit.verify()
    assert not report_after.ok and "edited" in report_after.problems[0]


def test_batched_sealing_on_postgres_dedups_and_reveals(pg_engine: Engine, tmp_path: Path) -> None:
    provider = write_new_master_key_file(tmp_path / "master.key")
    pseudonymiser = Pseudonymiser({1: b"p" * 32}, 1)
    vault = SealedVault(pg_engine, provider, pseudonymiser, AuditLog(pg_engine))
    cards = [f"04A2B3C4D5E6{i:02X}" for i in range(700)]  # more than one IN (...) chunk
    batch = {pseudonymiser(card): card for card in cards}
    assert vault.seal_many(dict(list(batch.items())[:300])) == 300
    assert vault.seal_many(batch) == 400  # the first 300 are already sealed
    assert vault.seal_many(batch) == 0
    assert vault.pseudonym_versions() == {1: 700}
    alice = Principal("alice", frozenset({PERMISSION_REVEAL}))
    request = vault.request_reveal(pseudonymiser(cards[650]), alice, "cloned card at the eMSP")
    vault.approve_reveal(request, Principal("bob", frozenset({PERMISSION_APPROVE})))
    assert vault.reveal(request, alice) == cards[650]
    with pg_engine.connect() as conn:
        blob = b"".join(bytes(c) for (c,) in conn.execute(text("SELECT ciphertext FROM vault_sealed_tokens")))
    assert not any(card.encode() in blob for card in cards)
