"""Continuity breaks: reported by hand (`!break`), or seen when a member leaves the room on their own."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from hub.clock import Clock
from hub.domain import continuity, plan, team
from hub.domain.continuity import Source
from hub.domain.effects import Effect, Invite, Notify
from hub.domain.persons import Person
from hub.i18n.catalog import Catalog
from hub.services import concertations
from hub.services.handovers import present
from hub.services.outbox import enqueue
from hub.storage.database import Database, UnitOfWork

log = logging.getLogger(__name__)

#: Membership changes the intake reports that are a member leaving of their own accord.
LEAVES = {"left": Source.LEFT, "declined": Source.DECLINED}


async def report_break(uow: UnitOfWork, person: Person, text: str, category: str | None, *, by: str,
                       now: datetime, pilots: tuple[str, ...]) -> list[Effect]:
    record, effects = continuity.report(person.case_ref, text, category, by=by, now=now, pilots=pilots)
    await uow.handovers.add_break(record)
    # A pilot whose desk is not open yet gets the count in the report only: a desk notice would
    # wait for a room that may never come and hold up the queue behind it.
    kept: list[Effect] = []
    for effect in effects:
        if isinstance(effect, Notify) and effect.desk and await uow.desks.room_of(effect.desk) is None:
            continue
        kept.append(effect)
    log.info("continuity break (%s) reported in %s", record.category.value, person.case_ref)
    return kept


class MembershipWatcher:
    """Told by the intake of every membership change in the rooms the bot is in."""

    def __init__(self, db: Database, clock: Clock, on_enqueued: Callable[[], None] | None = None,
                 catalog: Catalog | None = None) -> None:
        self.db = db
        self.clock = clock
        self.catalog = catalog  # the concertation's invitation, updated when a participant leaves
        self.on_enqueued = on_enqueued or (lambda: None)

    async def on_membership(self, room_id: str, event_id: str, user_id: str, change: str) -> None:
        source = LEAVES.get(change)
        if source is None:
            return  # joins, invites, and the bot's own kicks (the team record already ended)
        if await self.member_left(room_id, event_id, user_id, source):
            self.on_enqueued()

    async def member_left(self, room_id: str, event_id: str, user_id: str, source: Source) -> bool:
        """Exactly once per leave event (claimed), and only while the team record is open."""
        now = self.clock.now()
        async with self.db.unit() as uow:
            person = await uow.persons.by_room(room_id)
            if person is None or not person.is_open:
                return False
            ref = person.case_ref
            await uow.persons.lock(ref)
            if not await uow.events.claim(event_id, now):
                return False
            members = await uow.team.members(ref)
            member = team.find(members, user_id)
            if member is None:
                return False
            effects: list[Effect] = []
            if user_id == person.referent:
                # A file never goes without its referent: they are told and invited back.
                items: list[plan.PlanItem] = []
                effects.append(Invite(ref, user_id))
            else:
                await uow.team.end(ref, team.Member(member.user_id, member.role, member.since, member.organisation,
                                                    until=now, end_reason=source.value))
                items, plan_effects = plan.reassign(await uow.plans.items(ref), ref, user_id, None, by=user_id,
                                                    now=now, automatic=True)
                for item in items:
                    await uow.plans.save(ref, item)
                # Each item's change is a PSI change; the break notice below lists them all instead
                # of the plan's own "provider lost" notice.
                effects += [e for e in plan_effects if isinstance(e, Notify) and e.kind == plan.KIND]
                effects += await concertations.follow_team(uow, person, [(user_id, None)], now=now,
                                                           catalog=self.catalog, tz=self.clock.tz)
            remaining = [m for m in team.active(members) if m.user_id != user_id]
            record, notice = continuity.member_left(
                ref, user_id, member.role.value, source, items,
                mentions=team.mentions_for(remaining, person.referent), now=now)
            await uow.handovers.add_break(record)
            await enqueue(uow, f"left:{event_id}", [present(e) for e in (notice, *effects)], now)
        log.info("a member left %s on their own (%s)", ref, source.value)
        return True
