"""Authenticated vault principals: Ed25519 signing keys, the signed statements of reveal and erasure, their checks.

A person acting on the vault (request, approve or run a reveal; erase a data subject) signs a *statement* with
their own private key; the principals file holds each person's public key(s). Typing someone else's name is
then not enough: the approval of request R with reason X by bob verifies only under bob's public key. The
statement is rebuilt from what the audit record stores (action, actor, request id, pseudonym, reason as
stored, i.e. redacted), so ``vault verify --principals FILE`` re-checks every signature long afterwards::

    chargeguard-vault-statement-v1
    {"action":"reveal.approve","principal":"bob","pseudonym":"tok1_...","reason":"cloned card 4411",
     "request":"<32 hex>","subjects":null}

Keys: ``generate_signing_key`` writes a PKCS#8 PEM (mode 0600; encrypted when a passphrase is given) and
returns the public key line for the principals file (``ed25519:<base64 of the 32-byte key>``; an OpenSSH
``ssh-ed25519 AAAA...`` line is accepted too). Private key files obey the vault's key file rules (regular
file, 0600 or 0400, owned by the running user) and are read only here.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from chargeguard.errors import ConfigError, KeyMaterialError
from chargeguard.vault.keys import check_key_file
from chargeguard.vault.redact import redact_text

STATEMENT_HEADER = b"chargeguard-vault-statement-v1\n"
PUBLIC_PREFIX = "ed25519:"
PASSPHRASE_ENV = "CHARGEGUARD_VAULT_KEY_PASSPHRASE"  # noqa: S105 - the variable's name, not a secret

# statement action per audit action: what the signer did, as the audit log records it
SIGNED_ACTIONS = {
    "reveal.requested": "reveal.request",
    "reveal.approved": "reveal.approve",
    "reveal.done": "reveal.run",
    "erasure.done": "erase",
}


@dataclass(frozen=True)
class Signed:
    """A principal's signature over one statement: the evidence an audit record carries."""

    statement: bytes
    signature: bytes
    key_fingerprint: str

    def audit_detail(self) -> dict[str, str]:
        return {
            "signature": base64.b64encode(self.signature).decode("ascii"),
            "key": self.key_fingerprint,
        }


def statement(
    action: str,
    principal: str,
    *,
    reason: str,
    request: str | None = None,
    pseudonym: str | None = None,
    subjects: Sequence[str] | None = None,
) -> bytes:
    """The canonical bytes a principal signs. ``reason`` is taken as the audit log stores it (redacted);
    ``subjects`` are the pseudonyms an erasure removes (sorted, lower case)."""
    body = {
        "action": action,
        "principal": principal,
        "pseudonym": pseudonym,
        "reason": reason,
        "request": request,
        "subjects": list(subjects) if subjects is not None else None,
    }
    return STATEMENT_HEADER + orjson.dumps(body, option=orjson.OPT_SORT_KEYS)


def stored_reason(reason: str) -> str:
    """The reason exactly as the audit log will store it (stripped, redacted): what a statement carries."""
    return redact_text(reason.strip())


