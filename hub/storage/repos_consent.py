"""Repositories for the person's consent records and the clinical concertations."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from hub.domain.concertation import Concertation, Decision, State
from hub.domain.consent import Record, Scope, Status
from hub.storage.models import PersonRow
from hub.storage.models_consent import ConcertationRow, ConsentRecordRow, ConsentReminderRow, DecisionRow
from hub.storage.repositories import _aware

__all__ = ["ConcertationRepo", "ConsentRepo", "UninformedFile"]


def _ts(value: datetime) -> datetime:
    aware = _aware(value)
    assert aware is not None
    return aware


@dataclass(frozen=True)
class UninformedFile:
    """An open file whose person is not recorded as informed, with its last reminder."""

    case_ref: str
    referent: str
    opened_at: datetime
    reminded_at: datetime | None


class ConsentRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.s = session

    async def history(self, case_ref: str) -> list[Record]:
        result = await self.s.execute(
            select(ConsentRecordRow).where(ConsentRecordRow.case_ref == case_ref).order_by(ConsentRecordRow.id))
        return [Record(Status(r.status), Scope(r.scope), r.on_date, r.recorded_by, _ts(r.recorded_at), r.note)
                for r in result.scalars()]

    async def add(self, case_ref: str, entry: Record) -> None:
        self.s.add(ConsentRecordRow(case_ref=case_ref, status=entry.status.value, scope=entry.scope.value,
                                    on_date=entry.on, note=entry.note, recorded_by=entry.by,
                                    recorded_at=entry.at))
        await self.s.flush()

    async def uninformed(self, opened_before: datetime) -> list[UninformedFile]:
        """Open files opened before `opened_before` without any consent record."""
        recorded = select(ConsentRecordRow.case_ref)
        result = await self.s.execute(
            select(PersonRow.case_ref, PersonRow.referent, PersonRow.opened_at, ConsentReminderRow.reminded_at)
            .outerjoin(ConsentReminderRow, ConsentReminderRow.case_ref == PersonRow.case_ref)
            .where(PersonRow.closed_at.is_(None), PersonRow.room_id.is_not(None),
                   PersonRow.opened_at < opened_before, PersonRow.case_ref.not_in(recorded))
            .order_by(PersonRow.id))
        return [UninformedFile(ref, referent, _ts(opened), _aware(reminded))
                for ref, referent, opened, reminded in result.all()]

    async def set_reminded(self, case_ref: str, at: datetime) -> None:
        row = await self.s.get(ConsentReminderRow, case_ref)
        if row is None:
            self.s.add(ConsentReminderRow(case_ref=case_ref, reminded_at=at))
        else:
            row.reminded_at = at
        await self.s.flush()

    async def open_files(self) -> list[tuple[str, list[Record]]]:
        """Every open file with its consent history (the report counts them)."""
        persons = await self.s.execute(
            select(PersonRow.case_ref).where(PersonRow.closed_at.is_(None)).order_by(PersonRow.id))
        refs = list(persons.scalars())
        records = await self.s.execute(
            select(ConsentRecordRow).join(PersonRow, PersonRow.case_ref == ConsentRecordRow.case_ref)
            .where(PersonRow.closed_at.is_(None)).order_by(ConsentRecordRow.id))
        by_ref: dict[str, list[Record]] = {ref: [] for ref in refs}
        for r in records.scalars():
            by_ref.setdefault(r.case_ref, []).append(
                Record(Status(r.status), Scope(r.scope), r.on_date, r.recorded_by, _ts(r.recorded_at), r.note))
        return list(by_ref.items())


def _concertation(row: ConcertationRow) -> Concertation:
    return Concertation(
        case_ref=row.case_ref, uid=row.uid, organiser=row.organiser, participants=tuple(row.participants),
        starts_at=_ts(row.starts_at), minutes=row.minutes, place=row.place, visio=row.visio,
        scheduled_at=_ts(row.scheduled_at), sequence=row.sequence, state=State(row.state),
        reminded_day_at=_aware(row.reminded_day_at), reminded_hour_at=_aware(row.reminded_hour_at), id=row.id,
    )


class ConcertationRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.s = session

    async def pending(self, case_ref: str) -> Concertation | None:
        """The file's planned concertation not yet held (at most one)."""
        result = await self.s.execute(
            select(ConcertationRow).where(ConcertationRow.case_ref == case_ref,
                                          ConcertationRow.state == State.PLANNED.value)
            .order_by(ConcertationRow.id.desc()).limit(1))
        row = result.scalar_one_or_none()
        return None if row is None else _concertation(row)

    async def get(self, concertation_id: int) -> Concertation | None:
        row = await self.s.get(ConcertationRow, concertation_id)
        return None if row is None else _concertation(row)

    async def add(self, c: Concertation, now: datetime) -> Concertation:
        row = ConcertationRow(
            case_ref=c.case_ref, uid=c.uid, sequence=c.sequence, state=c.state.value, organiser=c.organiser,
            participants=list(c.participants), starts_at=c.starts_at, minutes=c.minutes, place=c.place,
            visio=c.visio, scheduled_at=c.scheduled_at, created_at=now, changed_at=now)
        self.s.add(row)
        await self.s.flush()
        return _concertation(row)

    async def save(self, c: Concertation, now: datetime) -> None:
        assert c.id is not None
        await self.s.execute(update(ConcertationRow).where(ConcertationRow.id == c.id).values(
            sequence=c.sequence, state=c.state.value, organiser=c.organiser, participants=list(c.participants),
            starts_at=c.starts_at, scheduled_at=c.scheduled_at,
            reminded_day_at=c.reminded_day_at, reminded_hour_at=c.reminded_hour_at, changed_at=now))

    async def due(self, horizon: datetime) -> list[int]:
        """Planned concertations starting before `horizon` (reminders, minutes), oldest first."""
        result = await self.s.execute(
            select(ConcertationRow.id).where(ConcertationRow.state == State.PLANNED.value,
                                             ConcertationRow.starts_at < horizon)
            .order_by(ConcertationRow.starts_at))
        return [int(i) for i in result.scalars()]

    async def lock(self, concertation_id: int) -> Concertation | None:
        result = await self.s.execute(
            select(ConcertationRow).where(ConcertationRow.id == concertation_id).with_for_update())
        row = result.scalar_one_or_none()
        return None if row is None else _concertation(row)

    async def decisions(self, concertation_id: int) -> list[Decision]:
        result = await self.s.execute(
            select(DecisionRow).where(DecisionRow.concertation_id == concertation_id).order_by(DecisionRow.number))
        return [Decision(r.number, r.text, r.plan_item, r.decided_by, _ts(r.decided_at)) for r in result.scalars()]

    async def add_decision(self, concertation_id: int, d: Decision) -> None:
        self.s.add(DecisionRow(concertation_id=concertation_id, number=d.number, text=d.text, plan_item=d.item,
                               decided_by=d.by, decided_at=d.at))
        await self.s.flush()

    async def of_case(self, case_ref: str) -> list[tuple[Concertation, list[Decision]]]:
        result = await self.s.execute(
            select(ConcertationRow).where(ConcertationRow.case_ref == case_ref).order_by(ConcertationRow.id))
        return [(_concertation(r), await self.decisions(r.id)) for r in result.scalars()]

    async def counts(self) -> list[tuple[str, datetime, int, int]]:
        """(state, start time, decisions, decisions on plan items) of every concertation."""
        decisions = (select(DecisionRow.concertation_id, func.count().label("n"),
                            func.count(DecisionRow.plan_item).label("on_items"))
                     .group_by(DecisionRow.concertation_id).subquery())
        result = await self.s.execute(
            select(ConcertationRow.state, ConcertationRow.starts_at, decisions.c.n, decisions.c.on_items)
            .outerjoin(decisions, decisions.c.concertation_id == ConcertationRow.id)
            .order_by(ConcertationRow.id))
        return [(state, _ts(at), int(n or 0), int(on or 0)) for state, at, n, on in result.all()]
