"""Alerts: inbound hospital messages, alerts, setting history

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "inbound_messages",
        sa.Column("id", _ID, nullable=False),
        sa.Column("source", sa.String(length=8), nullable=False),
        sa.Column("sender", sa.String(length=255), nullable=False),
        sa.Column("control_id", sa.String(length=255), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("received_at", _TS, nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=True),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("sender", "control_id", "sha256", name="uq_inbound_messages_key"),
    )
    op.create_index("ix_inbound_messages_state", "inbound_messages", ["state", "id"])

    op.create_table(
        "alerts",
        sa.Column("id", _ID, nullable=False),
        sa.Column("message_id", _ID, nullable=False),
        sa.Column("case_ref", sa.String(length=20), nullable=False),
        sa.Column("source", sa.String(length=8), nullable=False),
        sa.Column("sender", sa.String(length=255), nullable=False),
        sa.Column("event", sa.String(length=24), nullable=False),
        sa.Column("trigger", sa.String(length=32), nullable=False),
        sa.Column("event_time", _TS, nullable=False),
        sa.Column("facility", sa.String(length=255), nullable=False),
        sa.Column("unit", sa.String(length=255), nullable=False),
        sa.Column("movement_id", sa.String(length=64), nullable=False),
        sa.Column("notice_key", sa.String(length=128), nullable=True),
        sa.Column("cancelled_by", _ID, nullable=True),
        sa.Column("received_at", _TS, nullable=False),
        sa.ForeignKeyConstraint(["message_id"], ["inbound_messages.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_alerts_message_id", "alerts", ["message_id"])
    op.create_index("ix_alerts_case_ref", "alerts", ["case_ref"])

    op.create_table(
        "setting_changes",
        sa.Column("id", _ID, nullable=False),
        sa.Column("case_ref", sa.String(length=20), nullable=False),
        sa.Column("setting", sa.String(length=32), nullable=False),
        sa.Column("since", _TS, nullable=False),
        sa.Column("hospital_return_on", sa.Date(), nullable=True),
        sa.Column("establishment", sa.String(length=120), nullable=True),
        sa.Column("previous", sa.String(length=32), nullable=False),
        sa.Column("previous_since", _TS, nullable=True),
        sa.Column("previous_return_on", sa.Date(), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.String(length=255), nullable=False),
        sa.Column("alert_id", _ID, nullable=True),
        sa.Column("recorded_at", _TS, nullable=False),
        sa.Column("reverted_at", _TS, nullable=True),
        sa.ForeignKeyConstraint(["alert_id"], ["alerts.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_setting_changes_case_ref", "setting_changes", ["case_ref"])
