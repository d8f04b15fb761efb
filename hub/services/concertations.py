"""Use cases of the clinical concertation: plan, move, cancel, take decisions down, and the sweep
that sends the reminders and posts the minutes. One unit of work each; effects to the outbox.

Every change of time or a cancellation sends the iCalendar file again (same UID, next SEQUENCE)
as an encrypted attachment after its notice.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from hub.clock import DEFAULT_TIMEZONE
from hub.domain import concertation
from hub.domain.concertation import Concertation, Decision, State
from hub.domain.effects import Effect, SendFile
from hub.domain.errors import DomainError
from hub.domain.persons import Person
from hub.domain.report import Period, Section
from hub.domain.team import server_of
from hub.i18n.catalog import LANGUAGES, Catalog
from hub.services import ical
from hub.services.outbox import enqueue
from hub.storage.database import Database, UnitOfWork

log = logging.getLogger(__name__)


def _zone(tz: ZoneInfo | None) -> ZoneInfo:
    return tz or ZoneInfo(DEFAULT_TIMEZONE)


def invitation(c: Concertation, catalog: Catalog, now: datetime) -> SendFile:
    """The iCalendar file of `c` as it now stands (a cancellation when it is cancelled)."""
    cancelled = c.state is State.CANCELLED
    data = ical.invitation(
        c, summary=catalog.text("concertation.ics_summary", case=c.case_ref),
        description=catalog.text("concertation.ics_description", case=c.case_ref, organiser=c.organiser),
        stamp=now, tz=ZoneInfo(catalog.timezone))
    kind = "concertation.cancelled" if cancelled else "concertation.planned" if c.sequence == 0 \
        else "concertation.moved"
    return SendFile(kind, c.case_ref, ical.filename(c.case_ref, c.sequence, cancelled), ical.MIMETYPE,
                    data.decode("utf-8"))


async def _pending(uow: UnitOfWork, case_ref: str) -> Concertation | None:
    found = await uow.concertations.pending(case_ref)
    return None if found is None or found.id is None else await uow.concertations.lock(found.id)


async def plan(
    uow: UnitOfWork, person: Person, day: date, hhmm: str, *, minutes: int | None, place: str | None,
    visio: str | None, with_: Sequence[str], by: str, now: datetime, catalog: Catalog, bot_user: str,
    tz: ZoneInfo | None = None,
) -> list[Effect]:
    ref = person.case_ref
    await uow.persons.lock(ref)  # one planning at a time per file
    uid = f"{uuid.uuid4().hex}@{server_of(bot_user) or 'relais'}"
    c, effects = concertation.plan(
        await _pending(uow, ref), await uow.team.members(ref), ref, day, hhmm, minutes=minutes, place=place,
        visio=visio, with_=with_, uid=uid, by=by, now=now, tz=_zone(tz))
    saved = await uow.concertations.add(c, now)
    log.info("concertation planned for %s", ref)
    return [*effects, invitation(saved, catalog, now)]


async def move(uow: UnitOfWork, person: Person, day: date, hhmm: str, *, by: str, now: datetime,
               catalog: Catalog, tz: ZoneInfo | None = None) -> list[Effect]:
    moved, effects = concertation.move(await _pending(uow, person.case_ref), day, hhmm, by=by, now=now,
                                       tz=_zone(tz))
    await uow.concertations.save(moved, now)
    return [*effects, invitation(moved, catalog, now)]


async def cancel(uow: UnitOfWork, person: Person, *, by: str, now: datetime, catalog: Catalog,
                 tz: ZoneInfo | None = None) -> list[Effect]:
    c = await _pending(uow, person.case_ref)
    decided = len(await uow.concertations.decisions(c.id)) if c is not None and c.id is not None else 0
    cancelled, effects = concertation.cancel(c, by=by, now=now, tz=_zone(tz), decided=decided)
    await uow.concertations.save(cancelled, now)
    return [*effects, invitation(cancelled, catalog, now)]


async def follow_team(uow: UnitOfWork, person: Person, changes: Sequence[tuple[str, str | None]], *,
                      now: datetime, catalog: Catalog | None = None, tz: ZoneInfo | None = None) -> list[Effect]:
    """Members who left the team (each with their successor or None) leave the pending
    concertation's list, their successors join it: a notice and the updated invitation (same UID,
    next SEQUENCE) without the leavers. No CANCEL is sent to a leaver: they are out of the room,
    the only place Relais delivers the invitation, and the update no longer lists them."""
    zone = _zone(tz)
    c = await _pending(uow, person.case_ref)
    effects: list[Effect] = []
    for leaver, successor in changes:
        followed = concertation.follow_team(c, leaver, successor, referent=person.referent, now=now, tz=zone)
        if followed is None:
            continue
        c, notices = followed
        effects += notices
    if c is None or not effects:
        return []
    await uow.concertations.save(c, now)
    log.info("concertation of %s follows the team", person.case_ref)
    return [*effects, invitation(c, catalog or Catalog(LANGUAGES[0], zone.key), now)]


async def decide(uow: UnitOfWork, person: Person, text: str, item: int | None, *, by: str,
                 now: datetime, tz: ZoneInfo | None = None) -> Decision:
    c = await _pending(uow, person.case_ref)
    if c is None or c.id is None:
        raise DomainError("error.concertation_none")
    decision = concertation.decide(c, await uow.concertations.decisions(c.id), text, item, by=by, now=now,
                                   tz=_zone(tz))
    if item is not None:
        found = next((i for i in await uow.plans.items(person.case_ref) if i.number == item), None)
        if found is None:
            raise DomainError("error.plan_no_item", item=item)
        if found.closed:
            raise DomainError("error.decision_item_closed", item=item)
    await uow.concertations.add_decision(c.id, decision)
    return decision


async def upcoming_params(uow: UnitOfWork, person: Person, tz: ZoneInfo | None = None) -> dict[str, Any] | None:
    c = await uow.concertations.pending(person.case_ref)
    return None if c is None else concertation.when_params(c, _zone(tz))


class ConcertationSweeper:
    """Reminders the day before and an hour before, then the minutes once it is over. Each sent
    once: the moment is recorded on the concertation with the outbox entry, in one transaction."""

    def __init__(self, db: Database, on_enqueued: Callable[[], None] | None = None,
                 tz: ZoneInfo | None = None) -> None:
        self.db = db
        self.on_enqueued = on_enqueued or (lambda: None)
        self.tz = _zone(tz)

    async def sweep(self, now: datetime) -> int:
        async with self.db.unit() as uow:
            ids = await uow.concertations.due(now + concertation.DAY_LEAD)
        count = 0
        for concertation_id in ids:
            try:
                async with self.db.unit() as uow:
                    count += await self._one(uow, concertation_id, now)
            except Exception:
                log.exception("concertation sweep: one failed; retried at the next sweep")
        if count:
            self.on_enqueued()
        return count

    async def _one(self, uow: UnitOfWork, concertation_id: int, now: datetime) -> int:
        c = await uow.concertations.lock(concertation_id)
        if c is None or not c.pending:
            return 0
        person = await uow.persons.get(c.case_ref)
        if person is None or not person.is_open:
            # A closed file is read-only: its planned meeting is dropped without a word.
            await uow.concertations.save(concertation.drop(c), now)
            return 0
        if concertation.minutes_due(c, now):
            held, notices = concertation.minutes(c, await uow.concertations.decisions(concertation_id),
                                                 person.referent, self.tz)
            await uow.concertations.save(held, now)
            return await enqueue(uow, f"concertation:{concertation_id}:minutes", notices, now)
        which = concertation.reminder_due(c, now)
        if which is None:
            return 0
        done, notice = concertation.reminded(c, which, now, self.tz)
        await uow.concertations.save(done, now)
        return await enqueue(uow, f"concertation:{concertation_id}:{c.sequence}:{which.value}", [notice], now)


# --- export and report ----------------------------------------------------------------------

async def export_section(uow: UnitOfWork, person: Person) -> Any:
    return [{
        "uid": c.uid, "sequence": c.sequence, "state": c.state.value, "organiser": c.organiser,
        "participants": list(c.participants), "starts_at": c.starts_at.isoformat(), "minutes": c.minutes,
        "place": c.place, "visio": c.visio,
        "decisions": [{"number": d.number, "text": d.text, "plan_item": d.item, "by": d.by, "at": d.at.isoformat()}
                      for d in decisions],
    } for c, decisions in await uow.concertations.of_case(person.case_ref)]


async def report_counts(uow: UnitOfWork, period: Period, tz: ZoneInfo | None = None) -> Section:
    """Concertations held or cancelled whose (planned) day falls in the period, and their decisions."""
    out: Section = {"concertations_held": 0, "concertations_cancelled": 0, "concertation_decisions": 0,
                    "concertation_decisions_on_plan_items": 0}
    for state, starts_at, decisions, on_items in await uow.concertations.counts():
        if concertation.local(starts_at, _zone(tz)).date() not in period:
            continue
        if state == State.HELD.value:
            out["concertations_held"] += 1
            out["concertation_decisions"] += decisions
            out["concertation_decisions_on_plan_items"] += on_items
        elif state == State.CANCELLED.value:
            out["concertations_cancelled"] += 1
    return out
