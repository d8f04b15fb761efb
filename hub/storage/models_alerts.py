"""Models for hospital messages and alerts."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from hub.storage.models import Base

__all__ = ["AlertRow", "Base", "InboundMessageRow", "SettingChangeRow"]

_TS = DateTime(timezone=True)
_ID = BigInteger().with_variant(Integer, "sqlite")


class InboundMessageRow(Base):
    """A hospital message, committed before it is acknowledged.

    The key (sender, control id, content hash) makes a resend a no-op. A message for nobody
    followed loses its content once matched against the files; its key stays, state
    `unmatched`, for UNMATCHED_KEY_DAYS (services/alerts.py), so that a resend is known as one.
    """

    __tablename__ = "inbound_messages"
    __table_args__ = (
        UniqueConstraint("sender", "control_id", "sha256", name="uq_inbound_messages_key"),
        Index("ix_inbound_messages_state", "state", "id"),
    )
    id: Mapped[int] = mapped_column(_ID, primary_key=True)
    source: Mapped[str] = mapped_column(String(8))  # hl7 | fhir
    sender: Mapped[str] = mapped_column(String(255))
    control_id: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(_TS)
    raw: Mapped[bytes | None] = mapped_column(LargeBinary)
    state: Mapped[str] = mapped_column(String(10), default="received")  # received | processed | unmatched


class AlertRow(Base):
    """A hospital event about a followed person; no name, no clinical text."""

    __tablename__ = "alerts"
    id: Mapped[int] = mapped_column(_ID, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("inbound_messages.id"), index=True)
    case_ref: Mapped[str] = mapped_column(String(20), index=True)
    source: Mapped[str] = mapped_column(String(8))
    sender: Mapped[str] = mapped_column(String(255))
    event: Mapped[str] = mapped_column(String(24))
    trigger: Mapped[str] = mapped_column(String(32))
    event_time: Mapped[datetime] = mapped_column(_TS)
    facility: Mapped[str] = mapped_column(String(255), default="")
    unit: Mapped[str] = mapped_column(String(255), default="")
    movement_id: Mapped[str] = mapped_column(String(64), default="")
    notice_key: Mapped[str | None] = mapped_column(String(128))
    cancelled_by: Mapped[int | None] = mapped_column(_ID)
    received_at: Mapped[datetime] = mapped_column(_TS)


class SettingChangeRow(Base):
    """The setting history: every move, from a hospital event or by hand, and what it replaced."""

    __tablename__ = "setting_changes"
    id: Mapped[int] = mapped_column(_ID, primary_key=True)
    case_ref: Mapped[str] = mapped_column(String(20), index=True)
    setting: Mapped[str] = mapped_column(String(32))
    since: Mapped[datetime] = mapped_column(_TS)
    hospital_return_on: Mapped[date | None] = mapped_column(Date)
    establishment: Mapped[str | None] = mapped_column(String(120))
    previous: Mapped[str] = mapped_column(String(32))
    previous_since: Mapped[datetime | None] = mapped_column(_TS)
    previous_return_on: Mapped[date | None] = mapped_column(Date)
    source: Mapped[str] = mapped_column(String(16))  # hospital | command
    actor: Mapped[str] = mapped_column(String(255))  # a Matrix id, or the hospital sender
    alert_id: Mapped[int | None] = mapped_column(ForeignKey("alerts.id"))
    recorded_at: Mapped[datetime] = mapped_column(_TS)
    reverted_at: Mapped[datetime | None] = mapped_column(_TS)
