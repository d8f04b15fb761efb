"""Members who could not read a room and now can: say it in the room and catch them up.

The Matrix side (bots/readable.py) decides who is readable; this service keeps who was not
(`unreadable_members`) and, once they are, enqueues one catch-up per room and member. A desk's
welcome waits the same way for its owner's first readable device.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from hub.domain.catchup import catch_up_lines
from hub.domain.effects import Notify
from hub.domain.team import active
from hub.services.outbox import enqueue
from hub.storage.database import Database, UnitOfWork
from hub.storage.repos_readability import DESK_SCOPE

READABLE_KIND = "encryption.readable"


async def note_unreadable(uow: UnitOfWork, room_id: str, users: Iterable[str], now: datetime) -> None:
    for user in users:
        await uow.readability.note(room_id, user, now)


async def defer_welcome(uow: UnitOfWork, owner: str, now: datetime) -> None:
    await uow.readability.wait_again(DESK_SCOPE, owner, now)


async def waiting(db: Database) -> list[tuple[str, str]]:
    async with db.unit() as uow:
        return await uow.readability.waiting()


async def _in_team(uow: UnitOfWork, case_ref: str, user: str, referent: str) -> bool:
    return user == referent or any(m.user_id == user for m in active(await uow.team.members(case_ref)))


async def now_readable(db: Database, scope: str, user: str, now: datetime) -> int:
    """`user` has a device that may read `scope` now: enqueue the catch-up (once); returns the
    number of outbox entries added."""
    async with db.unit() as uow:
        if not await uow.readability.resolve(scope, user, now):
            return 0
        if scope == DESK_SCOPE:
            if not await uow.desks.exists(user):
                return 0  # closed meanwhile: its owner is no longer configured
            welcome = Notify("command.reply", "", "desk.welcome", {}, desk=user)
            # Keyed by time: a desk closed and opened again later gets its own welcome.
            return await enqueue(uow, f"desk:{user}:welcome:{now.isoformat()}", [welcome], now)
        person = await uow.persons.by_room(scope)
        if person is None:
            if await uow.desks.owner(scope) is None:
                return 0  # not a room of ours any more
            notice = Notify(READABLE_KIND, "", "encryption.readable_desk", {"user": user},
                            mentions=(user,), room_id=scope)
        elif person.closed_at is not None or not await _in_team(uow, person.case_ref, user, person.referent):
            return 0  # a closed file, or they left the team meanwhile: nothing to catch up on
        else:
            case_ref = person.case_ref
            due = await uow.plans.due_of(case_ref)
            lines = catch_up_lines(user, await uow.handovers.of_case(case_ref), await uow.plans.items(case_ref),
                                   due.next_due if due is not None else None,
                                   await uow.concertations.pending(case_ref))
            message = "encryption.readable" if lines else "encryption.readable_nothing"
            notice = Notify(READABLE_KIND, case_ref, message, {"user": user, "lines": lines},
                            mentions=(user,), room_id=scope)
        return await enqueue(uow, f"readable:{scope}:{user}", [notice], now)
