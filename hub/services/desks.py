"""Desks: each configured case manager and pilot gets one direct room with the bot, once."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from hub.domain.effects import CreateDesk, Effect, Notify
from hub.services.outbox import enqueue
from hub.storage.database import Database


async def ensure_desks(db: Database, people: Iterable[tuple[str, str]], now: datetime) -> int:
    """Open the missing desks; a restart opens none again (the desk row is the memory)."""
    opened = 0
    async with db.unit() as uow:
        for user_id, role in people:
            if await uow.desks.ensure(user_id, role):
                effects: list[Effect] = [
                    CreateDesk(user_id),
                    Notify("command.reply", "", "desk.welcome", {}, desk=user_id),
                ]
                await enqueue(uow, f"desk:{user_id}", effects, now)
                opened += 1
    return opened


async def adopt_desk(db: Database, user_id: str, role: str, room_id: str) -> None:
    """A configured person invited the bot to a direct room: it becomes their desk."""
    async with db.unit() as uow:
        await uow.desks.ensure(user_id, role)
        await uow.desks.set_room(user_id, room_id)
