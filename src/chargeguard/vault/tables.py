"""The vault's own tables (SQLAlchemy Core): sealed tokens, reveal requests, the hash-chained audit log.

They live in their own ``MetaData`` so the vault can run beside any store schema (SQLite or PostgreSQL); the
store's migrations may adopt them later unchanged. ``create_vault_tables`` is idempotent.
"""

from __future__ import annotations

from sqlalchemy import Column, Engine, Index, Integer, LargeBinary, MetaData, String, Table, Text
from sqlalchemy.exc import SQLAlchemyError

from chargeguard.errors import StoreError

metadata = MetaData()

audit_log = Table(
    "vault_audit",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("ts", String(40), nullable=False),
    Column("actor", String(128), nullable=False),
    Column("action", String(64), nullable=False),
    Column("pseudonym", String(20), nullable=True),
    Column("reason", Text, nullable=False),
    Column("detail", Text, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)

sealed_tokens = Table(
    "vault_sealed_tokens",
    metadata,
    Column("record_id", String(32), primary_key=True),
    Column("pseudonym", String(20), nullable=False),
    Column("key_id", String(128), nullable=False),
    Column("wrapped_key", LargeBinary, nullable=False),
    Column("nonce", LargeBinary, nullable=False),
    Column("ciphertext", LargeBinary, nullable=False),
    Column("created_at", String(40), nullable=False),
    Index("ix_vault_sealed_pseudonym", "pseudonym", unique=True),
)

reveal_requests = Table(
    "vault_reveal_requests",
    metadata,
    Column("request_id", String(32), primary_key=True),
    Column("pseudonym", String(20), nullable=False),
    Column("requester", String(128), nullable=False),
    Column("reason", Text, nullable=False),
    Column("created_at", String(40), nullable=False),
    Column("expires_at", String(40), nullable=False),
    Column("approved_by", String(128), nullable=True),
    Column("approved_at", String(40), nullable=True),
    Column("used_at", String(40), nullable=True),
)


def create_vault_tables(engine: Engine) -> None:
    """Create the vault tables that do not exist yet."""
    try:
        metadata.create_all(engine)
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot create the vault tables: {type(exc).__name__}") from exc
