"""The sealed-token table as personal data: retention by age and erasure by pseudonym, without any key.

Deleting sealed tokens needs no master key, so retention and erasure work even where the key provider is not
configured (for example after sealing was switched off). Implements ``vault.retention.PersonalDataStore``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from sqlalchemy import Engine, delete
from sqlalchemy.exc import SQLAlchemyError

from chargeguard.errors import StoreError
from chargeguard.vault.retention import DataKind
from chargeguard.vault.tables import create_vault_tables, sealed_tokens

_CHUNK = 500


class SealedTokenTable:
    """Retention and erasure for ``vault_sealed_tokens`` (a ``PersonalDataStore``)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        create_vault_tables(engine)

    def kinds(self) -> frozenset[DataKind]:
        return frozenset({DataKind.SEALED_TOKENS})

    def delete_older_than(self, kind: DataKind, cutoff: datetime) -> int:
        """Delete sealed tokens created before ``cutoff`` (the table keeps no event time of its own)."""
        if kind is not DataKind.SEALED_TOKENS:
            return 0
        stamp = cutoff.isoformat(timespec="microseconds")
        try:
            with self._engine.begin() as conn:
                return conn.execute(delete(sealed_tokens).where(sealed_tokens.c.created_at < stamp)).rowcount
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot delete old sealed tokens: {type(exc).__name__}") from exc

    def erase_pseudonyms(self, pseudonyms: Sequence[str]) -> Mapping[DataKind, int]:
        wanted = sorted({p.strip().lower() for p in pseudonyms})
        removed = 0
        try:
            with self._engine.begin() as conn:
                for start in range(0, len(wanted), _CHUNK):
                    chunk = wanted[start : start + _CHUNK]
                    removed += conn.execute(
                        delete(sealed_tokens).where(sealed_tokens.c.pseudonym.in_(chunk))
                    ).rowcount
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot erase sealed tokens: {type(exc).__name__}") from exc
        return {DataKind.SEALED_TOKENS: removed}
