"""Failure isolation: outbox lanes (one per room) and causes, the intake's dead letters

Revision ID: 0006
Revises: 0011
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0011"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("lane", sa.String(length=300), nullable=True))
        batch.add_column(sa.Column("cause", sa.String(length=128), nullable=True))
    op.create_index("ix_outbox_lane", "outbox", ["state", "lane", "id"])
    op.create_index("ix_outbox_cause", "outbox", ["cause", "state", "id"])
    _backfill_lanes()
    op.create_table(
        "intake_dead_letters",
        sa.Column("event_id", sa.String(length=255), nullable=False),
        sa.Column("room_id", sa.String(length=255), nullable=False),
        sa.Column("error", sa.String(length=120), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("event_id"),
    )


def _backfill_lanes() -> None:
    """Entries still pending get the lane the new code would give them (hub/storage/repositories.py)."""
    bind = op.get_bind()
    rows = bind.execute(sa.text("SELECT id, key, action, case_ref, payload FROM outbox WHERE state = 'pending'"))
    for entry_id, key, action, case_ref, payload in list(rows):
        data: dict[str, Any] = json.loads(payload) if isinstance(payload, str) else dict(payload or {})
        bind.execute(sa.text("UPDATE outbox SET lane = :lane, cause = :cause WHERE id = :id"),
                     {"lane": _lane(action, case_ref, data), "cause": str(key).rsplit(":", 1)[0], "id": entry_id})


def _lane(action: str, case_ref: str | None, payload: dict[str, Any]) -> str:
    # A frozen copy of the rule at this revision (room ids given explicitly keep their own lane).
    if action == "create_desk":
        return "desk:" + str(payload.get("user_id"))
    if payload.get("room_id"):
        return "room:" + str(payload["room_id"])
    if payload.get("desk"):
        return "desk:" + str(payload["desk"])
    return "case:" + (case_ref or "")


def downgrade() -> None:
    op.drop_table("intake_dead_letters")
    op.drop_index("ix_outbox_cause", table_name="outbox")
    op.drop_index("ix_outbox_lane", table_name="outbox")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("cause")
        batch.drop_column("lane")
