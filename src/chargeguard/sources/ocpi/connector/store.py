"""Partner registry: OCPI parties, their endpoints, credentials tokens we issued (hashed) and tokens we send (sealed).

Tokens chargeguard issues (TOKEN_A for a partner to register, TOKEN_B/TOKEN_C for access) are random 256-bit
strings; only their SHA-256 is kept (a fast hash is enough for a high-entropy secret). Tokens a partner issued to
us must be sent back, so they are kept in memory as :class:`Secret` and, when the registry is saved to a file,
sealed with AES-256-GCM under a data key wrapped by the vault's :class:`~chargeguard.vault.keys.KeyProvider`.
Without a key provider the registry refuses to write such a token to disk (it stays in memory only).
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from chargeguard.errors import ConfigError, KeyMaterialError
from chargeguard.private_file import write_private_file
from chargeguard.sources.ocpi.connector.headers import Party
from chargeguard.vault.keys import KeyProvider, WrappedKey

TokenKind = Literal["registration", "access"]
Clock = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class Secret:
    """A credentials token held in memory; never printed."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret(<redacted>)"

    __str__ = __repr__


@dataclass(slots=True)
class Endpoint:
    """One entry of a partner's version details: module identifier, interface role and URL."""

    identifier: str
    role: str
    url: str


@dataclass(slots=True)
class IssuedToken:
    digest: str
    partner_id: str
    kind: TokenKind
    expires_at: datetime | None = None


@dataclass(slots=True)
class Partner:
    """A roaming partner (one platform, one or more parties)."""

    partner_id: str
    name: str
    roles: list[dict[str, Any]] = field(default_factory=list)
    versions_url: str | None = None
    version: str | None = None
    endpoints: list[Endpoint] = field(default_factory=list)
    registered: bool = False
    outgoing: Secret | None = None

    @property
    def parties(self) -> list[Party]:
        out = []
        for role in self.roles:
            cc, pid = role.get("country_code"), role.get("party_id")
            if isinstance(cc, str) and isinstance(pid, str) and Party(cc, pid) not in out:
                out.append(Party(cc, pid))
        return out

    def endpoint(self, identifier: str, role: str) -> str | None:
        for ep in self.endpoints:
            if ep.identifier == identifier and ep.role.upper() == role.upper():
                return ep.url
        return None


@dataclass(frozen=True, slots=True)
class AuthResult:
    status: Literal["ok", "unknown", "expired"]
    partner: Partner | None = None
    token: IssuedToken | None = None


