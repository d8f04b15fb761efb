"""SQLAlchemy models. Never imported outside hub/storage: repositories speak domain objects."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


_TS = DateTime(timezone=True)


class PersonRow(Base):
    __tablename__ = "persons"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_ref: Mapped[str] = mapped_column(String(20), unique=True)
    # The name is kept because the team needs it in encrypted messages; it never leaves the
    # database except inside an encrypted Matrix event or an export for the person's access right.
    display_name: Mapped[str] = mapped_column(String(120))
    birth_date: Mapped[date | None] = mapped_column(Date)
    referent: Mapped[str] = mapped_column(String(255), index=True)
    room_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    opened_at: Mapped[datetime] = mapped_column(_TS)
    closed_at: Mapped[datetime | None] = mapped_column(_TS)
    close_reason: Mapped[str | None] = mapped_column(String(32))
    setting: Mapped[str] = mapped_column(String(32), default="home")
    setting_since: Mapped[datetime | None] = mapped_column(_TS)
    # Set by a return home from hospital: makes a re-evaluation due within 7 days.
    hospital_return_on: Mapped[date | None] = mapped_column(Date)


class IdentifierRow(Base):
    __tablename__ = "person_identifiers"
    __table_args__ = (UniqueConstraint("authority", "value"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"), index=True)
    authority: Mapped[str] = mapped_column(String(255))  # a URL (FHIR Identifier.system) fits
    value: Mapped[str] = mapped_column(String(64))


class DeskRow(Base):
    """A case manager's or pilot's direct room with the bot."""

    __tablename__ = "desks"
    user_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))  # case_manager | pilot
    room_id: Mapped[str | None] = mapped_column(String(255), unique=True)


class MemberRow(Base):
    __tablename__ = "team_members"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"), index=True)
    user_id: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(32))
    organisation: Mapped[str | None] = mapped_column(String(120))
    since: Mapped[datetime] = mapped_column(_TS)
    until: Mapped[datetime | None] = mapped_column(_TS)
    end_reason: Mapped[str | None] = mapped_column(String(255))


class AuditRow(Base):
    """Who did what, when. `detail` holds identifiers of actors and items, never names."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[datetime] = mapped_column(_TS)
    actor: Mapped[str] = mapped_column(String(255))
    case_ref: Mapped[str | None] = mapped_column(String(20), index=True)
    action: Mapped[str] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class ProcessedEventRow(Base):
    """Matrix events already handled, so a replayed sync never answers a command twice."""

    __tablename__ = "processed_events"
    event_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    at: Mapped[datetime] = mapped_column(_TS)


class OutboxRow(Base):
    """Everything the bot must do on Matrix, committed with the state change that caused it."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_pending", "state", "id"), Index("ix_outbox_lane", "state", "lane", "id"),
                      Index("ix_outbox_cause", "cause", "state", "id"))
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    key: Mapped[str] = mapped_column(String(128), unique=True)
    created_at: Mapped[datetime] = mapped_column(_TS)
    case_ref: Mapped[str | None] = mapped_column(String(20))
    action: Mapped[str] = mapped_column(String(16))  # create_room | create_desk | invite | kick | notify
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(8), default="pending")  # pending | done | failed
    # Entries of one lane (one room: "case:<ref>", "desk:<user>", "room:<id>") are done in order;
    # lanes proceed independently of each other.
    lane: Mapped[str | None] = mapped_column(String(300))
    # What enqueued it (its key without the index): one cause's entries keep their order across lanes.
    cause: Mapped[str | None] = mapped_column(String(128))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    not_before: Mapped[datetime | None] = mapped_column(_TS)  # next try after a transient failure (wall clock)
    event_id: Mapped[str | None] = mapped_column(String(255))
    error: Mapped[str | None] = mapped_column(Text)


class IntakeDeadLetterRow(Base):
    """An incoming Matrix event whose handling kept failing: set aside so the sync moves on.
    Only where and what went wrong (an exception class name), never the event's content."""

    __tablename__ = "intake_dead_letters"
    event_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    room_id: Mapped[str] = mapped_column(String(255))
    error: Mapped[str] = mapped_column(String(120))
    attempts: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(_TS)


class KeyValueRow(Base):
    """Small durable values: the sync token, case reference counters."""

    __tablename__ = "kv"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
