"""The vault's hash-chained audit log: who did what to which pseudonym, when and why; and its verification.

Every record carries ``hash = SHA-256(canonical JSON of its fields + the previous record's hash)`` and a
gap-free sequence number starting at 1. ``verify`` recomputes the chain: an edited field, a deleted or
inserted row, or a reordered sequence breaks it. What a hash chain alone cannot show is a rewrite of the
whole chain from the edited row on, or the removal of the newest rows; for that ``verify`` reports the head
(sequence and hash) so the operator can keep it elsewhere (a ticket, a log shipper) and pass it back as
``expected_head``. Free text (the reason) goes through the redaction layer before it is stored.

Records of signed steps (reveal request/approve/run, erasure) carry the person's Ed25519 signature over the
step's statement, which ``verify`` rebuilds from the record and checks under the public keys of the principals
file (``chargeguard.vault.signatures``): a record edited *and* re-chained still fails unless its signer signs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import Connection, Engine, insert, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from chargeguard.errors import StoreError, VaultError
from chargeguard.vault.redact import redact_text
from chargeguard.vault.signatures import SIGNED_ACTIONS, signed_from_detail, statement, verify_signed
from chargeguard.vault.tables import audit_log, create_vault_tables

log = structlog.get_logger(__name__)

GENESIS = "0" * 64
_APPEND_ATTEMPTS = 5

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class AuditRecord:
    """One audit record as stored."""

    seq: int
    ts: str
    actor: str
    action: str
    pseudonym: str | None
    reason: str
    detail: Mapping[str, Any]
    prev_hash: str
    hash: str


def record_hash(
    *,
    seq: int,
    ts: str,
    actor: str,
    action: str,
    pseudonym: str | None,
    reason: str,
    detail_json: str,
    prev_hash: str,
) -> str:
    canonical = orjson.dumps(
        [seq, ts, actor, action, pseudonym, reason, detail_json, prev_hash],
    )
    return hashlib.sha256(canonical).hexdigest()


@dataclass
class VerifyReport:
    """The outcome of ``AuditLog.verify``; ``ok`` when the chain is intact (and matches the expected head)."""

    records: int = 0
    head_seq: int = 0
    head_hash: str = GENESIS
    problems: list[str] = field(default_factory=list)
    signatures_ok: int = 0
    signatures_unchecked: int = 0  # signed records, verified without public keys: chain only
    unsigned: int = 0  # records of signed steps without a signature (written before signatures, or library)

    @property
    def ok(self) -> bool:
        return not self.problems


class AuditLog:
    """Append-only, hash-chained audit records in the ``vault_audit`` table."""

    def __init__(self, engine: Engine, *, clock: Clock = utc_now) -> None:
        self._engine = engine
        self._clock = clock
        create_vault_tables(engine)

    def append(
        self,
        actor: str,
        action: str,
        *,
        pseudonym: str | None = None,
        reason: str = "",
        detail: Mapping[str, Any] | None = None,
        conn: Connection | None = None,
    ) -> AuditRecord:
        """Append one record; inside ``conn``'s transaction when given (commits with the audited act)."""
        if not actor or not action:
            raise VaultError("an audit record needs an actor and an action")
        if conn is not None:
            return self._append(conn, actor, action, pseudonym, reason, detail)
        for attempt in range(_APPEND_ATTEMPTS):
            try:
                with self._engine.begin() as own:
                    return self._append(own, actor, action, pseudonym, reason, detail)
            except IntegrityError:  # a concurrent writer took the sequence number: chain onto its record
                if attempt == _APPEND_ATTEMPTS - 1:
                    raise StoreError("audit log append kept colliding with concurrent writers") from None
            except SQLAlchemyError as exc:
                raise StoreError(f"cannot append to the vault audit log: {type(exc).__name__}") from exc
        raise StoreError("audit log append failed")  # pragma: no cover - the loop returns or raises

    def _append(
        self,
        conn: Connection,
        actor: str,
        action: str,
        pseudonym: str | None,
        reason: str,
        detail: Mapping[str, Any] | None,
    ) -> AuditRecord:
        last = conn.execute(
            select(audit_log.c.seq, audit_log.c.hash).order_by(audit_log.c.seq.desc()).limit(1)
        ).first()
        seq, prev = (last.seq + 1, last.hash) if last is not None else (1, GENESIS)
        ts = self._clock().astimezone(UTC).isoformat(timespec="microseconds")
        reason = redact_text(reason)
        detail_json = orjson.dumps(dict(detail or {}), option=orjson.OPT_SORT_KEYS).decode()
        digest = record_hash(
            seq=seq,
            ts=ts,
            actor=actor,
            action=action,
            pseudonym=pseudonym,
            reason=reason,
            detail_json=detail_json,
            prev_hash=prev,
        )
        conn.execute(
            insert(audit_log).values(
                seq=seq,
                ts=ts,
                actor=actor,
                action=action,
                pseudonym=pseudonym,
                reason=reason,
                detail=detail_json,
                prev_hash=prev,
                hash=digest,
            )
        )
        log.info("vault.audit.appended", seq=seq, action=action, actor=actor)
        return AuditRecord(seq, ts, actor, action, pseudonym, reason, orjson.loads(detail_json), prev, digest)

    def records(self, *, pseudonym: str | None = None) -> Iterator[AuditRecord]:
        """Every record in sequence order (optionally only those about one pseudonym)."""
        query = select(audit_log).order_by(audit_log.c.seq)
        if pseudonym is not None:
            query = query.where(audit_log.c.pseudonym == pseudonym)
        try:
            with self._engine.connect() as conn:
                rows = conn.execute(query).mappings().all()
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot read the vault audit log: {type(exc).__name__}") from exc
        for row in rows:
            try:
                detail = orjson.loads(row["detail"])
            except orjson.JSONDecodeError:
                detail = {"unreadable": True}
            yield AuditRecord(
                row["seq"],
                row["ts"],
                row["actor"],
                row["action"],
                row["pseudonym"],
                row["reason"],
                detail,
                row["prev_hash"],
                row["hash"],
            )

    def verify(
        self,
        *,
        expected_head: tuple[int, str] | None = None,
        public_keys: Mapping[str, Sequence[Ed25519PublicKey]] | None = None,
        require_signatures: bool = False,
    ) -> VerifyReport:
        """Recompute the chain; every broken link is reported by sequence number.

        With ``public_keys`` (case-folded name -> keys, from the principals file) every signature is checked
        too; ``require_signatures`` also reports the records of signed steps that carry none.
        """
        report = VerifyReport()
        prev = GENESIS
        expected_seq = 1
        try:
            with self._engine.connect() as conn:
                rows = conn.execute(select(audit_log).order_by(audit_log.c.seq)).mappings().all()
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot read the vault audit log: {type(exc).__name__}") from exc
        for row in rows:
            report.records += 1
            seq = row["seq"]
            if seq != expected_seq:
                report.problems.append(
                    f"record {seq}: expected sequence {expected_seq} (rows missing or inserted)"
                )
            if row["prev_hash"] != prev:
                report.problems.append(f"record {seq}: does not chain onto the previous record")
            digest = record_hash(
                seq=seq,
                ts=row["ts"],
                actor=row["actor"],
                action=row["action"],
                pseudonym=row["pseudonym"],
                reason=row["reason"],
                detail_json=row["detail"],
                prev_hash=row["prev_hash"],
            )
            if digest != row["hash"]:
                report.problems.append(f"record {seq}: content does not match its hash (edited)")
            if row["action"] in SIGNED_ACTIONS:
                self._check_signature(dict(row), report, public_keys, require_signatures)
            prev = row["hash"]
            expected_seq = seq + 1
            report.head_seq, report.head_hash = seq, row["hash"]
        if expected_head is not None and expected_head != (report.head_seq, report.head_hash):
            report.problems.append(
                f"head is record {report.head_seq} {report.head_hash[:16]}..., expected record "
                f"{expected_head[0]} {expected_head[1][:16]}... (newest records removed or chain rewritten)"
            )
        log.info("vault.audit.verified", records=report.records, ok=report.ok, problems=len(report.problems))
        return report

    @staticmethod
    def _check_signature(
        row: Mapping[str, Any],
        report: VerifyReport,
        public_keys: Mapping[str, Sequence[Ed25519PublicKey]] | None,
        required: bool,
    ) -> None:
        seq, actor, action = row["seq"], str(row["actor"]), str(row["action"])
        try:
            detail = orjson.loads(row["detail"])
        except orjson.JSONDecodeError:
            detail = {}
        if not isinstance(detail, dict):
            detail = {}
        if action == "erasure.done":
            subjects = detail.get("pseudonyms")
            message = statement(
                SIGNED_ACTIONS[action],
                actor,
                reason=str(row["reason"]),
                subjects=[str(s) for s in subjects] if isinstance(subjects, list) else [],
            )
        else:
            request = detail.get("request")
            message = statement(
                SIGNED_ACTIONS[action],
                actor,
                reason=str(row["reason"]),
                request=str(request) if request is not None else None,
                pseudonym=row["pseudonym"],
            )
        signed = signed_from_detail(message, detail)
        if signed is None:
            report.unsigned += 1
            if required:
                report.problems.append(f"record {seq}: {action} by {actor} carries no signature")
        elif public_keys is None:
            report.signatures_unchecked += 1
        elif verify_signed(signed, public_keys.get(actor.strip().casefold(), ())):
            report.signatures_ok += 1
        else:
            report.problems.append(
                f"record {seq}: the signature of {actor} does not verify under their public key(s) "
                "(record edited, or not signed by them)"
            )
