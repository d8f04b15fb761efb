"""Repositories for handovers, continuity breaks and the file's lifecycle (referent, closure)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from hub.domain.continuity import Break, Category, Source
from hub.domain.handover import Handover, HandoverKind
from hub.storage.models import PersonRow
from hub.storage.models_handover import BreakRow, HandoverRow
from hub.storage.repositories import _aware

__all__ = ["HandoverRepo", "ReminderRecord"]


def _handover(row: HandoverRow) -> Handover:
    return Handover(
        id=row.id, case_ref=row.case_ref, kind=HandoverKind(row.kind), leaver=row.leaver, successor=row.successor,
        reason=row.reason, items=tuple(int(n) for n in row.items or ()), created_by=row.created_by,
        created_at=_aware(row.created_at) or row.created_at, acked_at=_aware(row.acked_at),
        reminded_at=_aware(row.reminded_at),
    )


def _break(row: BreakRow) -> Break:
    return Break(id=row.id, case_ref=row.case_ref, category=Category(row.category), source=Source(row.source),
                 reported_by=row.reported_by, at=_aware(row.at) or row.at, description=row.description,
                 subject=row.subject)


@dataclass(frozen=True)
class ReminderRecord:
    handover: Handover
    referent: str


class HandoverRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.s = session

    # --- handovers ---------------------------------------------------------------------------

    async def add(self, handover: Handover) -> int:
        row = HandoverRow(
            case_ref=handover.case_ref, kind=handover.kind.value, leaver=handover.leaver,
            successor=handover.successor, reason=handover.reason, items=list(handover.items),
            created_by=handover.created_by, created_at=handover.created_at,
        )
        self.s.add(row)
        await self.s.flush()
        return row.id

    async def of_case(self, case_ref: str) -> list[Handover]:
        result = await self.s.execute(
            select(HandoverRow).where(HandoverRow.case_ref == case_ref).order_by(HandoverRow.id))
        return [_handover(r) for r in result.scalars()]

    async def acknowledge(self, handover_id: int, at: datetime) -> None:
        await self.s.execute(update(HandoverRow).where(HandoverRow.id == handover_id).values(acked_at=at))

    async def reminder_candidates(self, created_before: datetime) -> list[ReminderRecord]:
        """Open handovers of open files made before the given time, not reminded yet."""
        result = await self.s.execute(
            select(HandoverRow, PersonRow.referent).join(PersonRow, PersonRow.case_ref == HandoverRow.case_ref)
            .where(HandoverRow.acked_at.is_(None), HandoverRow.reminded_at.is_(None),
                   HandoverRow.successor.is_not(None), HandoverRow.created_at <= created_before,
                   PersonRow.closed_at.is_(None))
            .order_by(HandoverRow.id).with_for_update(of=HandoverRow)
        )
        return [ReminderRecord(_handover(row), referent) for row, referent in result.all()]

    async def mark_reminded(self, handover_id: int, at: datetime) -> None:
        await self.s.execute(update(HandoverRow).where(HandoverRow.id == handover_id).values(reminded_at=at))

    # --- continuity breaks ---------------------------------------------------------------------

    async def add_break(self, record: Break) -> None:
        self.s.add(BreakRow(
            case_ref=record.case_ref, category=record.category.value, source=record.source.value,
            reported_by=record.reported_by, subject=record.subject, description=record.description, at=record.at,
        ))
        await self.s.flush()

    async def breaks(self, case_ref: str) -> list[Break]:
        result = await self.s.execute(select(BreakRow).where(BreakRow.case_ref == case_ref).order_by(BreakRow.id))
        return [_break(r) for r in result.scalars()]

    # --- the file's lifecycle ----------------------------------------------------------------

    async def transfers_in_since(self, user: str, since: datetime) -> int:
        """Files received by transfer since a date: they count in the monthly intake."""
        result = await self.s.execute(
            select(HandoverRow.id).where(HandoverRow.kind == HandoverKind.CASE_MANAGER.value,
                                         HandoverRow.successor == user, HandoverRow.created_at >= since))
        return len(result.all())
