"""The sealed-token table without any key: retention by age, erasure by pseudonym, and its pseudonym index.

Deleting sealed tokens or moving their pseudonym index in a key rotation needs no master key, so these work
even where the key provider is not configured (for example after sealing was switched off). Implements
``vault.retention.PersonalDataStore`` and ``vault.rotation.PseudonymRekeyStore``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from sqlalchemy import Engine, delete, func, select, update
from sqlalchemy.exc import SQLAlchemyError

from chargeguard.errors import StoreError
from chargeguard.vault.datakinds import DataKind
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

    # PseudonymRekeyStore: the table's pseudonym index moves with a key rotation, the ciphertext never does

    def pseudonym_versions(self) -> Mapping[int, int]:
        # "tok1_..." -> "1_", "tok12_..." -> "12": portable across SQLite and PostgreSQL
        head = func.substr(sealed_tokens.c.pseudonym, 4, 2)
        with self._engine.connect() as conn:
            rows = conn.execute(select(head, func.count()).group_by(head)).all()
        out: dict[int, int] = {}
        for text, count in rows:
            digits = str(text).rstrip("_")
            if digits.isdigit():
                out[int(digits)] = out.get(int(digits), 0) + int(count)
        return out

    def pseudonyms_under(self, version: int, *, after: str | None, limit: int) -> Sequence[str]:
        prefix = f"tok{version}_"
        query = (
            select(sealed_tokens.c.pseudonym)
            .where(func.substr(sealed_tokens.c.pseudonym, 1, len(prefix)) == prefix)
            .where(sealed_tokens.c.pseudonym > (after or ""))
            .order_by(sealed_tokens.c.pseudonym)
            .limit(limit)
        )
        with self._engine.connect() as conn:
            return [r for (r,) in conn.execute(query).all()]

    def rekey(self, mapping: Mapping[str, str]) -> int:
        changed = 0
        with self._engine.begin() as conn:
            for old, new in mapping.items():
                taken = conn.execute(
                    select(sealed_tokens.c.record_id).where(sealed_tokens.c.pseudonym == new)
                ).first()
                if taken is not None:  # the same token was sealed again under the new key: keep one record
                    changed += conn.execute(
                        delete(sealed_tokens).where(sealed_tokens.c.pseudonym == old)
                    ).rowcount
                    continue
                changed += conn.execute(
                    update(sealed_tokens).where(sealed_tokens.c.pseudonym == old).values(pseudonym=new)
                ).rowcount
        return changed
