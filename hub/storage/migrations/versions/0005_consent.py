"""Consent records and concertations

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "consent_records",
        sa.Column("id", _ID, nullable=False),
        sa.Column("case_ref", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("on_date", sa.Date(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("recorded_by", sa.String(length=255), nullable=False),
        sa.Column("recorded_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_consent_records_case_ref", "consent_records", ["case_ref"])
    op.create_table(
        "consent_reminders",
        sa.Column("case_ref", sa.String(length=20), nullable=False),
        sa.Column("reminded_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("case_ref"),
    )
    op.create_table(
        "concertations",
        sa.Column("id", _ID, nullable=False),
        sa.Column("case_ref", sa.String(length=20), nullable=False),
        sa.Column("uid", sa.String(length=255), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("organiser", sa.String(length=255), nullable=False),
        sa.Column("participants", sa.JSON(), nullable=False),
        sa.Column("starts_at", _TS, nullable=False),
        sa.Column("minutes", sa.Integer(), nullable=False),
        sa.Column("place", sa.Text(), nullable=True),
        sa.Column("visio", sa.Text(), nullable=True),
        sa.Column("scheduled_at", _TS, nullable=False),
        sa.Column("reminded_day_at", _TS, nullable=True),
        sa.Column("reminded_hour_at", _TS, nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("changed_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("uid"),
    )
    op.create_index("ix_concertations_case_ref", "concertations", ["case_ref"])
    op.create_index("ix_concertations_due", "concertations", ["state", "starts_at"])
    op.create_table(
        "concertation_decisions",
        sa.Column("id", _ID, nullable=False),
        sa.Column("concertation_id", _ID, nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("plan_item", sa.Integer(), nullable=True),
        sa.Column("decided_by", sa.String(length=255), nullable=False),
        sa.Column("decided_at", _TS, nullable=False),
        sa.ForeignKeyConstraint(["concertation_id"], ["concertations.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_concertation_decisions_concertation_id", "concertation_decisions", ["concertation_id"])


def downgrade() -> None:
    op.drop_table("concertation_decisions")
    op.drop_table("concertations")
    op.drop_table("consent_reminders")
    op.drop_table("consent_records")
