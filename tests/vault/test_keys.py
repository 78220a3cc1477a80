"""Key files: the refusals (mode, owner, missing key with data, malformed) and the formats that load."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from chargeguard.errors import KeyMaterialError
from chargeguard.vault.keys import (
    add_key_version,
    check_key_file,
    load_pseudonym_keys,
    read_key_file,
    read_key_ring,
    write_new_key_file,
)


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o700, 0o660])
def test_key_file_with_loose_mode_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "keys"
    write_new_key_file(path)
    path.chmod(mode)
    with pytest.raises(KeyMaterialError, match=f"mode {mode:04o}"):
        read_key_file(path)


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_key_file_with_strict_mode_loads(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "keys"
    keys = write_new_key_file(path)
    path.chmod(mode)
    assert read_key_file(path) == keys


def test_key_file_owned_by_someone_else_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "keys"
    write_new_key_file(path)
    if os.geteuid() == 0:
        os.chown(path, 12345, -1)
    else:
        real = os.getuid()
        monkeypatch.setattr(os, "getuid", lambda: real + 1)
    with pytest.raises(KeyMaterialError, match="owned by uid"):
        check_key_file(path)


def test_directory_and_missing_file_are_refused(tmp_path: Path) -> None:
    with pytest.raises(KeyMaterialError, match="not a regular file"):
        check_key_file(tmp_path)
    with pytest.raises(KeyMaterialError, match="does not exist"):
        check_key_file(tmp_path / "nope")


def test_missing_key_with_existing_data_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    with pytest.raises(KeyMaterialError, match="already holds pseudonymised data"):
        load_pseudonym_keys(env_key=None, key_file=path, store_has_data=True)
    assert not path.exists()
    keys, created = load_pseudonym_keys(env_key=None, key_file=path, store_has_data=False)
    assert created == path and read_key_file(path) == keys


def test_new_key_file_never_overwrites(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    write_new_key_file(path)
    with pytest.raises(KeyMaterialError, match="already exists"):
        write_new_key_file(path)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("1:abcd\n", "at least 32"),
        ("x:" + "00" * 32 + "\n", "expected"),
        ("1:" + "00" * 32 + "\n1:" + "11" * 32 + "\n", "appears twice"),
        ("1:" + "00" * 32 + "\n2:" + "11" * 32 + ":under=1\n", "unknown key option"),
        ("1:" + "00" * 32 + "\n2:" + "11" * 32 + ":over=3\n", "layered over 3"),
        ("# only a comment\n", "holds no key"),
        ("0:" + "00" * 32 + "\n", "1..99"),
    ],
)
def test_malformed_key_files_are_refused(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "keys"
    path.write_text(body)
    path.chmod(0o600)
    with pytest.raises(KeyMaterialError, match=message):
        read_key_ring(path)


def test_key_ring_repr_hides_key_bytes(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    keys = write_new_key_file(path)
    ring = add_key_version(path, layered=True)
    assert keys[1].hex() not in repr(ring) and ring.keys[2].hex() not in repr(ring)
    assert not list(tmp_path.glob(".*tmp"))  # atomic write left no temporary file