def fingerprint(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "SHA256:" + hashlib.sha256(raw).hexdigest()[:32]


def public_key_line(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return PUBLIC_PREFIX + base64.b64encode(raw).decode("ascii")


def parse_public_key(text: str, *, where: str) -> Ed25519PublicKey:
    """An ``ed25519:<base64>`` or OpenSSH ``ssh-ed25519 AAAA... [comment]`` public key."""
    text = text.strip()
    try:
        if text.startswith(PUBLIC_PREFIX):
            raw = base64.b64decode(text[len(PUBLIC_PREFIX) :], validate=True)
            if len(raw) != 32:
                raise ValueError("an Ed25519 public key has 32 bytes")
            return Ed25519PublicKey.from_public_bytes(raw)
        if text.startswith("ssh-ed25519 "):
            key = serialization.load_ssh_public_key(text.encode("ascii"))
            if isinstance(key, Ed25519PublicKey):
                return key
    except (ValueError, binascii.Error, UnsupportedAlgorithm, UnicodeEncodeError) as exc:
        raise ConfigError(f"{where}: not a valid Ed25519 public key ({type(exc).__name__})") from None
    raise ConfigError(f"{where}: expected 'ed25519:<base64>' or an 'ssh-ed25519 ...' line")


def _passphrase(passphrase: str | None) -> bytes | None:
    value = passphrase if passphrase is not None else os.environ.get(PASSPHRASE_ENV)
    return value.encode("utf-8") if value else None


def generate_signing_key(path: Path, *, passphrase: str | None = None) -> str:
    """Write a new Ed25519 private key (PKCS#8 PEM, mode 0600, never overwritten); return its public key line.

    The key is encrypted when a passphrase is given (or set in ``$CHARGEGUARD_VAULT_KEY_PASSPHRASE``).
    """
    key = Ed25519PrivateKey.generate()
    secret = _passphrase(passphrase)
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(secret) if secret else serialization.NoEncryption()
    )
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise KeyMaterialError(f"{path} exists; a signing key is never overwritten") from None
    except OSError as exc:
        raise KeyMaterialError(f"cannot create {path}: {exc.strerror}") from exc
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    return public_key_line(key.public_key())


def load_signing_key(path: Path, *, passphrase: str | None = None) -> Ed25519PrivateKey:
    """Read a private signing key; refuses badly permissioned files, other key types and wrong passphrases."""
    check_key_file(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise KeyMaterialError(f"signing key {path} cannot be read: {exc.strerror}") from exc
    secret = _passphrase(passphrase)
    key: object
    try:
        if data.startswith(b"-----BEGIN OPENSSH PRIVATE KEY-----"):
            key = serialization.load_ssh_private_key(data, password=secret)
        else:
            key = serialization.load_pem_private_key(data, password=secret)
    except TypeError:
        raise KeyMaterialError(
            f"signing key {path} is encrypted: set ${PASSPHRASE_ENV}"
            if secret is None
            else f"signing key {path} is not encrypted; unset ${PASSPHRASE_ENV}"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise KeyMaterialError(
            f"signing key {path} cannot be loaded (not a PEM/OpenSSH private key, or a wrong passphrase)"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyMaterialError(f"signing key {path} is not an Ed25519 key")
    return key


def sign(key: Ed25519PrivateKey, message: bytes) -> Signed:
    return Signed(message, key.sign(message), fingerprint(key.public_key()))


def verify_signed(signed: Signed, public_keys: Sequence[Ed25519PublicKey]) -> bool:
    """True when ``signed`` verifies under one of ``public_keys`` whose fingerprint it names."""
    for public in public_keys:
        if fingerprint(public) != signed.key_fingerprint:
            continue
        try:
            public.verify(signed.signature, signed.statement)
        except InvalidSignature:
            return False
        return True
    return False


def authentication_problem(
    signed: Signed | None, public_keys: Sequence[Ed25519PublicKey], expected: bytes, *, required: bool
) -> str | None:
    """Why a principal's evidence does not authenticate the step whose statement is ``expected`` (or None).

    Without evidence the step passes only when signatures are not ``required`` (library callers that do their
    own authentication); evidence that is present is always checked.
    """
    if signed is None:
        if not required:
            return None
        if not public_keys:
            return "no public key in the principals file: the vault cannot authenticate this person"
        return "the step is not signed (--key FILE)"
    if signed.statement != expected:
        return "the signed statement is not this step's (other request, pseudonym, reason or action)"
    if not public_keys:
        return "no public key in the principals file: the vault cannot authenticate this person"
    if not verify_signed(signed, public_keys):
        return "the signature does not verify under this person's public key(s)"
    return None


def signed_from_detail(message: bytes, detail: object) -> Signed | None:
    """The evidence an audit record's detail carries for ``message``, or None when it carries none."""
    if not isinstance(detail, dict) or "signature" not in detail:
        return None
    try:
        signature = base64.b64decode(str(detail["signature"]), validate=True)
    except (binascii.Error, ValueError):
        signature = b""
    return Signed(message, signature, str(detail.get("key", "")))
