"""Models for the person's rights: the APA reviews a GIR opens (SPEC §10).

The AGGIR grid itself is a column of `evaluations` (models_plan.EvaluationRow.grid).
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Date, DateTime, Index, Integer, SmallInteger, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from hub.storage.models import Base

__all__ = ["Base", "RightsReviewRow"]

_TS = DateTime(timezone=True)
_ID = BigInteger().with_variant(Integer, "sqlite")


class RightsReviewRow(Base):
    """One review, numbered per file; closing it sets `closed_at` and `closed_by`."""

    __tablename__ = "rights_reviews"
    __table_args__ = (
        UniqueConstraint("case_ref", "number", name="uq_rights_reviews_number"),
        # The weekly reminder reads the open ones by age.
        Index("ix_rights_reviews_open", "closed_at", "opened_at"),
    )
    id: Mapped[int] = mapped_column(_ID, primary_key=True)
    case_ref: Mapped[str] = mapped_column(String(20))
    number: Mapped[int] = mapped_column(Integer)
    old_gir: Mapped[int | None] = mapped_column(SmallInteger)
    new_gir: Mapped[int] = mapped_column(SmallInteger)
    evaluated_on: Mapped[date] = mapped_column(Date)
    opened_at: Mapped[datetime] = mapped_column(_TS)
    opened_by: Mapped[str] = mapped_column(String(255))
    closed_at: Mapped[datetime | None] = mapped_column(_TS)
    closed_by: Mapped[str | None] = mapped_column(String(255))
