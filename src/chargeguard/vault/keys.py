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
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from chargeguard.errors import KeyMaterialError

KEY_BYTES = 32
MAX_VERSION = 99


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


@dataclass(frozen=True)
class KeyRing:
    """The pseudonym keys of a key file: versions, which is layered over which, and the current one."""

    keys: Mapping[int, bytes]
    layers: Mapping[int, int] = field(default_factory=dict)

    @property
    def current(self) -> int:
        return max(self.keys)

    def __repr__(self) -> str:
        return f"KeyRing(versions={sorted(self.keys)}, layers={dict(self.layers)})"


def _read_lines(path: Path) -> list[str]:
    check_key_file(path)
    try:
        return path.read_text(encoding="ascii").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyMaterialError(f"key file {path} cannot be read") from exc


def read_key_ring(path: Path) -> KeyRing:
    """Read a checked key file: ``<version>:<key>`` lines, or ``<version>:<key>:over=<older version>``.

    ``over=`` marks a layered version (see ``chargeguard.vault.rotation``).
    """
    keys: dict[int, bytes] = {}
    layers: dict[int, int] = {}
    for number, line in enumerate(_read_lines(path), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        version_text, sep, rest = line.partition(":")
        if not sep or not version_text.isdigit():
            raise KeyMaterialError(f"{path}:{number}: expected '<version>:<key>'")
        version = int(version_text)
        if not 1 <= version <= MAX_VERSION:
            raise KeyMaterialError(f"{path}:{number}: key version must be 1..{MAX_VERSION}")
        if version in keys:
            raise KeyMaterialError(f"{path}:{number}: key version {version} appears twice")
        material, sep, option = rest.partition(":")
        if sep:
            name, eq, value = option.partition("=")
            if name != "over" or not eq or not value.isdigit():
                raise KeyMaterialError(f"{path}:{number}: unknown key option (expected 'over=<version>')")
            layers[version] = int(value)
        keys[version] = _decode_key(material, where=f"{path}:{number}")
    if not keys:
        raise KeyMaterialError(f"key file {path} holds no key")
    for outer, inner in layers.items():
        if inner not in keys or inner >= outer:
            raise KeyMaterialError(
                f"key file {path}: version {outer} is layered over {inner}, which is not an "
                "older version in the file"
            )
    return KeyRing(keys, layers)


class KeyVersions(dict[int, bytes]):
    """A plain ``{version: key}`` dict that also carries the file's layers (``{outer: inner}``).

    ``Pseudonymiser(keys, current)`` picks the layers up from it, so callers that only pass the dict along
    still hash layered versions correctly.
    """

    layers: dict[int, int]

    def __init__(self, keys: Mapping[int, bytes], layers: Mapping[int, int] | None = None) -> None:
        super().__init__(keys)
        self.layers = dict(layers or {})

    def __repr__(self) -> str:
        return f"KeyVersions(versions={sorted(self)}, layers={self.layers})"


def read_key_file(path: Path) -> KeyVersions:
    """Read the keys (``<version>:<hex>`` lines) of a checked key file, with their layers."""
    ring = read_key_ring(path)
    return KeyVersions(ring.keys, ring.layers)


def _write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` (mode 0600) so that a crash leaves either the old or the new file."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _render(ring: KeyRing, header: str) -> str:
    lines = [header]
    for version in sorted(ring.keys):
        over = f":over={ring.layers[version]}" if version in ring.layers else ""
        lines.append(f"{version}:{ring.keys[version].hex()}{over}")
    return "\n".join(lines) + "\n"


_HEADER = (
    "# chargeguard pseudonym keys: <version>:<hex>[:over=<v>]. Losing this file orphans every pseudonym."
)


def add_key_version(path: Path, *, layered: bool) -> KeyRing:
    """Append a fresh key version to a key file (atomically) and return the new ring.

    ``layered=True`` layers it over the current version (rotation without raw tokens); otherwise it is a
    fresh key, and stored pseudonyms can only move to it by re-derivation from sealed tokens.
    """
    ring = read_key_ring(path)
    version = ring.current + 1
    if version > MAX_VERSION:
        raise KeyMaterialError(f"key file {path} already holds version {MAX_VERSION}, the last one")
    keys = {**ring.keys, version: secrets.token_bytes(KEY_BYTES)}
    layers = {**ring.layers, version: ring.current} if layered else dict(ring.layers)
    new = KeyRing(keys, layers)
    _write_atomically(path, _render(new, _HEADER))
    return new


def retire_key_version(path: Path, version: int) -> KeyRing:
    """Remove a key version that no stored record and no kept layer needs any more (atomically)."""
    ring = read_key_ring(path)
    if version not in ring.keys:
        raise KeyMaterialError(f"key file {path} has no version {version}")
    if version == ring.current:
        raise KeyMaterialError(f"key version {version} is the current one and cannot be retired")
    if version in ring.layers.values():
        raise KeyMaterialError(f"key version {version} is the inner layer of a newer version; it must stay")
    keys = {v: k for v, k in ring.keys.items() if v != version}
    layers = {o: i for o, i in ring.layers.items() if o != version}
    new = KeyRing(keys, layers)
    _write_atomically(path, _render(new, _HEADER))
    return new


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


# --- master keys for sealed tokens ---------------------------------------------------------------------


@dataclass(frozen=True)
class WrappedKey:
    """A per-record data key encrypted under a master key; ``key_id`` names the master key and its version."""

    key_id: str
    blob: bytes


class KeyProvider(Protocol):
    """Wraps and unwraps per-record data keys with a master key that never leaves the provider.

    A KMS backend maps ``wrap``/``unwrap`` to Encrypt/Decrypt with ``aad`` as the encryption context; a
    HashiCorp Vault backend to ``transit/encrypt``/``transit/decrypt`` with ``aad`` as the context and the
    Vault key version inside ``key_id``. Rules every implementation follows:

    * ``key_id`` identifies the master key *and its version*; ``unwrap`` of a ``key_id`` the provider does not
      hold raises ``KeyMaterialError`` naming the id (never falls back to another version);
    * ``unwrap`` with a different ``aad`` than ``wrap`` fails (``KeyMaterialError``);
    * no key bytes, data keys or ``aad`` values appear in logs or error messages.
    """

    @property
    def current_key_id(self) -> str: ...

    def wrap(self, data_key: bytes, *, aad: bytes) -> WrappedKey: ...

    def unwrap(self, wrapped: WrappedKey, *, aad: bytes) -> bytes: ...


class LocalKeyFileProvider:
    """Master keys from a local key file (``<version>:<hex>`` lines, mode 0600/0400, owned by the user).

    Data keys are wrapped with AES-256-GCM under the highest version; ``key_id`` is ``local:<version>``.
    """

    prefix = "local"

    def __init__(self, path: Path) -> None:
        self._path = path
        keys = read_key_file(path)
        for version, key in keys.items():
            if len(key) != KEY_BYTES:
                raise KeyMaterialError(
                    f"{path}: master key version {version} must be exactly {KEY_BYTES} bytes"
                )
        self._keys = keys
        self._current = max(keys)

    def __repr__(self) -> str:
        return f"LocalKeyFileProvider(path={str(self._path)!r}, versions={sorted(self._keys)})"

    @property
    def current_key_id(self) -> str:
        return f"{self.prefix}:{self._current}"

    def wrap(self, data_key: bytes, *, aad: bytes) -> WrappedKey:
        nonce = secrets.token_bytes(12)
        blob = nonce + AESGCM(self._keys[self._current]).encrypt(nonce, data_key, aad)
        return WrappedKey(self.current_key_id, blob)

    def unwrap(self, wrapped: WrappedKey, *, aad: bytes) -> bytes:
        prefix, _, version_text = wrapped.key_id.partition(":")
        if prefix != self.prefix or not version_text.isdigit() or int(version_text) not in self._keys:
            raise KeyMaterialError(
                f"sealed with master key {wrapped.key_id!r}, which {self._path} does not hold "
                f"(it holds {', '.join(f'{self.prefix}:{v}' for v in sorted(self._keys))})"
            )
        if len(wrapped.blob) < 12 + 16:
            raise KeyMaterialError(f"wrapped data key under {wrapped.key_id!r} is truncated")
        try:
            return AESGCM(self._keys[int(version_text)]).decrypt(wrapped.blob[:12], wrapped.blob[12:], aad)
        except InvalidTag as exc:
            raise KeyMaterialError(
                f"master key {wrapped.key_id!r} does not open this record: wrong key for that version, or "
                "the record was altered"
            ) from exc


def write_new_master_key_file(path: Path) -> LocalKeyFileProvider:
    """Create a master key file (mode 0600, one fresh 256-bit key, version 1); refuses to overwrite."""
    write_new_key_file(path)
    return LocalKeyFileProvider(path)


def add_master_key_version(path: Path) -> LocalKeyFileProvider:
    """Add a fresh master key version (new records are wrapped under it; old ones still open)."""
    add_key_version(path, layered=False)
    return LocalKeyFileProvider(path)
