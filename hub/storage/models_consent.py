"""Models for the person's consent and the clinical concertations."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Date, DateTime, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from hub.storage.models import Base

__all__ = ["Base", "ConcertationRow", "ConsentRecordRow", "ConsentReminderRow", "DecisionRow"]

_TS = DateTime(timezone=True)
_ID = BigInteger().with_variant(Integer, "sqlite")


class ConsentRecordRow(Base):
    """One record of information, consent or refusal; never updated (the history is the file's).
    The note is optional free text the case manager chose to keep; it never reaches a log."""

    __tablename__ = "consent_records"
    id: Mapped[int] = mapped_column(_ID, primary_key=True)
    case_ref: Mapped[str] = mapped_column(String(20), index=True)
    status: Mapped[str] = mapped_column(String(16))  # informed | given | refused
    scope: Mapped[str] = mapped_column(String(16))  # care_team | extended
    on_date: Mapped[date] = mapped_column(Date)
    note: Mapped[str | None] = mapped_column(Text)
    recorded_by: Mapped[str] = mapped_column(String(255))
    recorded_at: Mapped[datetime] = mapped_column(_TS)


class ConsentReminderRow(Base):
    """When the case manager was last reminded that the person is not recorded as informed."""

    __tablename__ = "consent_reminders"
    case_ref: Mapped[str] = mapped_column(String(20), primary_key=True)
    reminded_at: Mapped[datetime] = mapped_column(_TS)


class ConcertationRow(Base):
    __tablename__ = "concertations"
    __table_args__ = (Index("ix_concertations_due", "state", "starts_at"),)
    id: Mapped[int] = mapped_column(_ID, primary_key=True)
    case_ref: Mapped[str] = mapped_column(String(20), index=True)
    uid: Mapped[str] = mapped_column(String(255), unique=True)
    sequence: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16))  # planned | cancelled | held
    organiser: Mapped[str] = mapped_column(String(255))
    participants: Mapped[list[Any]] = mapped_column(JSON)
    starts_at: Mapped[datetime] = mapped_column(_TS)
    minutes: Mapped[int] = mapped_column(Integer)
    place: Mapped[str | None] = mapped_column(Text)
    visio: Mapped[str | None] = mapped_column(Text)
    scheduled_at: Mapped[datetime] = mapped_column(_TS)
    reminded_day_at: Mapped[datetime | None] = mapped_column(_TS)
    reminded_hour_at: Mapped[datetime | None] = mapped_column(_TS)
    created_at: Mapped[datetime] = mapped_column(_TS)
    changed_at: Mapped[datetime] = mapped_column(_TS)


class DecisionRow(Base):
    __tablename__ = "concertation_decisions"
    id: Mapped[int] = mapped_column(_ID, primary_key=True)
    concertation_id: Mapped[int] = mapped_column(_ID, ForeignKey("concertations.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    plan_item: Mapped[int | None] = mapped_column(Integer)
    decided_by: Mapped[str] = mapped_column(String(255))
    decided_at: Mapped[datetime] = mapped_column(_TS)
