"""Repositories for the care plan, evaluations, due dates and the prompts already sent."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import func, insert, select, union, update
from sqlalchemy.ext.asyncio import AsyncSession

from hub.domain.evaluations import Evaluation, Reason, Tool
from hub.domain.plan import ItemStatus, PlanItem
from hub.domain.team import Role
from hub.storage.bulk import insert_rows
from hub.storage.models import MemberRow, OutboxRow, PersonRow
from hub.storage.models_plan import EvaluationDueRow, EvaluationRow, PlanItemRow, SentPromptRow
from hub.storage.repositories import cause_of, fit_key, lane_of


def _aware(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything we store is UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _day(value: datetime) -> date:
    # A naive value is already UTC (SQLite): its date is the UTC date, no conversion needed (the
    # sweep reads this for every candidate file).
    return value.date() if value.tzinfo is None else value.astimezone(UTC).date()


def _item(row: PlanItemRow) -> PlanItem:
    return PlanItem(
        number=row.number, need=row.need, action=row.action, provider_user=row.provider_user,
        provider_org=row.provider_org, frequency=row.frequency, start=row.start_on, review=row.review_on,
        status=ItemStatus(row.status), closed=row.closed, changed_by=row.changed_by,
        changed_at=_aware(row.changed_at), version=row.version,
    )


@dataclass(frozen=True)
class DueRecord:
    """What the sweep and the caseload need to know about one open file's next evaluation."""

    person_id: int
    case_ref: str
    referent: str
    opened_on: date
    next_due: date | None  # from evaluations alone; None when the cached row is missing
    last_done_on: date | None
    hospital_return: date | None
    opened_at: datetime | None = None  # the instant: the service takes its day in the territory's zone


@dataclass(frozen=True)
class ReviewRecord:
    case_ref: str
    referent: str
    item: PlanItem


class PlanRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.s = session

    async def _person_id(self, case_ref: str) -> int:
        result = await self.s.execute(select(PersonRow.id).where(PersonRow.case_ref == case_ref))
        return int(result.scalar_one())

    # --- plan items -------------------------------------------------------------------------

    async def versions(self, case_ref: str) -> list[PlanItem]:
        """Every version of every item, oldest first."""
        result = await self.s.execute(
            select(PlanItemRow).join(PersonRow, PersonRow.id == PlanItemRow.person_id)
            .where(PersonRow.case_ref == case_ref).order_by(PlanItemRow.number, PlanItemRow.version)
        )
        return [_item(r) for r in result.scalars()]

    async def items(self, case_ref: str) -> list[PlanItem]:
        """The latest version of each item, by number (closed ones included)."""
        result = await self.s.execute(
            select(PlanItemRow).join(PersonRow, PersonRow.id == PlanItemRow.person_id)
            .where(PersonRow.case_ref == case_ref, PlanItemRow.is_current.is_(True))
            .order_by(PlanItemRow.number)
        )
        return [_item(r) for r in result.scalars()]

    async def save(self, case_ref: str, item: PlanItem) -> None:
        """Add a new version of an item; the one before stays, no longer current."""
        person_id = await self._person_id(case_ref)
        await self.s.execute(
            update(PlanItemRow)
            .where(PlanItemRow.person_id == person_id, PlanItemRow.number == item.number,
                   PlanItemRow.is_current.is_(True))
            .values(is_current=False)
        )
        self.s.add(PlanItemRow(
            person_id=person_id, number=item.number, version=item.version, is_current=True, need=item.need,
            action=item.action, provider_user=item.provider_user, provider_org=item.provider_org,
            frequency=item.frequency, start_on=item.start, review_on=item.review, status=item.status.value,
            closed=item.closed, changed_by=item.changed_by, changed_at=item.changed_at,
        ))
        await self.s.flush()

    async def count_without_provider(self, referent: str) -> int:
        """Open items that need someone and have nobody, over the referent's open files."""
        needing = [s.value for s in (ItemStatus.PROPOSED, ItemStatus.IN_PLACE, ItemStatus.UNAVAILABLE)]
        result = await self.s.execute(
            select(func.count()).select_from(PlanItemRow).join(PersonRow, PersonRow.id == PlanItemRow.person_id)
            .where(PersonRow.referent == referent, PersonRow.closed_at.is_(None),
                   PlanItemRow.is_current.is_(True), PlanItemRow.closed.is_(False),
                   PlanItemRow.status.in_(needing), PlanItemRow.provider_user.is_(None),
                   PlanItemRow.provider_org.is_(None))
        )
        return int(result.scalar_one())

    async def review_candidates(self, before: date) -> list[int]:
        """Ids of the current, open item versions whose review date is before `before`."""
        result = await self.s.execute(
            select(PlanItemRow.id)
            .where(PlanItemRow.is_current.is_(True), PlanItemRow.review_on < before,
                   PlanItemRow.closed.is_(False))
            .order_by(PlanItemRow.id)
        )
        return list(result.scalars())

    async def review_batch(self, item_ids: Sequence[int]) -> list[ReviewRecord]:
        """Those items, re-read in the caller's transaction: still current and open, in open files."""
        result = await self.s.execute(
            select(PlanItemRow, PersonRow.case_ref, PersonRow.referent)
            .join(PersonRow, PersonRow.id == PlanItemRow.person_id)
            .where(PlanItemRow.id.in_(item_ids), PlanItemRow.is_current.is_(True),
                   PlanItemRow.closed.is_(False), PersonRow.closed_at.is_(None))
            .order_by(PlanItemRow.id)
        )
        return [ReviewRecord(ref, referent, _item(row)) for row, ref, referent in result.all()]

    # --- evaluations and due dates ----------------------------------------------------------

    async def add_evaluation(self, case_ref: str, evaluation: Evaluation, now: datetime) -> None:
        self.s.add(EvaluationRow(
            person_id=await self._person_id(case_ref), done_on=evaluation.date, tool=evaluation.tool.value,
            reason=evaluation.reason.value, gir=evaluation.gir, evaluator=evaluation.evaluator, grid=evaluation.grid,
            recorded_at=now,
        ))
        await self.s.flush()

    async def last_evaluation(self, case_ref: str, on: date | None = None) -> Evaluation | None:
        """The most recent by date (a backdated record does not hide a later one); with `on`, the
        most recent done on or before that day."""
        query = (select(EvaluationRow).join(PersonRow, PersonRow.id == EvaluationRow.person_id)
                 .where(PersonRow.case_ref == case_ref))
        if on is not None:
            query = query.where(EvaluationRow.done_on <= on)
        result = await self.s.execute(
            query.order_by(EvaluationRow.done_on.desc(), EvaluationRow.id.desc()).limit(1))
        row = result.scalar_one_or_none()
        if row is None:
            return None
        return Evaluation(row.done_on, Tool(row.tool), Reason(row.reason), row.gir, row.evaluator, row.grid)

    async def set_due(self, case_ref: str, next_due: date, last_done_on: date | None, interval_days: int) -> None:
        person_id = await self._person_id(case_ref)
        row = await self.s.get(EvaluationDueRow, person_id)
        if row is None:
            self.s.add(EvaluationDueRow(person_id=person_id, next_due=next_due, last_done_on=last_done_on,
                                        interval_days=interval_days))
        else:
            row.next_due, row.last_done_on, row.interval_days = next_due, last_done_on, interval_days
        await self.s.flush()

    async def due_of(self, case_ref: str) -> DueRecord | None:
        records = await self._due_records(PersonRow.case_ref == case_ref)
        return records[0] if records else None

    async def due_of_referent(self, referent: str) -> list[DueRecord]:
        return await self._due_records(PersonRow.referent == referent, PersonRow.closed_at.is_(None))

    async def due_batch(self, person_ids: Sequence[int]) -> list[DueRecord]:
        """Those persons, re-read in the caller's transaction, if their file is still open."""
        return await self._due_records(PersonRow.id.in_(person_ids), PersonRow.closed_at.is_(None))

    async def _due_records(self, *where: object) -> list[DueRecord]:
        result = await self.s.execute(
            select(PersonRow.id, PersonRow.case_ref, PersonRow.referent, PersonRow.opened_at,
                   PersonRow.hospital_return_on, EvaluationDueRow.next_due, EvaluationDueRow.last_done_on)
            .outerjoin(EvaluationDueRow, EvaluationDueRow.person_id == PersonRow.id)
            .where(*where).order_by(PersonRow.id)  # type: ignore[arg-type]
        )
        return [
            DueRecord(pid, ref, referent, _day(opened), next_due, last, back, _aware(opened))
            for pid, ref, referent, opened, back, next_due, last in result.all()
        ]

    async def due_candidates(self, due_by: date, returned_by: date) -> list[int]:
        """Persons whose evaluation may fall due by `due_by`, in one statement over indexes:
        cached due date by then, or back from hospital by `returned_by`, or no cached row."""
        query = union(
            select(EvaluationDueRow.person_id.label("pid")).where(EvaluationDueRow.next_due <= due_by),
            select(PersonRow.id.label("pid")).where(PersonRow.hospital_return_on <= returned_by),
            select(PersonRow.id.label("pid"))
            .outerjoin(EvaluationDueRow, EvaluationDueRow.person_id == PersonRow.id)
            .where(EvaluationDueRow.person_id.is_(None)),
        ).subquery()
        result = await self.s.execute(select(query.c.pid).order_by(query.c.pid))
        return [int(pid) for pid in result.scalars()]

    async def stale_intervals(self, interval_days: int) -> list[tuple[int, date]]:
        """Cached due dates computed with another interval (the configuration changed)."""
        result = await self.s.execute(
            select(EvaluationDueRow.person_id, EvaluationDueRow.last_done_on)
            .where(EvaluationDueRow.interval_days != interval_days, EvaluationDueRow.last_done_on.is_not(None))
        )
        return [(int(pid), last) for pid, last in result.all() if last is not None]

    async def update_due_dates(self, rows: Iterable[tuple[int, date, int]]) -> None:
        """(person_id, next_due, interval_days) for existing rows, in one executemany."""
        params = [{"person_id": pid, "next_due": due, "interval_days": days} for pid, due, days in rows]
        if params:  # ORM bulk UPDATE by primary key
            await self.s.execute(update(EvaluationDueRow), params)

    async def create_due_rows(self, rows: Iterable[tuple[int, date, int]]) -> None:
        """(person_id, next_due, interval_days) for persons that have no row yet."""
        params = [{"person_id": pid, "next_due": due, "last_done_on": None, "interval_days": days}
                  for pid, due, days in rows]
        if params:
            await self.s.execute(insert(EvaluationDueRow), params)

    async def gps_of(self, person_ids: Sequence[int]) -> dict[int, list[str]]:
        """The active GPs of these persons, in the order they joined."""
        result = await self.s.execute(
            select(MemberRow.person_id, MemberRow.user_id)
            .where(MemberRow.person_id.in_(person_ids), MemberRow.role == Role.GP.value, MemberRow.until.is_(None))
            .order_by(MemberRow.id)
        )
        out: dict[int, list[str]] = {}
        for pid, user in result.all():
            out.setdefault(pid, []).append(user)
        return out

    # --- prompts sent -----------------------------------------------------------------------

    async def sent_among(self, keys: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which of these (case_ref, occasion) pairs have been sent already."""
        wanted = set(keys)
        if not wanted:
            return set()
        # One expanding IN on the case (a single bound list, no per-pair SQL to build), then the
        # pairs kept here: a file has a few sent occasions, so few rows come back.
        refs = sorted({ref for ref, _ in wanted})
        result = await self.s.execute(
            select(SentPromptRow.case_ref, SentPromptRow.occasion).where(SentPromptRow.case_ref.in_(refs)))
        return {(ref, occasion) for ref, occasion in result.all() if (ref, occasion) in wanted}

    async def is_sent(self, case_ref: str, occasion: str) -> bool:
        result = await self.s.execute(
            select(SentPromptRow.id).where(SentPromptRow.case_ref == case_ref, SentPromptRow.occasion == occasion))
        return result.first() is not None

    async def record_sent(self, keys: Iterable[tuple[str, str]], now: datetime) -> None:
        await insert_rows(self.s, SentPromptRow.__table__,
                          [{"case_ref": ref, "occasion": occasion, "sent_at": now} for ref, occasion in keys])

    async def enqueue_notices(self, entries: Iterable[tuple[str, str | None, dict[str, Any]]], now: datetime) -> None:
        """Outbox `notify` entries (key, case_ref, payload) in one multi-row insert.

        The sweep enqueues thousands of prompts at once; `OutboxRepo.add` checks and flushes one
        key at a time. No existence check is needed here: a prompt's key is written only with its
        `sent_prompts` row, whose unique (case, occasion) was checked in the same transaction.
        """
        await insert_rows(self.s, OutboxRow.__table__, [
            {"key": key, "action": "notify", "case_ref": ref, "payload": payload, "created_at": now,
             "state": "pending", "attempts": 0, "lane": lane_of("notify", ref, payload),
             "cause": fit_key(cause_of(key))} for key, ref, payload in entries])
