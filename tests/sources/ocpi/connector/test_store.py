"""Partner registry: issued tokens kept as hashes, partner tokens sealed on disk, never written in the clear."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from chargeguard.errors import KeyMaterialError
from chargeguard.sources.ocpi.connector.store import PartnerStore, Secret
from chargeguard.vault.keys import write_new_master_key_file


def test_issued_tokens_are_hashed_and_partner_tokens_sealed(tmp_path: Path) -> None:
    provider = write_new_master_key_file(tmp_path / "master.key")
    path = tmp_path / "partners.json"
    store = PartnerStore(path, key_provider=provider)
    partner = store.create_partner("emsp")
    issued = store.issue_token(partner.partner_id, "access")
    store.set_outgoing(partner.partner_id, "their-token-c-0123456789")
    text = path.read_text()
    assert issued not in text and "their-token-c-0123456789" not in text
    assert path.stat().st_mode & 0o777 == 0o600
    reopened = PartnerStore(path, key_provider=provider)
    assert reopened.authenticate(issued).status == "ok"
    assert reopened.outgoing(partner.partner_id) == "their-token-c-0123456789"
    assert "their-token" not in repr(reopened.get(partner.partner_id))
    with pytest.raises(KeyMaterialError):
        PartnerStore(path)  # sealed tokens need the key provider
    other = write_new_master_key_file(tmp_path / "other.key")
    with pytest.raises(KeyMaterialError):
        PartnerStore(path, key_provider=other)


def test_without_a_key_provider_partner_tokens_stay_in_memory(tmp_path: Path) -> None:
    path = tmp_path / "partners.json"
    store = PartnerStore(path)
    partner = store.create_partner("cpo")
    store.set_outgoing(partner.partner_id, "their-token-c-abcdef")
    assert "their-token-c-abcdef" not in path.read_text()
    assert store.outgoing(partner.partner_id) == "their-token-c-abcdef"
    assert PartnerStore(path).get(partner.partner_id).outgoing is None  # lost on restart, never on disk


def test_expiry_revocation_and_secret_repr() -> None:
    now = [datetime(2026, 1, 1, tzinfo=UTC)]
    store = PartnerStore(clock=lambda: now[0])
    partner = store.create_partner("p")
    token = store.issue_token(partner.partner_id, "registration", ttl=timedelta(hours=1))
    keep = store.issue_token(partner.partner_id, "access")
    assert store.authenticate(token).status == "ok"
    now[0] += timedelta(hours=2)
    assert store.authenticate(token).status == "expired"
    store.revoke_partner_tokens(partner.partner_id, keep=keep)
    assert store.authenticate(token).status == "unknown" and store.authenticate(keep).status == "ok"
    assert str(Secret("abc")) == "Secret(<redacted>)"
