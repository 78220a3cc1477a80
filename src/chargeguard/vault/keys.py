"""Key material: loading, checking and (only on a first run) generating the pseudonym key.

This is the only module that reads or writes key bytes. Rules:

* A key comes from the environment (``CHARGEGUARD_PSEUDONYM_KEY``, hex or base64 of >= 32 bytes) or from a key
  file. A key file holds one line per version, ``<version>:<hex>``; the highest version is current unless the
  settings name another.
* Key files must be regular files owned by the running user with mode 0600 or 0400; anything else is refused.
* A key is generated (into the configured file, mode 0600, with a log line saying where) only when
  neither a key nor a store with pseudonymised data exists yet. Otherwise start-up is refused with a clear
  error - a silent new key would orphan every pseudonym already stored.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
import stat
from pathlib import Path

from chargeguard.errors import KeyMaterialError

KEY_BYTES = 32


def _decode_key(text: str, *, where: str) -> bytes:
    text = text.strip()
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        try:
            raw = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise KeyMaterialError(f"{where}: key is neither hex nor base64") from exc
    if len(raw) < KEY_BYTES:
        raise KeyMaterialError(f"{where}: key has {len(raw)} bytes, at least {KEY_BYTES} are required")
    return raw


def check_key_file(path: Path) -> None:
    """Refuse key files that others could read or that someone else owns."""
    try:
        st = path.stat()
    except FileNotFoundError as exc:
        raise KeyMaterialError(f"key file {path} does not exist") from exc
    except OSError as exc:
        raise KeyMaterialError(f"key file {path} cannot be read: {exc.strerror}") from exc
    if not stat.S_ISREG(st.st_mode):
        raise KeyMaterialError(f"key file {path} is not a regular file")
    mode = stat.S_IMODE(st.st_mode)
    if mode not in (0o600, 0o400):
        raise KeyMaterialError(f"key file {path} has mode {mode:04o}; only 0600 or 0400 are accepted")
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        raise KeyMaterialError(f"key file {path} is owned by uid {st.st_uid}, not by the running user")


def read_key_file(path: Path) -> dict[int, bytes]:
    """Read ``<version>:<hex>`` lines from a checked key file."""
    check_key_file(path)
    try:
        lines = path.read_text(encoding="ascii").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyMaterialError(f"key file {path} cannot be read") from exc
    keys: dict[int, bytes] = {}
    for number, line in enumerate(lines, start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        version_text, sep, material = line.partition(":")
        if not sep or not version_text.isdigit():
            raise KeyMaterialError(f"{path}:{number}: expected '<version>:<key>'")
        version = int(version_text)
        if version in keys:
            raise KeyMaterialError(f"{path}:{number}: key version {version} appears twice")
        keys[version] = _decode_key(material, where=f"{path}:{number}")
    if not keys:
        raise KeyMaterialError(f"key file {path} holds no key")
    return keys


def write_new_key_file(path: Path, version: int = 1) -> dict[int, bytes]:
    """Create a key file with one fresh random key, mode 0600, refusing to overwrite anything."""
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_bytes(KEY_BYTES)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise KeyMaterialError(f"key file {path} already exists; refusing to overwrite it") from exc
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(
            "# chargeguard pseudonym keys: <version>:<hex>. Losing this file orphans every pseudonym.\n"
        )
        handle.write(f"{version}:{secret.hex()}\n")
    path.chmod(0o600)
    return {version: secret}


def load_pseudonym_keys(
    *, env_key: str | None, key_file: Path | None, store_has_data: bool, allow_generate: bool = True
) -> tuple[dict[int, bytes], Path | None]:
    """Find the pseudonym keys. Returns the keys and, when one was just generated, the file written."""
    if env_key:
        version_text, sep, material = env_key.partition(":")
        if sep and version_text.isdigit():
            return {int(version_text): _decode_key(material, where="CHARGEGUARD_PSEUDONYM_KEY")}, None
        return {1: _decode_key(env_key, where="CHARGEGUARD_PSEUDONYM_KEY")}, None
    if key_file is None:
        raise KeyMaterialError("no pseudonym key: set CHARGEGUARD_PSEUDONYM_KEY or a key file")
    if key_file.exists():
        return read_key_file(key_file), None
    if store_has_data:
        raise KeyMaterialError(
            f"key file {key_file} is missing but the store already holds pseudonymised data; refusing to "
            "create a new key that would orphan them - restore the key file or set CHARGEGUARD_KEY_FILE"
        )
    if not allow_generate:
        raise KeyMaterialError(f"key file {key_file} does not exist")
    return write_new_key_file(key_file), key_file
