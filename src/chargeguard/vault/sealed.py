"""Sealed tokens: the opt-in, envelope-encrypted copy of a raw token, and the two-person, audited reveal.

Off by default: a deployment without a ``KeyProvider`` has no ``SealedVault`` and then no raw token exists
anywhere. When on, each distinct token is stored once:

* a fresh 256-bit data key encrypts the token with AES-256-GCM (96-bit random nonce);
* the data key is wrapped by the provider's master key (``chargeguard.vault.keys.KeyProvider``);
* both ciphertexts are bound (associated data) to the record id, so rows cannot be swapped; the record is
  indexed by pseudonym, which key rotation may change without touching the ciphertext.

Reveal (for example to block a confirmed cloned card at the eMSP) takes three steps by two people:
``request_reveal`` (permission ``vault.reveal`` and a reason), ``approve_reveal`` by a *different* principal
with ``vault.approve``, and ``reveal`` by the requester, once, before the request expires. Every step, and
every refusal, writes an audit record; the reveal's audit record commits before the token is returned.

With ``require_signatures`` (what the CLI sets) each step must come from an authenticated principal: one whose
``signed`` statement for exactly this step (``chargeguard.vault.signatures.statement``: action, name, request
id, pseudonym, reason) verifies under one of the principal's public keys from the principals file. The
signature goes into the step's audit record, where ``vault verify --principals`` checks it again.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import structlog
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from chargeguard.errors import KeyMaterialError, StoreError, VaultError
from chargeguard.vault.audit import AuditLog, Clock, utc_now
from chargeguard.vault.keys import KeyProvider, LocalKeyFileProvider, WrappedKey
from chargeguard.vault.pseudonyms import Pseudonymiser
from chargeguard.vault.sealed_table import SealedTokenTable
from chargeguard.vault.signatures import Signed, authentication_problem, statement, stored_reason
from chargeguard.vault.tables import create_vault_tables, reveal_requests, sealed_tokens

log = structlog.get_logger(__name__)

PERMISSION_REVEAL = "vault.reveal"
PERMISSION_APPROVE = "vault.approve"
SYSTEM_ACTOR = "system"
MIN_REASON_CHARS = 10
DEFAULT_REQUEST_TTL = timedelta(hours=24)


@dataclass(frozen=True)
class Principal:
    """A person (or service), the vault permissions granted to it, its public keys and, once it has signed
    the statement of one step, that signature (``dataclasses.replace(principal, signed=...)``)."""

    name: str
    permissions: frozenset[str] = frozenset()
    # key objects are not hashable: a principal is compared and hashed by name, permissions and signature
    public_keys: tuple[Ed25519PublicKey, ...] = field(default=(), compare=False, hash=False)
    signed: Signed | None = None

    def can(self, permission: str) -> bool:
        return permission in self.permissions

    @property
    def key(self) -> str:
        return self.name.strip().casefold()


def _aad(record_id: str, part: str) -> bytes:
    return f"chargeguard-sealed:v1:{part}:{record_id}".encode("ascii")


def _ts(value: datetime) -> str:
    return value.isoformat(timespec="microseconds")


class SealedVault:
    """Seals raw tokens under envelope encryption and reveals them under two-person control."""

    def __init__(
        self,
        engine: Engine,
        provider: KeyProvider,
        pseudonymiser: Pseudonymiser,
        audit: AuditLog,
        *,
        clock: Clock = utc_now,
        request_ttl: timedelta = DEFAULT_REQUEST_TTL,
        require_signatures: bool = False,
    ) -> None:
        self._require_signatures = require_signatures
        self._engine = engine
        self._provider = provider
        self._pseudonymiser = pseudonymiser
        self._audit = audit
        self._clock = clock
        self._ttl = request_ttl
        create_vault_tables(engine)
        self._table = SealedTokenTable(engine)

    # --- sealing ----------------------------------------------------------------------------------------

    def seal(self, raw: str) -> str:
        """Store the sealed token (once per pseudonym) and return its pseudonym."""
        pseudonym = self._pseudonymiser(raw)
        if self._pseudonymiser.is_pseudonym(raw):
            return pseudonym  # already a pseudonym: nothing raw to seal
        try:
            with self._engine.connect() as conn:
                exists = conn.execute(
                    select(sealed_tokens.c.record_id).where(sealed_tokens.c.pseudonym == pseudonym)
                ).first()
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot read sealed tokens: {type(exc).__name__}") from exc
        if exists is not None:
            return pseudonym
        row = self._envelope(pseudonym, raw, _ts(self._clock()))
        try:
            with self._engine.begin() as conn:
                conn.execute(insert(sealed_tokens).values(**row))
        except IntegrityError:
            return pseudonym  # sealed concurrently by another writer
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot store a sealed token: {type(exc).__name__}") from exc
        return pseudonym

    def _envelope(self, pseudonym: str, raw: str, created_at: str) -> dict[str, Any]:
        record_id = secrets.token_hex(16)
        data_key = AESGCM.generate_key(bit_length=256)
        nonce = secrets.token_bytes(12)
        ciphertext = AESGCM(data_key).encrypt(nonce, raw.encode("utf-8"), _aad(record_id, "token"))
        wrapped = self._provider.wrap(data_key, aad=_aad(record_id, "key"))
        del data_key
        return {
            "record_id": record_id,
            "pseudonym": pseudonym,
            "key_id": wrapped.key_id,
            "wrapped_key": wrapped.blob,
            "nonce": nonce,
            "ciphertext": ciphertext,
            "created_at": created_at,
        }

    def seal_many(self, tokens: Mapping[str, str]) -> int:
        """Seal a batch ``{pseudonym: raw}`` (pseudonyms made by this vault's pseudonymiser) in one transaction.

        Pseudonyms already sealed are skipped (one record per token); returns how many records were written.
        A concurrent writer sealing the same token makes the batch fall back to one insert per record.
        """
        if not tokens:
            return 0
        wanted = {p.lower(): raw for p, raw in tokens.items()}
        try:
            with self._engine.connect() as conn:
                existing: set[str] = set()
                names = sorted(wanted)
                for start in range(0, len(names), 500):
                    chunk = names[start : start + 500]
                    existing.update(
                        conn.execute(
                            select(sealed_tokens.c.pseudonym).where(sealed_tokens.c.pseudonym.in_(chunk))
                        ).scalars()
                    )
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot read sealed tokens: {type(exc).__name__}") from exc
        created_at = _ts(self._clock())
        rows = [self._envelope(p, raw, created_at) for p, raw in wanted.items() if p not in existing]
        if not rows:
            return 0
        try:
            with self._engine.begin() as conn:
                conn.execute(insert(sealed_tokens), rows)
            return len(rows)
        except IntegrityError:
            pass  # some were sealed concurrently: insert one by one below
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot store sealed tokens: {type(exc).__name__}") from exc
        written = 0
        for row in rows:
            try:
                with self._engine.begin() as conn:
                    conn.execute(insert(sealed_tokens).values(**row))
                written += 1
            except IntegrityError:
                continue
            except SQLAlchemyError as exc:
                raise StoreError(f"cannot store a sealed token: {type(exc).__name__}") from exc
        return written

    def is_sealed(self, pseudonym: str) -> bool:
        with self._engine.connect() as conn:
            row = conn.execute(
                select(sealed_tokens.c.record_id).where(sealed_tokens.c.pseudonym == pseudonym.lower())
            ).first()
        return row is not None

    def _open(self, pseudonym: str) -> str:
        """Decrypt the sealed token of ``pseudonym``; callers do the permission and audit work."""
        version = self._pseudonymiser.version_of(pseudonym)
        if version is None:
            raise KeyMaterialError(
                "the pseudonym is not valid under any loaded key version (wrong key version, or not ours); "
                f"loaded versions: {sorted(self._pseudonymiser.versions)}"
            )
        with self._engine.connect() as conn:
            row = conn.execute(
                select(sealed_tokens).where(sealed_tokens.c.pseudonym == pseudonym.lower())
            ).first()
        if row is None:
            raise VaultError(
                "no sealed token exists for this pseudonym (sealing was off when it was recorded)"
            )
        data_key = self._provider.unwrap(
            WrappedKey(row.key_id, row.wrapped_key), aad=_aad(row.record_id, "key")
        )
        try:
            raw = (
                AESGCM(data_key)
                .decrypt(row.nonce, row.ciphertext, _aad(row.record_id, "token"))
                .decode("utf-8")
            )
        except (InvalidTag, UnicodeDecodeError) as exc:
            raise VaultError("the sealed token record was altered and does not decrypt") from exc
        if self._pseudonymiser.hash_under(version, raw) != pseudonym.lower():
            raise VaultError("the sealed token does not belong to this pseudonym (record swapped or altered)")
        return raw

    # --- two-person reveal ------------------------------------------------------------------------------

    def _refuse(
        self, actor: Principal, pseudonym: str | None, why: str, request_id: str | None = None
    ) -> VaultError:
        self._audit.append(
            actor.name or "?",
            "reveal.refused",
            pseudonym=pseudonym,
            reason=why,
            detail={"request": request_id},
        )
        log.warning("vault.reveal.refused", actor=actor.name, why=why)
        return VaultError(f"reveal refused: {why}")

    def _authenticate(
        self, who: Principal, action: str, pseudonym: str, reason: str, request_id: str
    ) -> dict[str, str]:
        """Refuse (audited) a step whose principal has not signed exactly this statement; the audit detail."""
        expected = statement(
            action, who.name, reason=stored_reason(reason), request=request_id, pseudonym=pseudonym
        )
        problem = authentication_problem(
            who.signed, who.public_keys, expected, required=self._require_signatures
        )
        if problem is not None:
            raise self._refuse(who, pseudonym, f"{who.name}: {problem}", request_id)
        return who.signed.audit_detail() if who.signed is not None else {}

    def request_reveal(
        self, pseudonym: str, requester: Principal, reason: str, *, request_id: str | None = None
    ) -> str:
        """Open a reveal request; returns its id. Needs ``vault.reveal`` and a reason.

        ``request_id`` (32 hex digits) lets a signing requester name the request in the statement it signs.
        """
        pseudonym = pseudonym.strip().lower()
        if request_id is None:
            request_id = secrets.token_hex(16)
        elif len(request_id) != 32 or any(c not in "0123456789abcdef" for c in request_id):
            raise VaultError("a reveal request id is 32 lower-case hex digits")
        evidence = self._authenticate(requester, "reveal.request", pseudonym, reason, request_id)
        if not requester.can(PERMISSION_REVEAL):
            raise self._refuse(
                requester, pseudonym, f"{requester.name} lacks the {PERMISSION_REVEAL} permission"
            )
        if len(reason.strip()) < MIN_REASON_CHARS:
            raise self._refuse(
                requester, pseudonym, f"a reason of at least {MIN_REASON_CHARS} characters is required"
            )
        if self._pseudonymiser.version_of(pseudonym) is None:
            raise KeyMaterialError(
                "the pseudonym is not valid under any loaded key version (wrong key version, or not ours); "
                f"loaded versions: {sorted(self._pseudonymiser.versions)}"
            )
        if not self.is_sealed(pseudonym):
            raise VaultError(
                "no sealed token exists for this pseudonym (sealing was off when it was recorded)"
            )
        now = self._clock()
        with self._engine.begin() as conn:
            conn.execute(
                insert(reveal_requests).values(
                    request_id=request_id,
                    pseudonym=pseudonym,
                    requester=requester.name,
                    reason=reason.strip(),
                    created_at=_ts(now),
                    expires_at=_ts(now + self._ttl),
                )
            )
            self._audit.append(
                requester.name,
                "reveal.requested",
                pseudonym=pseudonym,
                reason=reason.strip(),
                detail={"request": request_id, **evidence},
                conn=conn,
            )
        return request_id

    def request_details(self, request_id: str) -> tuple[str, str, str]:
        """(pseudonym, requester, reason) of a request: what an approver reads, and signs, before approving."""
        req = self._request(request_id)
        return str(req["pseudonym"]), str(req["requester"]), str(req["reason"])

    def _request(self, request_id: str) -> dict[str, Any]:
        with self._engine.connect() as conn:
            row = conn.execute(
                select(reveal_requests).where(reveal_requests.c.request_id == request_id)
            ).first()
        if row is None:
            raise VaultError(f"no reveal request {request_id!r}")
        return dict(row._mapping)

    def approve_reveal(self, request_id: str, approver: Principal) -> None:
        """Approve a pending request; the approver must hold ``vault.approve`` and not be the requester."""
        req = self._request(request_id)
        pseudonym = str(req["pseudonym"])
        evidence = self._authenticate(approver, "reveal.approve", pseudonym, str(req["reason"]), request_id)
        if not approver.can(PERMISSION_APPROVE):
            raise self._refuse(
                approver, pseudonym, f"{approver.name} lacks the {PERMISSION_APPROVE} permission", request_id
            )
        if approver.key == str(req["requester"]).strip().casefold():
            raise self._refuse(
                approver, pseudonym, "the approver must be a second person, not the requester", request_id
            )
        if req["approved_by"] is not None or req["used_at"] is not None:
            raise self._refuse(approver, pseudonym, "the request was already approved or used", request_id)
        now = self._clock()
        if _ts(now) > str(req["expires_at"]):
            raise self._refuse(approver, pseudonym, "the request has expired", request_id)
        with self._engine.begin() as conn:
            done = conn.execute(
                update(reveal_requests)
                .where(reveal_requests.c.request_id == request_id, reveal_requests.c.approved_by.is_(None))
                .values(approved_by=approver.name, approved_at=_ts(now))
            ).rowcount
            if done != 1:
                raise VaultError("the request was approved concurrently")
            self._audit.append(
                approver.name,
                "reveal.approved",
                pseudonym=pseudonym,
                reason=str(req["reason"]),
                detail={"request": request_id, "requester": str(req["requester"]), **evidence},
                conn=conn,
            )

    def reveal(self, request_id: str, requester: Principal) -> str:
        """Return the raw token of an approved request, once; audited before the token leaves the vault."""
        req = self._request(request_id)
        pseudonym = str(req["pseudonym"])
        evidence = self._authenticate(requester, "reveal.run", pseudonym, str(req["reason"]), request_id)
        if requester.key != str(req["requester"]).strip().casefold():
            raise self._refuse(
                requester, pseudonym, "only the requester may carry out the reveal", request_id
            )
        if not requester.can(PERMISSION_REVEAL):
            raise self._refuse(
                requester, pseudonym, f"{requester.name} lacks the {PERMISSION_REVEAL} permission", request_id
            )
        if req["approved_by"] is None:
            raise self._refuse(requester, pseudonym, "no second person has approved the request", request_id)
        if req["used_at"] is not None:
            raise self._refuse(requester, pseudonym, "the request was already used", request_id)
        now = self._clock()
        if _ts(now) > str(req["expires_at"]):
            raise self._refuse(requester, pseudonym, "the request has expired", request_id)
        raw = self._open(pseudonym)
        with self._engine.begin() as conn:
            done = conn.execute(
                update(reveal_requests)
                .where(reveal_requests.c.request_id == request_id, reveal_requests.c.used_at.is_(None))
                .values(used_at=_ts(now))
            ).rowcount
            if done != 1:
                raise VaultError("the request was used concurrently")
            self._audit.append(
                requester.name,
                "reveal.done",
                pseudonym=pseudonym,
                reason=str(req["reason"]),
                detail={"request": request_id, "approved_by": str(req["approved_by"]), **evidence},
                conn=conn,
            )
        log.warning("vault.reveal.done", actor=requester.name, approved_by=str(req["approved_by"]))
        return raw

    # --- rotation and erasure ---------------------------------------------------------------------------

    def rederive(self, target: Pseudonymiser, pseudonyms: Sequence[str]) -> dict[str, str]:
        """Old -> new pseudonym under ``target``'s current key for every pseudonym with a sealed token.

        A system reveal for key rotation: audited as one record per call, tokens never leave this method.
        """
        out: dict[str, str] = {}
        for pseudonym in pseudonyms:
            if not self.is_sealed(pseudonym):
                continue
            out[pseudonym.lower()] = target.hash_under(target.current_version, self._open(pseudonym))
        if out:
            self._audit.append(
                SYSTEM_ACTOR,
                "rotation.rederived",
                reason="key rotation: re-derive pseudonyms from sealed tokens",
                detail={"count": len(out), "target_version": target.current_version},
            )
        return out

    # PseudonymRekeyStore for the sealed table itself (its pseudonym index moves with a rotation)

    def pseudonym_versions(self) -> Mapping[int, int]:
        return self._table.pseudonym_versions()

    def pseudonyms_under(self, version: int, *, after: str | None, limit: int) -> Sequence[str]:
        return self._table.pseudonyms_under(version, after=after, limit=limit)

    def rekey(self, mapping: Mapping[str, str]) -> int:
        return self._table.rekey(mapping)

    def erase(self, pseudonym: str) -> int:
        """Delete the sealed token of a pseudonym (part of an erasure request); returns rows deleted."""
        with self._engine.begin() as conn:
            return conn.execute(
                delete(sealed_tokens).where(sealed_tokens.c.pseudonym == pseudonym.lower())
            ).rowcount


def open_sealed_vault(
    engine: Engine,
    pseudonymiser: Pseudonymiser,
    *,
    master_key_file: Path | None,
    provider: KeyProvider | None = None,
    clock: Clock = utc_now,
) -> SealedVault | None:
    """The deployment's sealed-token vault, or None when sealing is off (the default: no master key set).

    ``provider`` (a KMS or HashiCorp Vault backend) wins over ``master_key_file`` (the local key file
    provider, whose file must exist with mode 0600/0400 and belong to the running user).
    """
    if provider is None:
        if master_key_file is None:
            return None
        provider = LocalKeyFileProvider(master_key_file)
    return SealedVault(engine, provider, pseudonymiser, AuditLog(engine, clock=clock), clock=clock)
