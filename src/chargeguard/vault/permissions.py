"""Who may do what in the vault: the principals file (TOML) naming each person's permissions and public keys.

``<home>/vault-principals.toml`` unless ``--principals FILE`` names another::

    # chargeguard vault principals: name = [permissions]
    [principals]
    alice = ["vault.reveal", "vault.erase"]     # may request and carry out a reveal, may erase
    bob   = ["vault.approve"]                   # may approve someone else's reveal request
    carol = ["vault.reveal", "vault.approve"]   # may do both, but never approve her own request

    # each person's Ed25519 public key(s) (chargeguard vault keygen); a list keeps retired keys, so that
    # vault verify still checks the signatures they made
    [keys]
    alice = "ed25519:3q2+7w..."
    bob   = ["ed25519:AAAA...", "ssh-ed25519 AAAAC3Nza... bob@laptop"]

The CLI authenticates every reveal and erasure step: the person signs it with their private key
(``--key FILE``), and a name without a public key here cannot act (``chargeguard.vault.signatures``).

Permissions: ``vault.reveal`` (request and run a reveal), ``vault.approve`` (approve another person's
request), ``vault.erase`` (erasure on request). The file grants power, so it must be a regular file owned by
the running user and writable by nobody else (no group/other write bit); a missing file grants nothing.
Unknown permissions, keys of people without permissions, or malformed entries are refused rather than ignored.
"""

from __future__ import annotations

import os
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from chargeguard.errors import ConfigError
from chargeguard.vault.retention import PERMISSION_ERASE
from chargeguard.vault.sealed import PERMISSION_APPROVE, PERMISSION_REVEAL, Principal
from chargeguard.vault.signatures import parse_public_key

PERMISSIONS = frozenset({PERMISSION_REVEAL, PERMISSION_APPROVE, PERMISSION_ERASE})
PRINCIPALS_FILE = "vault-principals.toml"
MAX_NAME_CHARS = 128


@dataclass(frozen=True)
class Principals:
    """The principals of a deployment; ``principal(name)`` grants nothing to a name not listed."""

    grants: Mapping[str, frozenset[str]]
    keys: Mapping[str, tuple[Ed25519PublicKey, ...]] = field(default_factory=dict)

    def principal(self, name: str) -> Principal:
        name = name.strip()
        if not name or len(name) > MAX_NAME_CHARS or not name.isprintable():
            raise ConfigError(f"--by must name a person (1..{MAX_NAME_CHARS} printable characters)")
        key = name.casefold()
        return Principal(name, self.grants.get(key, frozenset()), self.keys.get(key, ()))

    def public_keys(self) -> Mapping[str, tuple[Ed25519PublicKey, ...]]:
        """Every listed public key by (case-folded) name: what ``vault verify`` checks signatures with."""
        return dict(self.keys)


def _check_file(path: Path) -> None:
    st = path.stat()
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError(f"principals file {path} is not a regular file")
    if stat.S_IMODE(st.st_mode) & 0o022:
        raise ConfigError(
            f"principals file {path} has mode {stat.S_IMODE(st.st_mode):04o}; it grants vault permissions, "
            "so nobody but its owner may write it (e.g. chmod 0644 or 0600)"
        )
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        raise ConfigError(f"principals file {path} is owned by uid {st.st_uid}, not by the running user")


def load_principals(path: Path) -> Principals:
    """Read and check a principals file; a missing file grants no permission to anyone."""
    if not path.exists():
        return Principals({})
    _check_file(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"principals file {path} cannot be read: {exc.strerror}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"principals file {path} is not valid TOML: {exc}") from exc
    table = data.get("principals", {})
    if not isinstance(table, dict) or set(data) - {"principals", "keys"}:
        raise ConfigError(
            f"principals file {path}: expected a [principals] table of name = [permissions] and a [keys] table"
        )
    grants: dict[str, frozenset[str]] = {}
    for name, perms in table.items():
        if not isinstance(perms, list) or not all(isinstance(p, str) for p in perms):
            raise ConfigError(f"principals file {path}: {name} must be a list of permission names")
        unknown = sorted(set(perms) - PERMISSIONS)
        if unknown:
            raise ConfigError(
                f"principals file {path}: {name} has unknown permission(s) {', '.join(unknown)} "
                f"(known: {', '.join(sorted(PERMISSIONS))})"
            )
        key = name.strip().casefold()
        if key in grants:
            raise ConfigError(f"principals file {path}: {name} appears twice")
        grants[key] = frozenset(perms)
    return Principals(grants, _keys(path, data.get("keys", {}), grants))


def _keys(
    path: Path, table: object, grants: Mapping[str, frozenset[str]]
) -> dict[str, tuple[Ed25519PublicKey, ...]]:
    if not isinstance(table, dict):
        raise ConfigError(f"principals file {path}: [keys] must be a table of name = public key(s)")
    keys: dict[str, tuple[Ed25519PublicKey, ...]] = {}
    for name, value in table.items():
        lines = [value] if isinstance(value, str) else value
        if not isinstance(lines, list) or not lines or not all(isinstance(v, str) for v in lines):
            raise ConfigError(f"principals file {path}: keys.{name} must be a public key or a list of them")
        key = name.strip().casefold()
        if key in keys:
            raise ConfigError(f"principals file {path}: keys.{name} appears twice")
        if key not in grants:
            raise ConfigError(f"principals file {path}: keys.{name} names nobody in [principals]")
        keys[key] = tuple(parse_public_key(v, where=f"principals file {path}: keys.{name}") for v in lines)
    return keys
