"""open_token_vault: off by default (no raw token anywhere), on: each token sealed once, batched, revealable."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from chargeguard.errors import ConfigError, KeyMaterialError
from chargeguard.settings import Settings
from chargeguard.store import Store
from chargeguard.vault.keys import read_key_file, write_new_key_file, write_new_master_key_file
from chargeguard.vault.pseudonyms import Pseudonymiser
from chargeguard.vault.sealed import PERMISSION_APPROVE, PERMISSION_REVEAL, Principal
from chargeguard.vault.token_vault import TokenVault, open_token_vault

TOKENS = [f"04A2B3C4D5E6{i:02X}" for i in range(40)]


def _settings(tmp_path: Path, **extra: object) -> Settings:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    write_new_key_file(home / "pseudonym.key")
    return Settings(home=home, **extra)  # type: ignore[arg-type]


def _sealed_rows(settings: Settings) -> list[tuple[str, bytes]]:
    with sqlite3.connect(settings.home / "chargeguard.db") as conn:
        try:
            return conn.execute("SELECT pseudonym, ciphertext FROM vault_sealed_tokens").fetchall()
        except sqlite3.OperationalError:
            return []


def test_off_by_default_is_the_pseudonymiser_and_writes_nothing(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    with Store.open(settings.effective_db_url) as store, open_token_vault(settings, store) as vault:
        assert not vault.sealing
        keys = read_key_file(settings.effective_key_file)
        plain = Pseudonymiser(keys, 1)
        assert [vault(t) for t in TOKENS] == [plain(t) for t in TOKENS]
        assert vault.flush() == 0
    assert _sealed_rows(settings) == []
    db = (settings.home / "chargeguard.db").read_bytes()
    assert not any(t.encode() in db for t in TOKENS)


def test_sealing_on_seals_each_token_once_in_batches(tmp_path: Path) -> None:
    settings = _settings(tmp_path, seal_tokens=True, master_key_file=tmp_path / "master.key")
    write_new_master_key_file(tmp_path / "master.key")
    with Store.open(settings.effective_db_url) as store:
        with open_token_vault(settings, store, batch_size=16) as vault:
            assert vault.sealing
            out = [vault(t) for t in TOKENS + TOKENS]  # every token seen twice
            assert vault.sealed_count == 32  # two full batches sealed before close
            assert all(p.startswith("tok1_") for p in out)
            assert vault(out[0]) == out[0]  # a pseudonym passes through, nothing to seal
        assert vault.sealed_count == len(TOKENS)
        rows = _sealed_rows(settings)
        assert sorted(p for p, _ in rows) == sorted(set(out))
        assert not any(t.encode() in c for _, c in rows for t in TOKENS)  # ciphertext only
        # a second process sealing the same tokens adds nothing (dedup by the table, not only in memory)
        with open_token_vault(settings, store, batch_size=7) as again:
            for t in TOKENS:
                again(t)
        assert again.sealed_count == 0 and len(_sealed_rows(settings)) == len(TOKENS)
        # and what was sealed is revealable through the two-person procedure
        assert again.sealed is not None
        alice = Principal("alice", frozenset({PERMISSION_REVEAL}))
        request = again.sealed.request_reveal(out[3], alice, "cloned card confirmed, block at eMSP")
        again.sealed.approve_reveal(request, Principal("bob", frozenset({PERMISSION_APPROVE})))
        assert again.sealed.reveal(request, alice) == TOKENS[3]


def test_sealing_on_without_master_key_is_refused(tmp_path: Path) -> None:
    settings = _settings(tmp_path, seal_tokens=True)
    with Store.open(settings.effective_db_url) as store, pytest.raises(ConfigError, match="master_key_file"):
        open_token_vault(settings, store)


def test_bad_master_key_file_is_refused_never_replaced(tmp_path: Path) -> None:
    key = tmp_path / "master.key"
    settings = _settings(tmp_path, seal_tokens=True, master_key_file=key)
    with Store.open(settings.effective_db_url) as store:
        with pytest.raises(KeyMaterialError, match="does not exist"):
            open_token_vault(settings, store)
        assert not key.exists()
        write_new_master_key_file(key)
        key.chmod(0o644)
        with pytest.raises(KeyMaterialError, match="0644"):
            open_token_vault(settings, store)


def test_missing_pseudonym_key_with_stored_data_is_refused(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    with Store.open(settings.effective_db_url) as store:
        store.mark_pseudonymised([1])
        settings.effective_key_file.unlink()
        with pytest.raises(KeyMaterialError, match="orphan"):
            open_token_vault(settings, store)
        assert not settings.effective_key_file.exists()


def test_failed_batch_is_retried_on_next_sighting(tmp_path: Path) -> None:
    class Failing:
        calls = 0

        def seal_many(self, tokens: dict[str, str]) -> int:
            self.calls += 1
            if self.calls == 1:
                raise OSError("disk full")
            return len(tokens)

    failing = Failing()
    vault = TokenVault(Pseudonymiser({1: b"k" * 32}, 1), failing, batch_size=1)  # type: ignore[arg-type]
    with pytest.raises(OSError):
        vault("04A2B3C4D5E6F7")
    vault("04A2B3C4D5E6F7")
    assert failing.calls == 2 and vault.sealed_count == 1


def test_sealing_into_another_database_than_the_store_is_refused(tmp_path: Path) -> None:
    write_new_master_key_file(tmp_path / "master.key")
    settings = _settings(tmp_path, seal_tokens=True, master_key_file=tmp_path / "master.key")
    with (
        Store.open(f"sqlite:///{tmp_path / 'other.db'}") as store,
        pytest.raises(ConfigError, match="same settings"),
    ):
        open_token_vault(settings, store)
