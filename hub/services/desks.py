"""Desks: each configured case manager and pilot gets one direct room with the bot, once."""

from __future__ import annotations

from collections.abc import Container, Iterable
from datetime import datetime

from hub.domain.effects import CreateDesk, Effect, Notify
from hub.services.outbox import enqueue
from hub.services.readability import defer_welcome
from hub.storage.database import Database


async def ensure_desks(db: Database, people: Iterable[tuple[str, str]], now: datetime,
                       readable: Container[str] | None = None) -> int:
    """Open the missing desks; a restart opens none again (the desk row is the memory).
    The welcome is posted with the desk when its owner is in `readable` (None: everyone), else
    once they have a device that can read it (services/readability.py): posted before, it
    would stay undecryptable for them."""
    opened = 0
    async with db.unit() as uow:
        for user_id, role in people:
            if await uow.desks.ensure(user_id, role):
                effects: list[Effect] = [CreateDesk(user_id)]
                if readable is None or user_id in readable:
                    effects.append(Notify("command.reply", "", "desk.welcome", {}, desk=user_id))
                else:
                    await defer_welcome(uow, user_id, now)
                await enqueue(uow, f"desk:{user_id}", effects, now)
                opened += 1
    return opened


async def adopt_desk(db: Database, user_id: str, role: str, room_id: str) -> None:
    """A configured person invited the bot to a direct room: it becomes their desk."""
    async with db.unit() as uow:
        await uow.desks.ensure(user_id, role)
        await uow.desks.set_room(user_id, room_id)
