"""Repository of the APA rights reviews and the GIRs they are read from."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from hub.domain.rights import Review
from hub.storage.models import PersonRow
from hub.storage.models_plan import EvaluationRow
from hub.storage.models_rights import RightsReviewRow


def _aware(value: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; everything we store is UTC.
    return value if value is None or value.tzinfo is not None else value.replace(tzinfo=UTC)


def _review(row: RightsReviewRow) -> Review:
    opened = _aware(row.opened_at)
    assert opened is not None
    return Review(row.number, row.old_gir, row.new_gir, row.evaluated_on, opened, row.opened_by,
                  _aware(row.closed_at), row.closed_by)


class RightsRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.s = session

    async def of_case(self, case_ref: str) -> list[Review]:
        """Every review of a file, by number."""
        result = await self.s.execute(
            select(RightsReviewRow).where(RightsReviewRow.case_ref == case_ref).order_by(RightsReviewRow.number))
        return [_review(r) for r in result.scalars()]

    async def add(self, case_ref: str, review: Review) -> None:
        self.s.add(RightsReviewRow(
            case_ref=case_ref, number=review.number, old_gir=review.old_gir, new_gir=review.new_gir,
            evaluated_on=review.evaluated_on, opened_at=review.opened_at, opened_by=review.opened_by))
        await self.s.flush()

    async def close(self, case_ref: str, review: Review) -> None:
        await self.s.execute(
            update(RightsReviewRow)
            .where(RightsReviewRow.case_ref == case_ref, RightsReviewRow.number == review.number)
            .values(closed_at=review.closed_at, closed_by=review.closed_by))

    async def open_of_referent(self, referent: str) -> list[tuple[str, Review]]:
        """The open reviews of the referent's open files, oldest first."""
        result = await self.s.execute(
            select(RightsReviewRow, PersonRow.case_ref)
            .join(PersonRow, PersonRow.case_ref == RightsReviewRow.case_ref)
            .where(PersonRow.referent == referent, PersonRow.closed_at.is_(None),
                   RightsReviewRow.closed_at.is_(None))
            .order_by(RightsReviewRow.opened_at, RightsReviewRow.id))
        return [(ref, _review(row)) for row, ref in result.all()]

    async def count_open(self, referent: str) -> int:
        result = await self.s.execute(
            select(func.count()).select_from(RightsReviewRow)
            .join(PersonRow, PersonRow.case_ref == RightsReviewRow.case_ref)
            .where(PersonRow.referent == referent, PersonRow.closed_at.is_(None),
                   RightsReviewRow.closed_at.is_(None)))
        return int(result.scalar_one())

    async def open_before(self, opened_before: datetime) -> list[tuple[str, str, Review]]:
        """(case_ref, referent, review) for the open reviews of open files opened before then."""
        result = await self.s.execute(
            select(RightsReviewRow, PersonRow.case_ref, PersonRow.referent)
            .join(PersonRow, PersonRow.case_ref == RightsReviewRow.case_ref)
            .where(RightsReviewRow.closed_at.is_(None), RightsReviewRow.opened_at <= opened_before,
                   PersonRow.closed_at.is_(None))
            .order_by(RightsReviewRow.id))
        return [(ref, referent, _review(row)) for row, ref, referent in result.all()]

    async def latest_gir(self, case_ref: str) -> tuple[date, int] | None:
        """The latest (by evaluation date, then record) GIR of a file, or None."""
        result = await self.s.execute(
            select(EvaluationRow.done_on, EvaluationRow.gir)
            .join(PersonRow, PersonRow.id == EvaluationRow.person_id)
            .where(PersonRow.case_ref == case_ref, EvaluationRow.gir.is_not(None))
            .order_by(EvaluationRow.done_on.desc(), EvaluationRow.id.desc()).limit(1))
        row = result.first()
        if row is None or row[1] is None:
            return None
        return row[0], int(row[1])

    async def current_girs(self) -> list[int | None]:
        """For each open file, its latest GIR (None when none was ever recorded)."""
        latest = (
            select(EvaluationRow.person_id, EvaluationRow.gir,
                   func.row_number().over(partition_by=EvaluationRow.person_id,
                                          order_by=(EvaluationRow.done_on.desc(), EvaluationRow.id.desc()))
                   .label("n"))
            .where(EvaluationRow.gir.is_not(None)).subquery())
        result = await self.s.execute(
            select(PersonRow.id, latest.c.gir)
            .outerjoin(latest, (latest.c.person_id == PersonRow.id) & (latest.c.n == 1))
            .where(PersonRow.closed_at.is_(None)))
        return [None if gir is None else int(gir) for _pid, gir in result.all()]
