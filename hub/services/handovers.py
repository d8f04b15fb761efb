"""Use cases of professional handovers (SPEC §6): `!team remove`, `!transfer`, `!ack`, reminders.

One unit of work each; the effects go to the outbox in the same transaction as the team,
plan and handover records they describe.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from hub.clock import DEFAULT_TIMEZONE
from hub.domain import caseload, handover
from hub.domain import days as local_days
from hub.domain.caseload import Limits
from hub.domain.continuity import Break as BreakRecord
from hub.domain.continuity import Category, Source
from hub.domain.effects import Effect, Notify
from hub.domain.errors import DomainError
from hub.domain.persons import Person
from hub.domain.plan import NEEDING_PROVIDER
from hub.i18n.catalog import Catalog
from hub.services import cases, concertations, consent, plans
from hub.services.outbox import enqueue
from hub.storage.database import Database, UnitOfWork

log = logging.getLogger(__name__)

# Messages whose params carry plan items as plain data, shown as item lines.
_ITEM_LISTS = ("passing", "open_items", "items")


def present(effect: Effect) -> Effect:
    """Plan items inside handover and break notices made readable; plan notices via `plans.present`."""
    if not isinstance(effect, Notify):
        return effect
    if effect.kind not in (handover.KIND, "continuity.break") or effect.message == "plan.provider_lost":
        return plans.present(effect)
    params: dict[str, Any] = dict(effect.params)
    for name in _ITEM_LISTS:
        value = params.get(name)
        if isinstance(value, list):
            params[name] = [plans.item_message(i) for i in value if isinstance(i, Mapping)] or None
    return replace(effect, params=params)


async def remove_member(
    uow: UnitOfWork, person: Person, leaver: str, successor: str | None, reason: str | None, *,
    organisation: str | None, by: str, now: datetime, allowed_servers: tuple[str, ...], bot_user: str,
    catalog: Catalog | None = None, tz: ZoneInfo | None = None,
) -> list[Effect]:
    """`!team remove`: with a successor a handover, without one the items are flagged."""
    ref = person.case_ref
    await uow.persons.lock(ref)
    status = await plans.evaluation_status(uow, person)
    composed = handover.professional(
        await uow.team.members(ref), await uow.plans.items(ref), ref, person.referent, leaver, successor, reason,
        organisation=organisation, last=status.last, due=status.due, by=by, now=now,
        allowed_servers=allowed_servers, bot_user=bot_user, person=person.display_name,
    )
    if composed.added is not None:
        # The successor of a carer (or another person outside the care team) joins as one: only
        # with the person's extended consent, as `!team add` asks (L1110-4).
        await consent.check_can_join(uow, ref, composed.added.user_id, composed.added.role)
    await uow.team.end(ref, composed.ended)
    if composed.added is not None:
        await uow.team.add(ref, composed.added)
    for item in composed.items:
        await uow.plans.save(ref, item)
    if successor is not None:
        await uow.handovers.add(composed.handover)
    elif any(i.status in NEEDING_PROVIDER for i in composed.items):
        await uow.handovers.add_break(BreakRecord(ref, Category.RELATIONAL, Source.NO_SUCCESSOR, by, now,
                                                  subject=leaver))
    log.info("member removed from %s (successor: %s)", ref, "yes" if successor else "no")
    # After the handover (the leaver is kicked first): the concertation's list follows the team.
    followed = await concertations.follow_team(uow, person, [(leaver, successor)], now=now, catalog=catalog, tz=tz)
    return [*(present(e) for e in composed.effects), *followed]


async def transfer(
    uow: UnitOfWork, case_ref: str, receiver: str, *, by: str, now: datetime, case_managers: tuple[str, ...],
    limits: Limits, tz: ZoneInfo, catalog: Catalog | None = None,
) -> tuple[Person, list[dict[str, Any]], list[Effect]]:
    """`!transfer <case> @cm2` from the referent's desk; the receiver's caseload is checked."""
    person = await uow.persons.get(case_ref)
    if person is None:
        raise DomainError("error.unknown_case", case=case_ref)
    if person.referent != by:
        raise DomainError("error.transfer_not_referent", case=case_ref)
    if not person.is_open:
        raise DomainError("error.case_closed", case=case_ref)
    await uow.persons.lock(case_ref)
    load = await cases.load_caseload(uow, receiver, now, tz)
    load = replace(load, intake_this_month=load.intake_this_month
                   + await uow.handovers.transfers_in_since(receiver, cases.month_start(now, tz)))
    try:
        warnings = caseload.check_intake(load, limits)
    except DomainError as exc:
        raise DomainError("error.transfer_caseload_max", user=receiver, **exc.params) from None
    status = await plans.evaluation_status(uow, person)
    composed = handover.transfer(
        await uow.team.members(case_ref), await uow.plans.items(case_ref), case_ref, person.referent, receiver,
        case_managers=case_managers, last=status.last, due=status.due, by=by, now=now,
        person=person.display_name,
    )
    await uow.team.end(case_ref, composed.ended)
    if composed.added is not None:
        await uow.team.add(case_ref, composed.added)
    for item in composed.items:
        await uow.plans.save(case_ref, item)
    await uow.persons.set_referent(case_ref, receiver)
    await uow.handovers.add(composed.handover)
    figures = {"user": receiver, "active": load.active + 1, "target": limits.target,
               "count": load.intake_this_month + 1, "intake": limits.intake_per_month}
    log.info("file %s transferred to another case manager", case_ref)
    notes = [{"key": w.replace("warn.", "warn.transfer_"), "params": figures} for w in warnings]
    followed = await concertations.follow_team(
        uow, replace(person, referent=receiver),
        [(composed.ended.user_id, composed.added.user_id if composed.added else receiver)],
        now=now, catalog=catalog, tz=tz)
    return person, notes, [*(present(e) for e in composed.effects), *followed]


async def acknowledge(uow: UnitOfWork, person: Person, user: str, now: datetime) -> list[Effect]:
    """`!ack`: the successor closes the latest handover addressed to them."""
    if not person.is_open:
        raise DomainError("error.case_closed", case=person.case_ref)
    done, effects = handover.acknowledge(await uow.handovers.of_case(person.case_ref), user, now=now)
    assert done.id is not None
    await uow.handovers.acknowledge(done.id, now)
    return effects  # audited by the dispatcher, like every accepted command


class HandoverReminders:
    """The sweep: one reminder per handover left unacknowledged `days` days."""

    def __init__(self, db: Database, days: int = handover.DEFAULT_REMINDER_DAYS,
                 on_enqueued: Callable[[], None] | None = None, tz: ZoneInfo | None = None) -> None:
        self.db = db
        self.days = days
        self.tz = tz or ZoneInfo(DEFAULT_TIMEZONE)  # days are the territory's calendar days (SPEC §5)
        self.on_enqueued = on_enqueued or (lambda: None)

    async def sweep(self, now: datetime) -> int:
        sent = 0
        async with self.db.unit() as uow:
            # An hour's margin for the day summer time starts (71 hours); reminder_due decides.
            since = local_days.earlier(now, self.days, self.tz) + timedelta(hours=1)
            for record in await uow.handovers.reminder_candidates(since):
                h = record.handover
                if not handover.reminder_due(h, now, self.days, self.tz):
                    continue
                assert h.id is not None
                to = record.referent if h.kind is handover.HandoverKind.PROFESSIONAL else h.leaver
                has_desk = await uow.desks.room_of(to) is not None
                await enqueue(uow, f"handover-reminder:{h.id}", [handover.reminder(h, to, has_desk, now, self.tz)], now)
                await uow.handovers.mark_reminded(h.id, now)
                sent += 1
        if sent:
            self.on_enqueued()
        return sent
