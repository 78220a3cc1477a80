"""Initial schema: alerts (+ stations, transactions), transactions, stations, allow entries, scan runs, meta.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _json() -> sa.types.TypeEngine[object]:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _id() -> sa.types.TypeEngine[int]:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("severity", sa.SmallInteger(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("ts", _utc(), nullable=False),
        sa.Column("last_ts", _utc(), nullable=True),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("station", sa.String(length=255), nullable=True),
        sa.Column("token_ref", sa.String(length=32), nullable=True),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("evidence", _json(), nullable=False),
        sa.Column("updated_at", _utc(), nullable=False),
        sa.CheckConstraint("status IN ('open', 'closed')", name=op.f("ck_alerts_status_known")),
        sa.CheckConstraint("confidence >= 0 AND confidence <= 1", name=op.f("ck_alerts_confidence_range")),
        sa.CheckConstraint("severity BETWEEN 0 AND 4", name=op.f("ck_alerts_severity_range")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts")),
    )
    op.create_index(op.f("ix_alerts_ts"), "alerts", ["ts"])
    op.create_index(op.f("ix_alerts_kind_ts"), "alerts", ["kind", "ts"])
    op.create_index(op.f("ix_alerts_station_ts"), "alerts", ["station", "ts"])
    op.create_index(op.f("ix_alerts_token_ref"), "alerts", ["token_ref"])

    op.create_table(
        "alert_stations",
        sa.Column("alert_id", sa.String(length=64), nullable=False),
        sa.Column("position", sa.SmallInteger(), nullable=False),
        sa.Column("station", sa.String(length=255), nullable=False),
        sa.ForeignKeyConstraint(
            ["alert_id"], ["alerts.id"], name=op.f("fk_alert_stations_alert_id_alerts"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("alert_id", "position", name=op.f("pk_alert_stations")),
    )
    op.create_index(op.f("ix_alert_stations_station"), "alert_stations", ["station"])

    op.create_table(
        "alert_transactions",
        sa.Column("alert_id", sa.String(length=64), nullable=False),
        sa.Column("position", sa.SmallInteger(), nullable=False),
        sa.Column("transaction_id", sa.String(length=255), nullable=False),
        sa.ForeignKeyConstraint(
            ["alert_id"],
            ["alerts.id"],
            name=op.f("fk_alert_transactions_alert_id_alerts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("alert_id", "position", name=op.f("pk_alert_transactions")),
    )
    op.create_index(op.f("ix_alert_transactions_transaction_id"), "alert_transactions", ["transaction_id"])

    op.create_table(
        "transactions",
        sa.Column("id", _id(), autoincrement=True, nullable=False),
        sa.Column("station", sa.String(length=255), nullable=False),
        sa.Column("transaction_id", sa.String(length=255), nullable=False),
        sa.Column("connector", sa.String(length=32), nullable=True),
        sa.Column("ocpp", sa.String(length=8), nullable=False),
        sa.Column("token_ref", sa.String(length=32), nullable=True),
        sa.Column("stop_token_ref", sa.String(length=32), nullable=True),
        sa.Column("started_at", _utc(), nullable=True),
        sa.Column("ended_at", _utc(), nullable=False),
        sa.Column("ended_ts", _utc(), nullable=False),
        sa.Column("energy_wh", sa.Float(), nullable=True),
        sa.Column("meter_start_wh", sa.Float(), nullable=True),
        sa.Column("meter_stop_wh", sa.Float(), nullable=True),
        sa.Column("reason", sa.String(length=64), nullable=True),
        sa.Column("samples", sa.Integer(), nullable=False),
        sa.Column("first_sample_wh", sa.Float(), nullable=True),
        sa.Column("last_sample_wh", sa.Float(), nullable=True),
        sa.Column("max_power_w", sa.Float(), nullable=True),
        sa.Column("charging_seen", sa.Boolean(), nullable=False),
        sa.Column("queued", sa.Boolean(), nullable=False),
        sa.Column("auth_status", sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transactions")),
        sa.UniqueConstraint(
            "station",
            "transaction_id",
            "started_at",
            name=op.f("uq_transactions_station_transaction_id_started_at"),
        ),
    )
    op.create_index(op.f("ix_transactions_ended_at"), "transactions", ["ended_at"])
    op.create_index(op.f("ix_transactions_token_ref_ended_at"), "transactions", ["token_ref", "ended_at"])
    op.create_index(
        "uq_transactions_unstarted",
        "transactions",
        ["station", "transaction_id", "ended_at"],
        unique=True,
        sqlite_where=sa.text("started_at IS NULL"),
        postgresql_where=sa.text("started_at IS NULL"),
    )

    op.create_table(
        "stations",
        sa.Column("station", sa.String(length=255), nullable=False),
        sa.Column("ocpp", sa.String(length=8), nullable=True),
        sa.Column("vendor", sa.String(length=255), nullable=True),
        sa.Column("model", sa.String(length=255), nullable=True),
        sa.Column("serial", sa.String(length=255), nullable=True),
        sa.Column("firmware", sa.String(length=255), nullable=True),
        sa.Column("security_profile", sa.SmallInteger(), nullable=True),
        sa.Column("first_seen", _utc(), nullable=False),
        sa.Column("last_seen", _utc(), nullable=False),
        sa.Column("last_boot", _utc(), nullable=True),
        sa.CheckConstraint(
            "security_profile BETWEEN 0 AND 3", name=op.f("ck_stations_security_profile_range")
        ),
        sa.PrimaryKeyConstraint("station", name=op.f("pk_stations")),
    )

    op.create_table(
        "allow_entries",
        sa.Column("id", _id(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=8), nullable=False),
        sa.Column("value", sa.String(length=255), nullable=False),
        sa.Column("expires", _utc(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("added_by", sa.String(length=128), nullable=False),
        sa.Column("added_at", _utc(), nullable=False),
        sa.Column("removed_at", _utc(), nullable=True),
        sa.Column("removed_by", sa.String(length=128), nullable=True),
        sa.CheckConstraint("subject IN ('token', 'station')", name=op.f("ck_allow_entries_subject_known")),
        sa.CheckConstraint(
            "(removed_at IS NULL) = (removed_by IS NULL)", name=op.f("ck_allow_entries_removal_complete")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_allow_entries")),
    )
    op.create_index(op.f("ix_allow_entries_subject_value"), "allow_entries", ["subject", "value"])

    op.create_table(
        "scan_runs",
        sa.Column("id", _id(), autoincrement=True, nullable=False),
        sa.Column("started_at", _utc(), nullable=False),
        sa.Column("finished_at", _utc(), nullable=True),
        sa.Column("inputs", _json(), nullable=False),
        sa.Column("frames", sa.BigInteger(), nullable=False),
        sa.Column("bad_lines", sa.BigInteger(), nullable=False),
        sa.Column("transactions", sa.BigInteger(), nullable=False),
        sa.Column("alerts", sa.BigInteger(), nullable=False),
        sa.Column("settings_digest", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scan_runs")),
    )
    op.create_index(op.f("ix_scan_runs_started_at"), "scan_runs", ["started_at"])

    op.create_table(
        "meta",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_meta")),
    )


def downgrade() -> None:
    # dropping a table drops its indexes on both databases; children before the alerts they point at
    for table in (
        "meta",
        "scan_runs",
        "allow_entries",
        "stations",
        "transactions",
        "alert_transactions",
        "alert_stations",
        "alerts",
    ):
        op.drop_table(table)
