"""A member with no cross-signed device is recorded and reported once per room, and the sends
after that do not touch the database (issue 18: it was a write unit on every notice's path)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event

from hub.bots.trust import UNREACHABLE_KIND, UnreachableNotices
from hub.clock import FakeClock
from hub.domain.persons import Person
from hub.domain.team import Member, Role
from hub.storage.database import Database

pytestmark = pytest.mark.db
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
ROOM = "!R-2026-0001:x"


async def _reports(database: Database) -> list[dict[str, Any]]:
    async with database.unit() as uow:
        entries = await uow.outbox.pending(NOW + timedelta(days=1))
    return [e.payload for e in entries if e.payload.get("kind") == UNREACHABLE_KIND]


async def test_a_member_who_cannot_read_is_reported_once_and_later_sends_touch_nothing(database: Database) -> None:
    async with database.unit() as uow:
        await uow.persons.add(Person("R-2026-0001", "Jeanne Dupont", "@cm:x", NOW))
        await uow.persons.set_room("R-2026-0001", ROOM)
        await uow.team.add("R-2026-0001", Member("@gp:x", Role.GP, NOW))
    told: list[int] = []
    notices = UnreachableNotices(database, FakeClock(NOW), on_enqueued=lambda: told.append(1))
    await notices(ROOM, ("@gp:x",))
    assert [p["params"]["user"] for p in await _reports(database)] == ["@gp:x"] and told == [1]

    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(database.engine.sync_engine, "before_cursor_execute", count)
    try:
        await notices(ROOM, ("@gp:x",))  # the next send to that room: nothing new
        assert statements == []
        await notices(ROOM, ("@gp:x", "@nurse:x"))  # a second member who cannot read: told once
        assert statements != []
    finally:
        event.remove(database.engine.sync_engine, "before_cursor_execute", count)
    assert [p["params"]["user"] for p in await _reports(database)] == ["@gp:x", "@nurse:x"]
    assert told == [1, 1]
    # A new process (a restart) asks the database again, which still says "already told".
    await UnreachableNotices(database, FakeClock(NOW))(ROOM, ("@gp:x", "@nurse:x"))
    assert len(await _reports(database)) == 2
