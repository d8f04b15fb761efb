"""Referral rows (SPEC §9). Imported only by hub/storage."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Date, DateTime, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from hub.storage.models import Base

_TS = DateTime(timezone=True)


class ReferralRow(Base):
    """One referral. Personal fields (name, born, reason, identifiers, gp, referrer, refusal,
    refer_to) are blanked when a refused referral is erased; the rest is kept for the counts."""

    __tablename__ = "referrals"
    __table_args__ = (Index("ix_referrals_status", "status", "received_at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ref: Mapped[str] = mapped_column(String(20), unique=True)
    source: Mapped[str] = mapped_column(String(8))  # matrix | fhir
    # What made it (the Matrix event id or the FHIR request's identifier/digest): a retry after a
    # crash finds the referral instead of making a second one.
    source_key: Mapped[str] = mapped_column(String(255), unique=True)
    received_at: Mapped[datetime] = mapped_column(_TS)
    referrer: Mapped[str] = mapped_column(String(255))
    referrer_room: Mapped[str | None] = mapped_column(String(255))
    name: Mapped[str] = mapped_column(String(120))
    born: Mapped[date | None] = mapped_column(Date)
    reason: Mapped[str] = mapped_column(Text)
    identifiers: Mapped[list[Any]] = mapped_column(JSON, default=list)
    gp: Mapped[str | None] = mapped_column(String(255))
    autonomy: Mapped[bool | None] = mapped_column(Boolean)
    care: Mapped[bool | None] = mapped_column(Boolean)
    coordination: Mapped[bool | None] = mapped_column(Boolean)
    status: Mapped[str] = mapped_column(String(8), default="pending")
    duplicate_of: Mapped[str | None] = mapped_column(String(20))
    decided_at: Mapped[datetime | None] = mapped_column(_TS)
    decided_by: Mapped[str | None] = mapped_column(String(255))
    case_ref: Mapped[str | None] = mapped_column(String(20), index=True)
    refusal: Mapped[str | None] = mapped_column(Text)
    refer_to: Mapped[str | None] = mapped_column(String(255))
    reminded_on: Mapped[date | None] = mapped_column(Date)
    erased_at: Mapped[datetime | None] = mapped_column(_TS)


class ReferrerRoomRow(Base):
    """A direct encrypted room a referrer (configured or not) opened with the bot."""

    __tablename__ = "referrer_rooms"
    room_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(255), index=True)
