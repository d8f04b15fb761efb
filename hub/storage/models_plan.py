"""Models for the care plan (PSI), evaluations and the re-evaluation prompts."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from hub.storage.models import Base, PersonRow

__all__ = ["Base", "EvaluationDueRow", "EvaluationRow", "PlanItemRow", "SentPromptRow"]

_TS = DateTime(timezone=True)
_ID = BigInteger().with_variant(Integer, "sqlite")


class PlanItemRow(Base):
    """One version of a plan item. Versions are never updated, except `is_current`, which marks
    the latest one so the plan and the review sweep read one row per item."""

    __tablename__ = "plan_items"
    __table_args__ = (
        UniqueConstraint("person_id", "number", "version", name="uq_plan_items_version"),
        Index("ix_plan_items_person", "person_id", "is_current"),
        Index("ix_plan_items_review", "is_current", "review_on"),
    )
    id: Mapped[int] = mapped_column(_ID, primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"))
    number: Mapped[int] = mapped_column(Integer)
    version: Mapped[int] = mapped_column(Integer)
    is_current: Mapped[bool] = mapped_column(Boolean)
    need: Mapped[str] = mapped_column(Text)
    action: Mapped[str] = mapped_column(Text)
    provider_user: Mapped[str | None] = mapped_column(String(255))
    provider_org: Mapped[str | None] = mapped_column(String(255))
    frequency: Mapped[str | None] = mapped_column(Text)
    start_on: Mapped[date | None] = mapped_column(Date)
    review_on: Mapped[date | None] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16))
    closed: Mapped[bool] = mapped_column(Boolean)
    changed_by: Mapped[str] = mapped_column(String(255))
    changed_at: Mapped[datetime] = mapped_column(_TS)


class EvaluationRow(Base):
    __tablename__ = "evaluations"
    id: Mapped[int] = mapped_column(_ID, primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"), index=True)
    done_on: Mapped[date] = mapped_column(Date)
    tool: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(16))
    gir: Mapped[int | None] = mapped_column(SmallInteger)
    evaluator: Mapped[str] = mapped_column(String(255))
    grid: Mapped[str | None] = mapped_column(String(10))  # AGGIR's ten letters, when entered
    recorded_at: Mapped[datetime] = mapped_column(_TS)


class EvaluationDueRow(Base):
    """Per person, the due date from evaluations alone: the opening day with none yet, else the
    latest one + the interval. A hospital return (persons.hospital_return_on, written by the
    alerts feature) can only bring it forward, and is applied when read, so it is never stale.
    The sweep selects by `next_due` through its index instead of computing every person's."""

    __tablename__ = "evaluation_due"
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"), primary_key=True)
    next_due: Mapped[date] = mapped_column(Date, index=True)
    last_done_on: Mapped[date | None] = mapped_column(Date)
    interval_days: Mapped[int] = mapped_column(Integer)


class SentPromptRow(Base):
    """A prompt sent (enqueued) for one occasion: never again for the same (case, occasion)."""

    __tablename__ = "sent_prompts"
    __table_args__ = (UniqueConstraint("case_ref", "occasion", name="uq_sent_prompts_occasion"),)
    id: Mapped[int] = mapped_column(_ID, primary_key=True)
    case_ref: Mapped[str] = mapped_column(String(20))
    occasion: Mapped[str] = mapped_column(String(64))
    sent_at: Mapped[datetime] = mapped_column(_TS)


# The sweep also selects persons back from hospital; few have a return date, so this index
# keeps that half of the query as cheap as the `next_due` one.
Index("ix_persons_hospital_return_on", PersonRow.hospital_return_on)
