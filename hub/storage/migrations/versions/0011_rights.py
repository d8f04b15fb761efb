"""AGGIR grids on evaluations and the APA rights reviews

Revision ID: 0011
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0007"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("evaluations") as batch:
        batch.add_column(sa.Column("grid", sa.String(length=10), nullable=True))
    op.create_table(
        "rights_reviews",
        sa.Column("id", _ID, nullable=False),
        sa.Column("case_ref", sa.String(length=20), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("old_gir", sa.SmallInteger(), nullable=True),
        sa.Column("new_gir", sa.SmallInteger(), nullable=False),
        sa.Column("evaluated_on", sa.Date(), nullable=False),
        sa.Column("opened_at", _TS, nullable=False),
        sa.Column("opened_by", sa.String(length=255), nullable=False),
        sa.Column("closed_at", _TS, nullable=True),
        sa.Column("closed_by", sa.String(length=255), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("case_ref", "number", name="uq_rights_reviews_number"),
    )
    op.create_index("ix_rights_reviews_open", "rights_reviews", ["closed_at", "opened_at"])


def downgrade() -> None:
    op.drop_index("ix_rights_reviews_open", table_name="rights_reviews")
    op.drop_table("rights_reviews")
    with op.batch_alter_table("evaluations") as batch:
        batch.drop_column("grid")
