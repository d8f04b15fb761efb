"""Read-only queries across features for the pilot's report and the file's export."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.domain.evaluations import Evaluation, Reason, Tool
from hub.storage.models import PersonRow
from hub.storage.models_alerts import SettingChangeRow
from hub.storage.models_handover import BreakRow, HandoverRow
from hub.storage.models_plan import EvaluationRow, PlanItemRow
from hub.storage.repositories import _aware

__all__ = ["FileRecord", "ReportRepo"]


@dataclass(frozen=True)
class FileRecord:
    person_id: int
    referent: str
    opened_at: datetime
    closed_at: datetime | None
    close_reason: str | None


class ReportRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.s = session

    async def files(self) -> list[FileRecord]:
        result = await self.s.execute(
            select(PersonRow.id, PersonRow.referent, PersonRow.opened_at, PersonRow.closed_at,
                   PersonRow.close_reason).order_by(PersonRow.id))
        return [FileRecord(pid, ref, _aware(opened) or opened, _aware(closed), reason)
                for pid, ref, opened, closed, reason in result.all()]

    async def current_items(self) -> list[tuple[int, str, bool]]:
        """(person id, status, closed) of every item's current version in open files."""
        result = await self.s.execute(
            select(PlanItemRow.person_id, PlanItemRow.status, PlanItemRow.closed)
            .join(PersonRow, PersonRow.id == PlanItemRow.person_id)
            .where(PlanItemRow.is_current.is_(True), PersonRow.closed_at.is_(None)))
        return [(int(pid), status, bool(closed)) for pid, status, closed in result.all()]

    async def moves(self) -> list[tuple[str, str, datetime]]:
        """(setting, previous setting, since) of every standing move."""
        result = await self.s.execute(
            select(SettingChangeRow.setting, SettingChangeRow.previous, SettingChangeRow.since)
            .where(SettingChangeRow.reverted_at.is_(None)).order_by(SettingChangeRow.id))
        return [(setting, previous, _aware(since) or since) for setting, previous, since in result.all()]

    async def breaks(self) -> list[tuple[str, str, datetime]]:
        result = await self.s.execute(select(BreakRow.category, BreakRow.source, BreakRow.at).order_by(BreakRow.id))
        return [(category, source, _aware(at) or at) for category, source, at in result.all()]

    async def handovers(self) -> list[tuple[str, datetime, bool]]:
        result = await self.s.execute(
            select(HandoverRow.kind, HandoverRow.created_at, HandoverRow.acked_at).order_by(HandoverRow.id))
        return [(kind, _aware(at) or at, acked is not None) for kind, at, acked in result.all()]

    async def evaluations(self, case_ref: str) -> list[tuple[Evaluation, datetime]]:
        """Every evaluation of a file, oldest first, with when it was recorded."""
        result = await self.s.execute(
            select(EvaluationRow).join(PersonRow, PersonRow.id == EvaluationRow.person_id)
            .where(PersonRow.case_ref == case_ref).order_by(EvaluationRow.done_on, EvaluationRow.id))
        return [(Evaluation(r.done_on, Tool(r.tool), Reason(r.reason), r.gir, r.evaluator, r.grid),
                 _aware(r.recorded_at) or r.recorded_at) for r in result.scalars()]
