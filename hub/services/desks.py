"""Desks: each configured case manager and pilot gets one direct room with the bot, once.

The configuration is the authority (issue 17): at start, a desk whose owner is no longer
configured is closed (its owner is told, the bot leaves), and a changed role is written.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Container, Iterable
from datetime import datetime, timedelta

from hub.clock import Clock
from hub.domain.effects import TRIAGE_DESK, CreateDesk, Effect, InviteToDesk, LeaveRoom, Notify, RenewDesk
from hub.services.outbox import enqueue
from hub.services.readability import defer_welcome
from hub.services.referrals import give_up_referrer_room, renew_triage
from hub.storage.database import Database, UnitOfWork
from hub.storage.repositories import fit_key

log = logging.getLogger(__name__)


async def ensure_desks(db: Database, people: Iterable[tuple[str, str]], now: datetime,
                       readable: Container[str] | None = None) -> int:
    """Bring the desks in line with the configuration; return how many were opened.

    `people` is (user_id, role) for everyone configured. A restart opens none again (the desk
    row is the memory); the outbox keys carry `now`, so someone taken off the list and put back
    later gets a new desk. The welcome is posted with the desk when its owner is in `readable`
    (None: everyone), else once they have a device that can read it (services/readability.py):
    posted before, it would stay undecryptable for them.
    """
    configured = dict(people)
    opened = 0
    async with db.unit() as uow:
        for user_id, role, room_id in await uow.desks.all():
            if user_id == TRIAGE_DESK:
                continue  # the triage room is kept by services/referrals.ensure_triage
            if user_id not in configured:
                await _close(uow, user_id, room_id, now)
            elif configured[user_id] != role:
                await uow.desks.set_role(user_id, configured[user_id])
                log.info("a desk changed role to %s", configured[user_id])
        for user_id, role in configured.items():
            if await uow.desks.ensure(user_id, role):
                effects: list[Effect] = [CreateDesk(user_id)]
                if readable is None or user_id in readable:
                    effects.append(Notify("command.reply", "", "desk.welcome", {}, desk=user_id))
                else:
                    await defer_welcome(uow, user_id, now)
                await enqueue(uow, f"desk:{user_id}:{now.isoformat()}", effects, now)
                opened += 1
    return opened


async def _close(uow: UnitOfWork, user_id: str, room_id: str | None, now: datetime) -> None:
    await uow.desks.remove(user_id)
    if room_id is not None:
        effects: list[Effect] = [Notify("command.reply", "", "desk.closed", {}, room_id=room_id),
                                 LeaveRoom(room_id)]
        await enqueue(uow, f"desk-closed:{room_id}:{now.isoformat()}", effects, now)
    log.info("closed a desk whose owner is no longer configured")


async def adopt_desk(db: Database, user_id: str, role: str, room_id: str) -> None:
    """A configured person invited the bot to a direct room that passed the checks of
    bots/intake.py (encrypted, only the bot and them): it becomes their desk."""
    async with db.unit() as uow:
        await uow.desks.ensure(user_id, role)
        await uow.desks.set_room(user_id, room_id)


#: A lost desk is made anew at most once in this time per owner: an owner who keeps removing the
#: bot starts no loop; what is then posted to their desk fails and is reported to the pilots.
RENEW_AT_MOST_EVERY = timedelta(days=1)


async def renew_desk(uow: UnitOfWork, owner: str, room_id: str, now: datetime,
                     configured: Container[str] | None) -> bool:
    """The bot lost `room_id`, the desk of `owner` (removed from it, the room gone): open a new
    desk for them (invited, welcomed) and carry the notices still waiting for the old one there.
    Refused — False — for a desk that is no longer `room_id`, an owner no longer `configured`
    (None: everyone is), the triage room, the same loss seen twice (from a sync and from a
    failed send), and a second loss within RENEW_AT_MOST_EVERY: the desk then stays as it is,
    and what is posted there is set aside and reported to the pilots."""
    desk = await uow.desks.owner(room_id)
    if desk is None or desk[0] != owner or owner == TRIAGE_DESK:
        return False
    if configured is not None and owner not in configured:
        log.info("a desk of someone no longer configured was lost; not made anew")
        return False
    last_key = fit_key(f"desk-renewed:{owner}", 64)  # kv.key is 64 characters
    last = await uow.kv.get(last_key)
    if last is not None and now - datetime.fromisoformat(last) < RENEW_AT_MOST_EVERY:
        log.warning("a desk was lost again within %s of its renewal; not made anew", RENEW_AT_MOST_EVERY)
        return False
    cause = fit_key(f"desk-lost:{room_id}:{now.date().isoformat()}", 255)
    if not await uow.events.claim(cause, now):  # the same loss, handled meanwhile
        return False
    await uow.kv.set(last_key, now.isoformat())
    await uow.desks.set_room(owner, None)
    await uow.outbox.follow_desk(room_id, owner)
    await enqueue(uow, cause, [RenewDesk(owner, room_id),
                               Notify("command.reply", "", "desk.welcome", {}, desk=owner)], now)
    log.warning("the bot lost a desk; a new one is opened for its owner")
    return True


#: Memberships by which someone other than its owner could read what the bot says in a desk.
_INTRUSIONS = ("join", "invite", "knock")
#: Its owner's own departures, after which nobody reads what the bot posts there.
_OWNER_GONE = ("left", "declined")


class DeskGuard:
    """A desk stays a private room of the bot and its owner after adoption too (SPEC §3, issue 17
    §3): when anyone else joins it, is invited to it or knocks, the bot says so there (no
    content), leaves it, and opens a new desk for its owner. What the bot would answer there
    next (a caseload, names) must never reach a third person."""

    def __init__(self, db: Database, clock: Clock, on_enqueued: Callable[[], None] = lambda: None,
                 configured: Container[str] | None = None) -> None:
        self.db = db
        self.clock = clock
        self.on_enqueued = on_enqueued
        self.configured = configured  # the desks' owners by the configuration; None: anyone

    async def bot_removed(self, room_id: str, event_id: str, change: str) -> bool:
        """Intake's handler of the bot's own removal (kicked, banned — by someone else, an
        administrator deleting the room included): when `room_id` was a desk, a new one is
        opened for its owner (renew_desk); when it was the triage room, a new triage room
        (services/referrals.renew_triage). Handled once per event."""
        if change not in ("kicked", "banned"):
            return False
        now = self.clock.now()
        async with self.db.unit() as uow:
            desk = await uow.desks.owner(room_id)
            if desk is None:
                if await uow.referrals.referrer_of(room_id) is None or not await uow.events.claim(event_id, now):
                    return False
                await give_up_referrer_room(uow, room_id)  # its decisions wait for their next room
                log.info("the bot was removed from a referrer's room; their decisions wait for their next room")
                return False
            if not await uow.events.claim(event_id, now):
                return False
            if desk[0] == TRIAGE_DESK:
                renewed = await renew_triage(uow, room_id, now)
            else:
                renewed = await renew_desk(uow, desk[0], room_id, now, self.configured)
        if renewed:
            self.on_enqueued()
        return renewed

    async def unreachable(self, room_id: str, entry_id: int) -> bool:
        """The outbox could not act in `room_id` because the bot is not in it any more (403, 404):
        True when the entry is to wait and be tried again, its desk being (or having been)
        opened anew; False when it is to be set aside as before."""
        now = self.clock.now()
        async with self.db.unit() as uow:
            if await uow.outbox.get(entry_id) is None:
                return True  # set aside meanwhile (a decision for a referrer's room given up): done with
            desk = await uow.desks.owner(room_id)
            if desk is not None:
                if desk[0] == TRIAGE_DESK:
                    renewed = await renew_triage(uow, room_id, now)
                else:
                    renewed = await renew_desk(uow, desk[0], room_id, now, self.configured)
                # Refused because another unit of work (the bot's removal seen in a sync) claimed
                # this very loss meanwhile — on PostgreSQL both read the desk before either
                # committed: the desk is being opened anew, the entry waits for it.
                renewed = renewed or (await uow.desks.room_of(desk[0]) != room_id
                                      and await uow.desks.exists(desk[0]))
            elif await uow.referrals.referrer_of(room_id) is not None:
                # A referrer's room the bot was removed from (a sync may not have shown it yet):
                # the decision is told in their next room; this entry is set aside with it.
                await give_up_referrer_room(uow, room_id)
                entry = await uow.outbox.get(entry_id)
                return entry is None
            else:  # lost before: the entry now names the desk (the triage room's too), which is elsewhere
                entry = await uow.outbox.get(entry_id)
                owner = entry.payload.get("desk") if entry is not None else None
                renewed = bool(owner) and await uow.desks.room_of(str(owner)) != room_id \
                    and await uow.desks.exists(str(owner))
        if renewed:
            self.on_enqueued()
        return renewed

    async def on_membership(self, room_id: str, event_id: str, user_id: str, change: str) -> None:
        """Intake's membership handler: (room, event, the member whose membership changed, change)."""
        if change in _INTRUSIONS and await self.intruded(room_id, event_id, user_id):
            self.on_enqueued()
        elif change in _OWNER_GONE and await self.owner_gone(room_id, event_id, user_id):
            self.on_enqueued()

    async def owner_gone(self, room_id: str, event_id: str, user_id: str) -> bool:
        """The owner of a desk (or a referrer of their direct room) left it or declined it: the
        bot would go on posting there — reminders, replies, `delivery.failed` — to a room nobody
        reads, and Matrix accepts every such send, so nothing would ever fail and tell anyone.
        A desk's owner is invited back into it (what was posted meanwhile stays readable: history
        is visible from the invitation, and the invite comes first in the desk's lane); a
        referrer's room is given up, and their pending decisions wait for the next direct room
        they open (SPEC §9). Handled once per event."""
        now = self.clock.now()
        async with self.db.unit() as uow:
            desk = await uow.desks.owner(room_id)
            if desk is None:
                if await uow.referrals.referrer_of(room_id) != user_id or not await uow.events.claim(event_id, now):
                    return False
                await give_up_referrer_room(uow, room_id)
                await enqueue(uow, f"referrer-gone:{event_id}", [LeaveRoom(room_id)], now)
                log.info("left a referrer's room its referrer left")
                return True
            owner = desk[0]
            if owner != user_id or owner == TRIAGE_DESK or not await uow.events.claim(event_id, now):
                return False
            await enqueue(uow, f"desk-rejoin:{event_id}", [InviteToDesk(owner, owner)], now)
        log.warning("the owner of a desk left it; invited back")
        return True

    async def intruded(self, room_id: str, event_id: str, user_id: str) -> bool:
        """True when `user_id` entering `room_id` made a desk no longer private (handled once)."""
        now = self.clock.now()
        async with self.db.unit() as uow:
            desk = await uow.desks.owner(room_id)
            if desk is None:
                return await self._referrer_room_intruded(uow, room_id, event_id, user_id, now)
            if desk[0] == user_id or desk[0] == TRIAGE_DESK:
                return False  # the triage room has members by design (services/referrals.py)
            if not await uow.events.claim(event_id, now):
                return False
            owner = desk[0]
            await uow.desks.set_room(owner, None)
            await uow.outbox.follow_desk(room_id, owner)  # replies still waiting go to the new desk
            effects: list[Effect] = [
                Notify("command.reply", "", "desk.not_private", {}, room_id=room_id),
                LeaveRoom(room_id),
                RenewDesk(owner, room_id),
                Notify("command.reply", "", "desk.welcome", {}, desk=owner),
            ]
            await enqueue(uow, f"desk-not-private:{event_id}", effects, now)
        log.warning("left a desk that someone other than its owner entered; a new desk is opened")
        return True

    async def _referrer_room_intruded(self, uow: UnitOfWork, room_id: str, event_id: str, user_id: str,
                                      now: datetime) -> bool:
        """A referrer's direct room (SPEC §9) is guarded like a desk: the decision on a referral
        names the person, so when anyone else enters, the bot says so (no content), leaves, and
        answers the referrer's pending referrals in the next direct room they open with it."""
        referrer = await uow.referrals.referrer_of(room_id)
        if referrer is None or referrer == user_id or not await uow.events.claim(event_id, now):
            return False
        await give_up_referrer_room(uow, room_id)
        await enqueue(uow, f"referrer-not-private:{event_id}",
                      [Notify("command.reply", "", "referrer.not_private", {}, room_id=room_id), LeaveRoom(room_id)],
                      now)
        log.warning("left a referrer's room that someone else entered")
        return True
