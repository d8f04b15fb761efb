"""Models for handovers, continuity breaks and file closure.

A closed file keeps its row in `persons` (closed_at, close_reason): nothing is deleted.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from hub.storage.models import Base

__all__ = ["Base", "BreakRow", "HandoverRow"]

_TS = DateTime(timezone=True)
_ID = BigInteger().with_variant(Integer, "sqlite")


class HandoverRow(Base):
    """A professional leaving with a successor, or a file passing to another case manager."""

    __tablename__ = "handovers"
    __table_args__ = (Index("ix_handovers_open", "acked_at", "reminded_at"),)
    id: Mapped[int] = mapped_column(_ID, primary_key=True)
    case_ref: Mapped[str] = mapped_column(String(20), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # professional | case_manager
    leaver: Mapped[str] = mapped_column(String(255))
    successor: Mapped[str | None] = mapped_column(String(255))
    reason: Mapped[str | None] = mapped_column(Text)
    items: Mapped[list[Any]] = mapped_column(JSON, default=list)  # plan item numbers passed on
    created_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(_TS)
    acked_at: Mapped[datetime | None] = mapped_column(_TS)
    reminded_at: Mapped[datetime | None] = mapped_column(_TS)


class BreakRow(Base):
    """A continuity break: reported by hand, or recorded when a member left. The description is
    free text kept for the file (export); the pilot's report only counts categories."""

    __tablename__ = "continuity_breaks"
    id: Mapped[int] = mapped_column(_ID, primary_key=True)
    case_ref: Mapped[str] = mapped_column(String(20), index=True)
    category: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(16))
    reported_by: Mapped[str] = mapped_column(String(255))
    subject: Mapped[str | None] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(_TS, index=True)
