"""Use cases about the person's information and consent: record, show, the joining rule, the
daily reminder, and the file's export and pilot's report sections.

The consent note is free text: it is stored with the record and shown in the encrypted room,
never logged, and the audit log keeps only "<text>" in its place.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from hub.clock import DEFAULT_TIMEZONE
from hub.domain import consent, plan, team
from hub.domain.consent import Scope, Status
from hub.domain.continuity import Break as BreakRecord
from hub.domain.continuity import Category, Source
from hub.domain.effects import Effect
from hub.domain.persons import Person
from hub.domain.report import Section
from hub.domain.team import Role
from hub.i18n.catalog import Catalog
from hub.services import concertations, plans
from hub.services.outbox import enqueue
from hub.storage.database import Database, UnitOfWork

log = logging.getLogger(__name__)


async def record(
    uow: UnitOfWork, person: Person, status: Status, scope: Scope | None, on: date | None, note: str | None, *,
    by: str, now: datetime, tz: ZoneInfo | None = None, catalog: Catalog | None = None,
) -> list[Effect]:
    """Record information, consent or refusal; a withdrawn extended consent ends the membership
    of carers and others, in the same unit of work (the kicks follow from the outbox)."""
    ref = person.case_ref
    await uow.persons.lock(ref)
    entry, ended, effects = consent.record(
        await uow.consent.history(ref), await uow.team.members(ref), ref, status, scope, on, note, by=by, now=now,
        tz=tz or ZoneInfo(DEFAULT_TIMEZONE))
    await uow.consent.add(ref, entry)
    for member in ended:
        await uow.team.end(ref, member)
    if ended:
        effects += await _release_items(uow, ref, person.referent, [m.user_id for m in ended], by=by, now=now)
        effects += await concertations.follow_team(uow, person, [(m.user_id, None) for m in ended], now=now,
                                                   catalog=catalog, tz=tz)
        log.info("consent withdrawn for %s: %d member(s) outside the care team removed", ref, len(ended))
    return effects


async def _release_items(uow: UnitOfWork, ref: str, referent: str, users: list[str], *, by: str,
                         now: datetime) -> list[Effect]:
    """The plan items of members who left with the consent: no provider any more, flagged as a
    continuity break (SPEC §5: "a plan item lost its provider"), as a removal without successor."""
    members = await uow.team.members(ref)
    mentions = team.mentions_for(members, referent)
    effects: list[Effect] = []
    for user in users:
        changed, plan_effects = plan.reassign(await uow.plans.items(ref), ref, user, None, by=by, now=now,
                                              mentions=mentions)
        for item in changed:
            await uow.plans.save(ref, item)
        if any(i.status in plan.NEEDING_PROVIDER for i in changed):
            await uow.handovers.add_break(BreakRecord(ref, Category.RELATIONAL, Source.NO_SUCCESSOR, by, now,
                                                      subject=user))
        effects += [plans.present(e) for e in plan_effects]
    return effects


async def check_can_join(uow: UnitOfWork, case_ref: str, user_id: str, role: Role) -> None:
    """Raises the reason when `role` needs the person's extended consent and it is not given."""
    if role in consent.OUTSIDE_CARE_TEAM:
        consent.check_member(consent.state(await uow.consent.history(case_ref)), user_id, role)


async def show_params(uow: UnitOfWork, person: Person) -> dict[str, Any]:
    history = await uow.consent.history(person.case_ref)
    summary = consent.summary(consent.state(history))
    return {"case": person.case_ref, **summary,
            "history": consent.history_lines(history) or [{"key": "consent.history_empty"}]}


class ConsentReminders:
    """The standing reminder to the case manager while the person is not recorded as informed."""

    def __init__(self, db: Database, on_enqueued: Callable[[], None] | None = None,
                 tz: ZoneInfo | None = None) -> None:
        self.db = db
        self.tz = tz or ZoneInfo(DEFAULT_TIMEZONE)  # reminders follow the territory's days
        self.on_enqueued = on_enqueued or (lambda: None)

    async def sweep(self, now: datetime) -> int:
        count = 0
        async with self.db.unit() as uow:
            for f in await uow.consent.uninformed(opened_before=now):
                if not consent.reminder_due(f.opened_at, f.reminded_at, now, self.tz):
                    continue
                notice = consent.reminder(f.case_ref, f.referent, f.opened_at, now, self.tz)
                count += await enqueue(uow, f"consent-reminder:{f.case_ref}:{consent.reminder_day(now, self.tz)}",
                                       [notice], now)
                await uow.consent.set_reminded(f.case_ref, now)
        if count:
            log.info("consent reminders: %d enqueued", count)
            self.on_enqueued()
        return count


# --- export and report ----------------------------------------------------------------------

async def export_section(uow: UnitOfWork, person: Person) -> Any:
    """The file's consent history, as kept (for the person's right of access)."""
    return [{"status": r.status.value, "scope": r.scope.value, "date": r.on.isoformat(), "note": r.note,
             "recorded_by": r.by, "recorded_at": r.at.isoformat()}
            for r in await uow.consent.history(person.case_ref)]


async def report_counts(uow: UnitOfWork) -> Section:
    """Open files by what is recorded: not informed, informed only, extended consent, refusal."""
    out: Section = {"files_not_informed": 0, "files_informed_only": 0, "files_extended_consent": 0,
                    "files_consent_refused": 0}
    for _ref, history in await uow.consent.open_files():
        current = consent.state(history)
        if not current.informed:
            out["files_not_informed"] += 1
        elif current.extended:
            out["files_extended_consent"] += 1
        elif current.latest is not None and current.latest.status is Status.REFUSED:
            out["files_consent_refused"] += 1
        else:
            out["files_informed_only"] += 1
    return out
