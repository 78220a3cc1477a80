"""Pseudonym key rotation that keeps linkage without keeping raw tokens, resumable and never key-less.

HMAC is one-way: a pseudonym cannot be recomputed under a new key without the raw token. Two honest ways
exist, and a deployment may use both (layering for what was never sealed, re-derivation for what was):

Layered keys (``chargeguard vault rotate``, the default; key file line ``<v>:<key>:over=<u>``)
    The new pseudonym of a stored one is ``HMAC(new key, old pseudonym)``; a new raw token is hashed through
    both layers, so old and new records of one card meet. Gains: works with sealing off (no raw token
    anywhere, ever); needs nothing but the keys; one pass over the store. Loses: the old key can never be
    destroyed - it stays as the inner layer - so rotation does not shrink the set of keys whose theft matters;
    an attacker needs *both* keys to test a guessed card against stored data, which is what rotation after a
    suspected leak of the old key buys. Every layer costs one more HMAC per token (see bench/pseudonymise.py),
    and a chain can have at most 99 versions.
Re-derivation from sealed tokens (``vault rotate --fresh`` on an empty store, or the library; no ``over=``)
    Each record's sealed token is unsealed by the vault (audited as a system reveal with reason "key
    rotation") and hashed under the new key. Gains: the new key is independent; once no record and no backup
    uses the old version, ``retire_key_version`` removes it for good; constant cost per token. Loses: only
    records that have a sealed token can move (sealing must have been on when they were written); raw tokens
    exist in memory during the rotation; it needs the master key. Records without a sealed token are reported
    as unmovable: the rotation stays incomplete (old key kept) until they are erased or layered.

Safety: records move in batches; each batch is one store transaction that replaces old pseudonyms by new ones.
At every instant a record is under its old version (still loaded, still accepted for lookups) or the new one,
never under no valid key. The state of a rotation is the store itself (which pseudonyms are still under an
old version), so an interrupted rotation is resumed by running it again. Rotation refuses to start when the
store holds pseudonyms of a version whose key is not loaded.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import structlog

from chargeguard.errors import KeyMaterialError, VaultError
from chargeguard.vault.pseudonyms import Pseudonymiser

log = structlog.get_logger(__name__)

#: Given pseudonyms a layer cannot move, returns old -> new for those it can re-derive (from sealed tokens).
Rederive = Callable[[Sequence[str]], Mapping[str, str]]


@runtime_checkable
class PseudonymRekeyStore(Protocol):
    """What a store implements so the vault can rotate the pseudonyms it holds (every table, every column).

    Pseudonyms are compared and returned lower-case.
    """

    def pseudonym_versions(self) -> Mapping[int, int]:
        """Key version -> number of distinct pseudonyms stored under it."""
        ...

    def pseudonyms_under(self, version: int, *, after: str | None, limit: int) -> Sequence[str]:
        """Up to ``limit`` distinct pseudonyms of ``version`` sorted ascending, all greater than ``after``."""
        ...

    def rekey(self, mapping: Mapping[str, str]) -> int:
        """In ONE transaction replace every stored occurrence of each old pseudonym by its new one.

        Rows whose new pseudonym already exists are merged the way the table needs (a unique index must not
        make the batch fail). Returns the number of rows changed.
        """
        ...


@dataclass
class RotationReport:
    """What one rotation run did; ``complete`` when no stored pseudonym is under an old version any more."""

    target_version: int
    moved: dict[int, int] = field(default_factory=dict)
    layered: int = 0
    rederived: int = 0
    unmovable: dict[int, int] = field(default_factory=dict)
    rows_changed: int = 0
    remaining: dict[int, int] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return not self.remaining


def check_store_keys(pseudonymiser: Pseudonymiser, store: PseudonymRekeyStore) -> Mapping[int, int]:
    """Refuse when the store holds pseudonyms of a key version that is not loaded; return the versions."""
    versions = dict(store.pseudonym_versions())
    missing = sorted(v for v, n in versions.items() if n and v not in pseudonymiser.versions)
    if missing:
        raise KeyMaterialError(
            f"the store holds pseudonyms of key version(s) {missing} whose key is not loaded; restore those "
            "key versions in the key file before running (nothing was changed)"
        )
    return versions


def lookup_candidates(
    pseudonymiser: Pseudonymiser, raw: str, versions_in_store: Mapping[int, int]
) -> list[str]:
    """Pseudonyms under which ``raw`` may be stored while a rotation is in progress: current version first.

    Old versions stay accepted for lookups until no record is under them any more.
    """
    current = pseudonymiser.current_version
    out = [pseudonymiser.hash_under(current, raw)]
    for version in sorted(versions_in_store, reverse=True):
        if version != current and versions_in_store[version] and version in pseudonymiser.versions:
            out.append(pseudonymiser.hash_under(version, raw))
    return out


def rotate(
    pseudonymiser: Pseudonymiser,
    store: PseudonymRekeyStore,
    *,
    rederive: Rederive | None = None,
    batch_size: int = 1000,
) -> RotationReport:
    """Move every stored pseudonym to the current key version in batches; safe to re-run after a crash."""
    if batch_size < 1:
        raise VaultError("rotation batch size must be at least 1")
    target = pseudonymiser.current_version
    versions = check_store_keys(pseudonymiser, store)
    report = RotationReport(target_version=target)
    log.info("vault.rotation.started", target_version=target, versions=sorted(versions))
    for version in sorted(v for v, n in versions.items() if n and v != target):
        after: str | None = None
        while True:
            batch = list(store.pseudonyms_under(version, after=after, limit=batch_size))
            if not batch:
                break
            after = max(batch)
            mapping: dict[str, str] = {}
            stuck: list[str] = []
            for old in batch:
                new = pseudonymiser.upgrade(old)
                if new is not None:
                    mapping[old] = new
                else:
                    stuck.append(old)
            report.layered += len(mapping)
            if stuck and rederive is not None:
                derived = {o: n for o, n in rederive(stuck).items() if o in stuck}
                if any(pseudonymiser.version_of(new) != target for new in derived.values()):
                    raise VaultError("re-derivation returned a value that is not a current-version pseudonym")
                mapping.update(derived)
                report.rederived += len(derived)
                stuck = [o for o in stuck if o not in derived]
            if stuck:
                report.unmovable[version] = report.unmovable.get(version, 0) + len(stuck)
            if mapping:
                report.rows_changed += store.rekey(mapping)
                report.moved[version] = report.moved.get(version, 0) + len(mapping)
            log.info("vault.rotation.batch", version=version, moved=len(mapping), unmovable=len(stuck))
    report.remaining = {v: n for v, n in store.pseudonym_versions().items() if n and v != target}
    log.info(
        "vault.rotation.finished",
        target_version=target,
        complete=report.complete,
        remaining=report.remaining,
        unmovable=report.unmovable,
    )
    return report
