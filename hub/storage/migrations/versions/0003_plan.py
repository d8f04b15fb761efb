"""Care plan items (versioned), evaluations, due dates, sent prompts

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TS = sa.DateTime(timezone=True)
_DEFAULT_INTERVAL = 182


def upgrade() -> None:
    op.create_table(
        "plan_items",
        sa.Column("id", _ID, nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("is_current", sa.Boolean(), nullable=False),
        sa.Column("need", sa.Text(), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("provider_user", sa.String(length=255), nullable=True),
        sa.Column("provider_org", sa.String(length=255), nullable=True),
        sa.Column("frequency", sa.Text(), nullable=True),
        sa.Column("start_on", sa.Date(), nullable=True),
        sa.Column("review_on", sa.Date(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("closed", sa.Boolean(), nullable=False),
        sa.Column("changed_by", sa.String(length=255), nullable=False),
        sa.Column("changed_at", _TS, nullable=False),
        sa.ForeignKeyConstraint(["person_id"], ["persons.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("person_id", "number", "version", name="uq_plan_items_version"),
    )
    op.create_index("ix_plan_items_person", "plan_items", ["person_id", "is_current"])
    op.create_index("ix_plan_items_review", "plan_items", ["is_current", "review_on"])

    op.create_table(
        "evaluations",
        sa.Column("id", _ID, nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("done_on", sa.Date(), nullable=False),
        sa.Column("tool", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=16), nullable=False),
        sa.Column("gir", sa.SmallInteger(), nullable=True),
        sa.Column("evaluator", sa.String(length=255), nullable=False),
        sa.Column("recorded_at", _TS, nullable=False),
        sa.ForeignKeyConstraint(["person_id"], ["persons.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_evaluations_person_id", "evaluations", ["person_id"])

    due = op.create_table(
        "evaluation_due",
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("next_due", sa.Date(), nullable=False),
        sa.Column("last_done_on", sa.Date(), nullable=True),
        sa.Column("interval_days", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["person_id"], ["persons.id"]),
        sa.PrimaryKeyConstraint("person_id"),
    )
    op.create_index("ix_evaluation_due_next_due", "evaluation_due", ["next_due"])

    op.create_table(
        "sent_prompts",
        sa.Column("id", _ID, nullable=False),
        sa.Column("case_ref", sa.String(length=20), nullable=False),
        sa.Column("occasion", sa.String(length=64), nullable=False),
        sa.Column("sent_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("case_ref", "occasion", name="uq_sent_prompts_occasion"),
    )
    op.create_index("ix_persons_hospital_return_on", "persons", ["hospital_return_on"])

    # Files opened before this revision have had no evaluation recorded: due from their opening.
    persons = sa.table("persons", sa.column("id", sa.Integer()), sa.column("opened_at", _TS))
    rows = op.get_bind().execute(sa.select(persons.c.id, persons.c.opened_at)).all()
    if rows:
        op.bulk_insert(due, [
            {"person_id": pid, "next_due": _day(opened), "last_done_on": None, "interval_days": _DEFAULT_INTERVAL}
            for pid, opened in rows
        ])


def _day(value: datetime | str) -> date:
    if isinstance(value, str):  # SQLite without type information
        value = datetime.fromisoformat(value)
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.date()
