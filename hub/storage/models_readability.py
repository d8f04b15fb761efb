"""Members who could not read a room, kept until they can (then they get a catch-up)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, String
from sqlalchemy.orm import Mapped, mapped_column

from hub.storage.models import Base

__all__ = ["Base", "UnreadableRow"]

_TS = DateTime(timezone=True)


class UnreadableRow(Base):
    """`scope` is a room id, or "desk" for a desk whose welcome waits for its owner's first
    readable device. Only Matrix ids and times: nothing about the person followed."""

    __tablename__ = "unreadable_members"
    scope: Mapped[str] = mapped_column(String(255), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    since: Mapped[datetime] = mapped_column(_TS)
    readable_at: Mapped[datetime | None] = mapped_column(_TS)
