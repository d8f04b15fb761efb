"""Use cases about the person's rights (SPEC §10): an AGGIR evaluation and the APA review it
opens, `!rights`, closing a review, the weekly reminder, and the export and report sections.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from datetime import date, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from hub.clock import DEFAULT_TIMEZONE
from hub.domain import rights
from hub.domain.effects import Effect, Notify
from hub.domain.evaluations import Evaluation
from hub.domain.persons import Person
from hub.domain.report import Section
from hub.domain.transitions import local_day
from hub.services import plans
from hub.services.outbox import enqueue
from hub.services.plans import EvaluationStatus
from hub.storage.database import Database, UnitOfWork

log = logging.getLogger(__name__)


async def record_evaluation(
    uow: UnitOfWork, person: Person, when: date | None, *, tool: str | None, reason: str | None,
    gir: int | None, grid: str | None, by: str, now: datetime, interval_days: int, tz: ZoneInfo,
) -> tuple[Evaluation, EvaluationStatus, list[Effect]]:
    """Record an evaluation (its GIR computed from the grid when one is given) and, in the same
    unit of work, the rights review its GIR opens with the notice to the referent."""
    ref = person.case_ref
    await uow.persons.lock(ref)
    previous = await uow.rights.latest_gir(ref)
    evaluation, status = await plans.record_evaluation(
        uow, person, when, tool=tool, reason=reason, gir=gir, grid=grid, by=by, now=now,
        interval_days=interval_days, tz=tz)
    opened = rights.open_review(previous, evaluation.date, evaluation.gir, await uow.rights.of_case(ref),
                                case_ref=ref, by=by, referent=person.referent, now=now)
    if opened is None:
        return evaluation, status, []
    review, notice = opened
    await uow.rights.add(ref, review)
    log.info("rights review %d opened for %s", review.number, ref)
    return evaluation, status, [notice]


async def close_review(uow: UnitOfWork, person: Person, number: int, *, by: str, now: datetime,
                       tz: tzinfo) -> rights.Review:
    await uow.persons.lock(person.case_ref)
    closed = rights.close(await uow.rights.of_case(person.case_ref), number, by=by, now=now, tz=tz)
    await uow.rights.close(person.case_ref, closed)
    return closed


async def open_lines(uow: UnitOfWork, person: Person | None, referent: str, today: date,
                     tz: tzinfo) -> list[dict[str, Any]]:
    """The open reviews of one file (in its room) or of the referent's files (in the desk)."""
    if person is not None:
        return [rights.line(r, person.case_ref, today, tz, with_case=False)
                for r in await uow.rights.of_case(person.case_ref) if r.is_open]
    return [rights.line(r, ref, today, tz, with_case=True) for ref, r in await uow.rights.open_of_referent(referent)]


class RightsReminders:
    """Open reviews older than 30 days are reminded to the referent once a week, once per
    occasion whatever the restarts (the occasions sent are kept with the re-evaluation ones)."""

    def __init__(self, db: Database, on_enqueued: Callable[[], None] | None = None,
                 tz: tzinfo | None = None) -> None:
        self.db = db
        self.on_enqueued = on_enqueued or (lambda: None)
        self.tz = tz or ZoneInfo(DEFAULT_TIMEZONE)  # `[care] timezone`: weeks count in local days

    async def sweep(self, now: datetime) -> int:
        today = local_day(now, self.tz)
        count = 0
        async with self.db.unit() as uow:
            due: list[tuple[str, str, Notify]] = []
            # A day of margin: the 30 days count in local days, and the zone is ahead of UTC.
            cutoff = now - timedelta(days=rights.REMIND_AFTER_DAYS - 1)
            for ref, referent, review in await uow.rights.open_before(cutoff):
                week = rights.reminder_occasion(local_day(review.opened_at, self.tz), today)
                if week is not None:
                    due.append((ref, f"rights:{review.number}:{week}",
                                rights.reminder(review, ref, referent, today, self.tz)))
            sent = await uow.plans.sent_among((ref, occasion) for ref, occasion, _ in due)
            fresh = [(ref, occasion, notice) for ref, occasion, notice in due if (ref, occasion) not in sent]
            await uow.plans.record_sent(((ref, occasion) for ref, occasion, _ in fresh), now)
            for ref, occasion, notice in fresh:
                count += await enqueue(uow, f"prompt:{ref}:{occasion}", [notice], now)
        if count:
            log.info("rights reminders: %d enqueued", count)
            self.on_enqueued()
        return count


# --- export and report ----------------------------------------------------------------------

async def export_section(uow: UnitOfWork, person: Person) -> Any:
    """The file's rights reviews, as kept (the grids travel with the evaluations section)."""
    return [{"number": r.number, "old_gir": r.old_gir, "new_gir": r.new_gir,
             "evaluated_on": r.evaluated_on.isoformat(), "opened_at": r.opened_at.isoformat(),
             "opened_by": r.opened_by, "closed_at": r.closed_at.isoformat() if r.closed_at else None,
             "closed_by": r.closed_by}
            for r in await uow.rights.of_case(person.case_ref)]


async def report_counts(uow: UnitOfWork) -> Section:
    """Open files by their latest GIR today (counts only), and the files with none."""
    girs = Counter(await uow.rights.current_girs())
    out: Section = {f"gir_{g}": girs.get(g, 0) for g in range(1, 7)}
    out["gir_unknown"] = girs.get(None, 0)
    return out
