"""Handovers, continuity breaks, closed files

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "handovers",
        sa.Column("id", _ID, nullable=False),
        sa.Column("case_ref", sa.String(length=20), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("leaver", sa.String(length=255), nullable=False),
        sa.Column("successor", sa.String(length=255), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("items", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(length=255), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("acked_at", _TS, nullable=True),
        sa.Column("reminded_at", _TS, nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_handovers_case_ref", "handovers", ["case_ref"])
    op.create_index("ix_handovers_open", "handovers", ["acked_at", "reminded_at"])
    op.create_table(
        "continuity_breaks",
        sa.Column("id", _ID, nullable=False),
        sa.Column("case_ref", sa.String(length=20), nullable=False),
        sa.Column("category", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("reported_by", sa.String(length=255), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_continuity_breaks_case_ref", "continuity_breaks", ["case_ref"])
    op.create_index("ix_continuity_breaks_at", "continuity_breaks", ["at"])


def downgrade() -> None:
    op.drop_table("continuity_breaks")
    op.drop_table("handovers")