class PartnerStore:
    """Thread-safe registry of partners and credentials tokens; optional JSON file (tokens hashed or sealed)."""

    def __init__(
        self,
        path: Path | None = None,
        *,
        key_provider: KeyProvider | None = None,
        clock: Clock = _utc_now,
    ) -> None:
        self._path = path
        self._provider = key_provider
        self._clock = clock
        self._lock = threading.RLock()
        self._partners: dict[str, Partner] = {}
        self._tokens: dict[str, IssuedToken] = {}
        if path is not None and path.exists():
            self._load(path)

    # --- partners ---------------------------------------------------------------------------------------

    def create_partner(self, name: str) -> Partner:
        with self._lock:
            partner = Partner(partner_id=secrets.token_hex(8), name=name)
            self._partners[partner.partner_id] = partner
            self._save()
            return partner

    def get(self, partner_id: str) -> Partner:
        with self._lock:
            try:
                return self._partners[partner_id]
            except KeyError:
                raise ConfigError(f"unknown OCPI partner {partner_id!r}") from None

    def partners(self) -> Iterator[Partner]:
        with self._lock:
            yield from list(self._partners.values())

    def find_by_party(self, party: Party) -> Partner | None:
        with self._lock:
            for partner in self._partners.values():
                if party in partner.parties:
                    return partner
        return None

    def update(self, partner: Partner) -> None:
        with self._lock:
            self._partners[partner.partner_id] = partner
            self._save()

    def remove_partner(self, partner_id: str) -> None:
        with self._lock:
            self._partners.pop(partner_id, None)
            for digest in [d for d, t in self._tokens.items() if t.partner_id == partner_id]:
                del self._tokens[digest]
            self._save()

    # --- tokens we issue --------------------------------------------------------------------------------

    def issue_token(self, partner_id: str, kind: TokenKind, *, ttl: timedelta | None = None) -> str:
        """A new random token for ``partner_id``; only its hash is kept. Returned once, to be handed over."""
        token = secrets.token_urlsafe(32)
        expires = self._clock() + ttl if ttl is not None else None
        with self._lock:
            self.get(partner_id)
            self._tokens[token_hash(token)] = IssuedToken(token_hash(token), partner_id, kind, expires)
            self._save()
        return token

    def authenticate(self, token: str) -> AuthResult:
        with self._lock:
            issued = self._tokens.get(token_hash(token))
            if issued is None:
                return AuthResult("unknown")
            if issued.expires_at is not None and self._clock() >= issued.expires_at:
                return AuthResult("expired")
            partner = self._partners.get(issued.partner_id)
            if partner is None:
                return AuthResult("unknown")
            return AuthResult("ok", partner, issued)

    def revoke(self, token: str) -> None:
        with self._lock:
            self._tokens.pop(token_hash(token), None)
            self._save()

    def revoke_partner_tokens(self, partner_id: str, *, keep: str | None = None) -> None:
        """Revoke every token issued to a partner except ``keep`` (a raw token, e.g. the one just issued)."""
        kept = token_hash(keep) if keep is not None else None
        with self._lock:
            for digest in [d for d, t in self._tokens.items() if t.partner_id == partner_id and d != kept]:
                del self._tokens[digest]
            self._save()

    # --- tokens we send ---------------------------------------------------------------------------------

    def set_outgoing(self, partner_id: str, token: str) -> None:
        with self._lock:
            self.get(partner_id).outgoing = Secret(token)
            self._save()

    def outgoing(self, partner_id: str) -> str:
        secret = self.get(partner_id).outgoing
        if secret is None:
            raise ConfigError(f"no credentials token to reach OCPI partner {partner_id!r}")
        return secret.reveal()

    # --- persistence ------------------------------------------------------------------------------------

    def _seal(self, partner_id: str, token: str) -> dict[str, str] | None:
        if self._provider is None:
            return None
        aad = f"chargeguard-ocpi-partner:v1:{partner_id}".encode()
        data_key = AESGCM.generate_key(bit_length=256)
        nonce = secrets.token_bytes(12)
        ciphertext = AESGCM(data_key).encrypt(nonce, token.encode("utf-8"), aad)
        wrapped = self._provider.wrap(data_key, aad=aad)
        return {
            "key_id": wrapped.key_id,
            "wrapped_key": wrapped.blob.hex(),
            "nonce": nonce.hex(),
            "ciphertext": ciphertext.hex(),
        }

    def _unseal(self, partner_id: str, sealed: dict[str, str]) -> str:
        if self._provider is None:
            raise KeyMaterialError("the OCPI partner registry holds sealed tokens but no key provider is set")
        aad = f"chargeguard-ocpi-partner:v1:{partner_id}".encode()
        try:
            data_key = self._provider.unwrap(
                WrappedKey(sealed["key_id"], bytes.fromhex(sealed["wrapped_key"])), aad=aad
            )
            raw = AESGCM(data_key).decrypt(
                bytes.fromhex(sealed["nonce"]), bytes.fromhex(sealed["ciphertext"]), aad
            )
        except (InvalidTag, KeyError, ValueError) as exc:
            raise KeyMaterialError(f"cannot open the sealed token of OCPI partner {partner_id}") from exc
        return raw.decode("utf-8")

    def _save(self) -> None:
        if self._path is None:
            return
        doc = {
            "partners": [
                {
                    "partner_id": p.partner_id,
                    "name": p.name,
                    "roles": p.roles,
                    "versions_url": p.versions_url,
                    "version": p.version,
                    "endpoints": [[e.identifier, e.role, e.url] for e in p.endpoints],
                    "registered": p.registered,
                    "outgoing_sealed": self._seal(p.partner_id, p.outgoing.reveal()) if p.outgoing else None,
                }
                for p in self._partners.values()
            ],
            "tokens": [
                {
                    "sha256": t.digest,
                    "partner_id": t.partner_id,
                    "kind": t.kind,
                    "expires_at": t.expires_at.isoformat() if t.expires_at else None,
                }
                for t in self._tokens.values()
            ],
        }
        write_private_file(self._path, orjson.dumps(doc, option=orjson.OPT_INDENT_2))

    def _load(self, path: Path) -> None:
        try:
            doc = orjson.loads(path.read_bytes())
            for item in doc["partners"]:
                partner = Partner(
                    partner_id=item["partner_id"],
                    name=item["name"],
                    roles=item["roles"],
                    versions_url=item["versions_url"],
                    version=item["version"],
                    endpoints=[Endpoint(*e) for e in item["endpoints"]],
                    registered=item["registered"],
                )
                if item.get("outgoing_sealed"):
                    partner.outgoing = Secret(self._unseal(partner.partner_id, item["outgoing_sealed"]))
                self._partners[partner.partner_id] = partner
            for t in doc["tokens"]:
                expires = datetime.fromisoformat(t["expires_at"]) if t["expires_at"] else None
                self._tokens[t["sha256"]] = IssuedToken(t["sha256"], t["partner_id"], t["kind"], expires)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ConfigError(
                f"{path}: not a chargeguard OCPI partner registry ({type(exc).__name__})"
            ) from exc
