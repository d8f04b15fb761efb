"""Members who could not read a room, until they can (catch-up when they get a readable device)

Revision ID: 0012
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0005"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "unreadable_members",
        sa.Column("scope", sa.String(length=255), nullable=False),
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("since", _TS, nullable=False),
        sa.Column("readable_at", _TS, nullable=True),
        sa.PrimaryKeyConstraint("scope", "user_id"),
    )
