"""Retention per data kind and erasure of everything linked to one pseudonym, each with an audit record.

Pseudonymised data is still personal data (GDPR Art. 4(5)): it must not be kept longer than needed, and a
driver may ask for it to be erased. The vault owns the policy, the permission check and the audit record;
every place that holds personal data implements ``PersonalDataStore`` (the SQL store, capture directories -
``CaptureDirectory`` here - and the sealed-token table through ``SealedVault.erase``).

Erasure takes the pseudonyms under every key version still in use (``erase_token`` derives them from the
card presented by the driver; rotation may have left the same card under two versions). What stays: the
audit log keeps its own records, including the erased pseudonym in the erasure record itself - the proof
that the request was honoured - because deleting audit records would break the hash chain.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

import structlog

from chargeguard.errors import ConfigError, VaultError
from chargeguard.vault.audit import AuditLog, Clock, utc_now
from chargeguard.vault.datakinds import DataKind
from chargeguard.vault.pseudonyms import Pseudonymiser
from chargeguard.vault.rotation import lookup_candidates
from chargeguard.vault.sealed import Principal, SealedVault
from chargeguard.vault.signatures import authentication_problem, statement, stored_reason

log = structlog.get_logger(__name__)

__all__ = ["DataKind", "PersonalDataStore", "RetentionPolicy", "apply_retention", "erase_pseudonyms"]

PERMISSION_ERASE = "vault.erase"


DEFAULT_RETENTION: Mapping[DataKind, timedelta | None] = {
    DataKind.ALERTS: timedelta(days=365),
    DataKind.TRANSACTIONS: timedelta(days=180),
    DataKind.CAPTURES: timedelta(days=30),
    DataKind.SEALED_TOKENS: timedelta(days=180),
}

_PERIOD = re.compile(r"^\s*(\d{1,5})\s*([dhw])\s*$")
_UNITS = {"h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}


@dataclass(frozen=True)
class RetentionPolicy:
    """How long each kind is kept; ``None`` keeps it until erased on request."""

    periods: Mapping[DataKind, timedelta | None] = field(default_factory=lambda: dict(DEFAULT_RETENTION))

    @classmethod
    def parse(cls, config: Mapping[str, str | int | None]) -> RetentionPolicy:
        """From settings such as ``{"alerts": "365d", "captures": "12w", "transactions": null}``.

        Integers are days; ``null``/``"forever"`` keeps data until erased. Unknown kinds are refused.
        """
        periods: dict[DataKind, timedelta | None] = dict(DEFAULT_RETENTION)
        for name, value in config.items():
            try:
                kind = DataKind(name)
            except ValueError:
                known = ", ".join(k.value for k in DataKind)
                raise ConfigError(f"retention: unknown data kind {name!r} (known: {known})") from None
            if value is None or value == "forever":
                periods[kind] = None
            elif isinstance(value, int) and not isinstance(value, bool) and value > 0:
                periods[kind] = timedelta(days=value)
            elif isinstance(value, str) and (m := _PERIOD.match(value)) and int(m.group(1)) > 0:
                periods[kind] = int(m.group(1)) * _UNITS[m.group(2)]
            else:
                raise ConfigError(f"retention.{name}: expected a positive number of days or '<n>d|h|w'")
        return cls(periods)

    def cutoff(self, kind: DataKind, now: datetime) -> datetime | None:
        period = self.periods.get(kind)
        return None if period is None else now - period


class PersonalDataStore(Protocol):
    """A place holding pseudonymised personal data (the SQL store, a capture directory, ...)."""

    def kinds(self) -> frozenset[DataKind]:
        """The data kinds this store holds."""
        ...

    def delete_older_than(self, kind: DataKind, cutoff: datetime) -> int:
        """Delete records of ``kind`` whose event time is before ``cutoff``; returns how many."""
        ...

    def erase_pseudonyms(self, pseudonyms: Sequence[str]) -> Mapping[DataKind, int]:
        """Delete every record linked to any of the (lower-case) pseudonyms, atomically per store."""
        ...


@dataclass
class ErasureReceipt:
    """What an erasure removed, and the audit record that proves it."""

    pseudonyms: list[str]
    removed: dict[str, int]
    audit_seq: int


def apply_retention(
    policy: RetentionPolicy,
    stores: Sequence[PersonalDataStore],
    audit: AuditLog,
    *,
    clock: Clock = utc_now,
    actor: str = "system",
) -> dict[str, int]:
    """Delete what is past its retention period in every store; one audit record with the counts."""
    now = clock()
    removed: dict[str, int] = {}
    cutoffs: dict[str, str | None] = {}
    for kind in DataKind:
        cutoff = policy.cutoff(kind, now)
        cutoffs[kind.value] = cutoff.isoformat() if cutoff else None
        if cutoff is None:
            continue
        for store in stores:
            if kind in store.kinds():
                removed[kind.value] = removed.get(kind.value, 0) + store.delete_older_than(kind, cutoff)
    audit.append(
        actor, "retention.applied", reason="retention policy", detail={"removed": removed, "cutoffs": cutoffs}
    )
    log.info("vault.retention.applied", removed=removed)
    return removed


def erasure_subjects(pseudonyms: Sequence[str]) -> list[str]:
    """The pseudonyms an erasure removes, as its audit record and its signed statement name them."""
    return sorted({p.strip().lower() for p in pseudonyms})


def erasure_statement(requester: str, reason: str, pseudonyms: Sequence[str]) -> bytes:
    """What the person erasing signs: who, why, and exactly which pseudonyms."""
    return statement("erase", requester, reason=stored_reason(reason), subjects=erasure_subjects(pseudonyms))


def erase_pseudonyms(
    pseudonyms: Sequence[str],
    *,
    requester: Principal,
    reason: str,
    stores: Sequence[PersonalDataStore],
    audit: AuditLog,
    pseudonymiser: Pseudonymiser,
    sealed: SealedVault | None = None,
    require_signature: bool = False,
) -> ErasureReceipt:
    """Erase everything linked to the pseudonyms (one data subject) and write the audit record.

    With ``require_signature`` the requester must carry a signature over ``erasure_statement`` that verifies
    under its public key; a signature that is present is checked either way, and goes into the audit record.
    """
    problem = authentication_problem(
        requester.signed,
        requester.public_keys,
        erasure_statement(requester.name, reason, pseudonyms),
        required=require_signature,
    )
    if problem is not None:
        audit.append(requester.name or "?", "erasure.refused", reason=f"{requester.name}: {problem}")
        raise VaultError(f"erasure refused: {requester.name}: {problem}")
    if not requester.can(PERMISSION_ERASE):
        audit.append(
            requester.name or "?", "erasure.refused", reason=f"lacks the {PERMISSION_ERASE} permission"
        )
        raise VaultError(f"erasure refused: {requester.name} lacks the {PERMISSION_ERASE} permission")
    if len(reason.strip()) < 10:
        raise VaultError("erasure refused: a reason (for example the request reference) is required")
    wanted = erasure_subjects(pseudonyms)
    bad = [p for p in wanted if pseudonymiser.version_of(p) is None]
    if bad or not wanted:
        raise VaultError(
            f"erasure refused: {len(bad)} value(s) are not valid pseudonyms under the loaded keys"
            if bad
            else "erasure refused: no pseudonym given"
        )
    removed: dict[str, int] = {}
    for store in stores:
        for kind, count in store.erase_pseudonyms(wanted).items():
            removed[str(kind)] = removed.get(str(kind), 0) + count
    if sealed is not None:
        removed[DataKind.SEALED_TOKENS.value] = sum(sealed.erase(p) for p in wanted)
    record = audit.append(
        requester.name,
        "erasure.done",
        pseudonym=wanted[0],
        reason=reason.strip(),
        detail={
            "pseudonyms": wanted,
            "removed": removed,
            **(requester.signed.audit_detail() if requester.signed is not None else {}),
        },
    )
    log.info("vault.erasure.done", actor=requester.name, removed=removed)
    return ErasureReceipt(wanted, removed, record.seq)


def erase_token(
    raw: str,
    versions_in_store: Mapping[int, int],
    *,
    requester: Principal,
    reason: str,
    stores: Sequence[PersonalDataStore],
    audit: AuditLog,
    pseudonymiser: Pseudonymiser,
    sealed: SealedVault | None = None,
) -> ErasureReceipt:
    """Erase by the card a driver presents: its pseudonyms under every key version still in use."""
    return erase_pseudonyms(
        lookup_candidates(pseudonymiser, raw, versions_in_store),
        requester=requester,
        reason=reason,
        stores=stores,
        audit=audit,
        pseudonymiser=pseudonymiser,
        sealed=sealed,
    )


class CaptureDirectory:
    """Captures (JSON Lines, ``.jsonl`` / ``.jsonl.gz``) in one directory, as a ``PersonalDataStore``.

    Retention deletes whole files by modification time (a capture file covers a period that ended when it was
    last written); erasure rewrites each file without the lines that mention an erased pseudonym, atomically.
    """

    def __init__(self, path: Path) -> None:
        if not path.is_dir():
            raise ConfigError(f"capture directory {path} does not exist")
        self._path = path

    def kinds(self) -> frozenset[DataKind]:
        return frozenset({DataKind.CAPTURES})

    def _files(self) -> list[Path]:
        return sorted(
            p for p in self._path.iterdir() if p.is_file() and p.name.endswith((".jsonl", ".jsonl.gz"))
        )

    def delete_older_than(self, kind: DataKind, cutoff: datetime) -> int:
        if kind is not DataKind.CAPTURES:
            return 0
        removed = 0
        for path in self._files():
            if path.stat().st_mtime < cutoff.timestamp():
                path.unlink()
                removed += 1
        return removed

    def erase_pseudonyms(self, pseudonyms: Sequence[str]) -> Mapping[DataKind, int]:
        needles = [p.lower().encode("ascii") for p in pseudonyms]
        removed = 0
        for path in self._files():
            gz = path.name.endswith(".gz")
            opener = gzip.open if gz else open
            with opener(path, "rb") as handle:
                lines = handle.readlines()
            kept = [line for line in lines if not any(n in line.lower() for n in needles)]
            if len(kept) == len(lines):
                continue
            removed += len(lines) - len(kept)
            tmp = path.with_name(f".{path.name}.erase.tmp")
            with opener(tmp, "wb") as out:
                out.writelines(kept)
            tmp.chmod(path.stat().st_mode & 0o777)  # keep the capture's mode
            tmp.replace(path)
        return {DataKind.CAPTURES: removed}
