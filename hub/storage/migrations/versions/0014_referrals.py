"""Referrals to the integrated access point and the referrers' direct rooms

Revision ID: 0014
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0006"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "referrals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ref", sa.String(length=20), nullable=False),
        sa.Column("source", sa.String(length=8), nullable=False),
        sa.Column("source_key", sa.String(length=255), nullable=False),
        sa.Column("received_at", _TS, nullable=False),
        sa.Column("referrer", sa.String(length=255), nullable=False),
        sa.Column("referrer_room", sa.String(length=255), nullable=True),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("born", sa.Date(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("identifiers", sa.JSON(), nullable=False),
        sa.Column("gp", sa.String(length=255), nullable=True),
        sa.Column("autonomy", sa.Boolean(), nullable=True),
        sa.Column("care", sa.Boolean(), nullable=True),
        sa.Column("coordination", sa.Boolean(), nullable=True),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("duplicate_of", sa.String(length=20), nullable=True),
        sa.Column("decided_at", _TS, nullable=True),
        sa.Column("decided_by", sa.String(length=255), nullable=True),
        sa.Column("case_ref", sa.String(length=20), nullable=True),
        sa.Column("refusal", sa.Text(), nullable=True),
        sa.Column("refer_to", sa.String(length=255), nullable=True),
        sa.Column("reminded_on", sa.Date(), nullable=True),
        sa.Column("erased_at", _TS, nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("ref"),
        sa.UniqueConstraint("source_key"),
    )
    op.create_index("ix_referrals_status", "referrals", ["status", "received_at"])
    op.create_index("ix_referrals_case_ref", "referrals", ["case_ref"])
    op.create_table(
        "referrer_rooms",
        sa.Column("room_id", sa.String(length=255), nullable=False),
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.PrimaryKeyConstraint("room_id"),
    )
    op.create_index("ix_referrer_rooms_user_id", "referrer_rooms", ["user_id"])


def downgrade() -> None:
    op.drop_table("referrer_rooms")
    op.drop_index("ix_referrals_case_ref", table_name="referrals")
    op.drop_index("ix_referrals_status", table_name="referrals")
    op.drop_table("referrals")
