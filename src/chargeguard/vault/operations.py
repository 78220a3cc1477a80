"""Erasure of one data subject and retention over a deployment's whole personal data, each audited.

What ``chargeguard vault erase`` and ``vault retention apply`` (and any API) call: the store (alerts,
transactions, allow entries), the sealed-token table (no master key needed) and capture directories.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from sqlalchemy import Engine

from chargeguard.errors import ConfigError
from chargeguard.settings import Settings
from chargeguard.store import Store
from chargeguard.store.connect import create_store_engine
from chargeguard.vault.audit import AuditLog
from chargeguard.vault.pseudonyms import Pseudonymiser
from chargeguard.vault.retention import (
    CaptureDirectory,
    ErasureReceipt,
    PersonalDataStore,
    RetentionPolicy,
    apply_retention,
    erase_pseudonyms,
    erasure_statement,
)
from chargeguard.vault.rotation import lookup_candidates
from chargeguard.vault.sealed import Principal
from chargeguard.vault.sealed_table import SealedTokenTable
from chargeguard.vault.signatures import Signed


@contextmanager
def _vault_engine(settings: Settings) -> Iterator[Engine]:
    engine, _ = create_store_engine(settings.effective_db_url)
    try:
        yield engine
    finally:
        engine.dispose()


def personal_stores(store: Store, engine: Engine, captures: Sequence[Path] = ()) -> list[PersonalDataStore]:
    """Every place of a deployment that holds personal data."""
    stores: list[PersonalDataStore] = [store, SealedTokenTable(engine)]
    stores += [CaptureDirectory(path) for path in captures]
    return stores


def erase_subject(
    settings: Settings,
    store: Store,
    pseudonymiser: Pseudonymiser,
    requester: Principal,
    *,
    reason: str,
    pseudonyms: Sequence[str] = (),
    card: str | None = None,
    captures: Sequence[Path] = (),
    signer: Callable[[bytes], Signed] | None = None,
    require_signature: bool = False,
) -> ErasureReceipt:
    """Erase the pseudonyms given and, for a presented ``card``, its pseudonyms under every key version in use.

    ``signer`` signs the erasure's statement once the full list of pseudonyms is known (a card's pseudonyms
    are found here); the signature authenticates ``requester`` and goes into the audit record.
    """
    wanted = list(pseudonyms)
    with _vault_engine(settings) as engine:
        if card is not None:
            if not card.strip():
                raise ConfigError("an empty card was given")
            versions = dict(store.pseudonym_versions())
            for version, count in SealedTokenTable(engine).pseudonym_versions().items():
                versions[version] = versions.get(version, 0) + count
            wanted += lookup_candidates(pseudonymiser, card.strip(), versions)
        if not wanted:
            raise ConfigError("name the data subject: --pseudonym tok<v>_... or --card-from-stdin")
        if signer is not None:
            requester = replace(requester, signed=signer(erasure_statement(requester.name, reason, wanted)))
        return erase_pseudonyms(
            wanted,
            requester=requester,
            reason=reason,
            stores=personal_stores(store, engine, captures),
            audit=AuditLog(engine),
            pseudonymiser=pseudonymiser,
            require_signature=require_signature,
        )


def apply_retention_settings(
    settings: Settings, store: Store, *, actor: str = "system", captures: Sequence[Path] = ()
) -> tuple[RetentionPolicy, dict[str, int]]:
    """Apply ``settings.retention`` everywhere; returns the policy and what was deleted per kind."""
    policy = RetentionPolicy.parse(settings.retention)
    with _vault_engine(settings) as engine:
        removed = apply_retention(
            policy,
            personal_stores(store, engine, captures),
            AuditLog(engine),
            actor=actor.strip() or "system",
        )
    return policy, removed
