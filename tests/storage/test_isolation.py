"""Two units of work on one person never interleave between reading and writing (issue 17 item 9).

An alert and a command for the same person arrive at once: each unit locks the person, reads
what it will change and writes it back. On PostgreSQL the lock is SELECT … FOR UPDATE; on SQLite
(the default) every unit begins with BEGIN IMMEDIATE, so the second one waits for the first.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime

import pytest

from hub.domain.persons import Person
from hub.storage.database import Database

pytestmark = pytest.mark.db
NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
REF = "R-2026-0001"
#: How long the first unit holds on after reading, waiting to see whether the second can read too.
OVERLAP_S = 1.0


async def test_two_concurrent_units_on_one_person_run_one_after_the_other(database: Database) -> None:
    async with database.unit() as uow:
        await uow.persons.add(Person(REF, "Jeanne Dupont", "@cm:x", NOW, date(1940, 2, 3)))
        await uow.kv.set(f"counter:{REF}", "0")
    first_read = asyncio.Event()
    second_read = asyncio.Event()
    order: list[str] = []

    async def increment(name: str, read: asyncio.Event, then: asyncio.Event | None) -> None:
        async with database.unit() as uow:
            await uow.persons.lock(REF)  # the services' per-person lock
            value = int(await uow.kv.get(f"counter:{REF}") or "0")
            order.append(f"{name} read {value}")
            read.set()
            if then is not None:
                # Give the other unit every chance to read the same value before this one writes.
                try:
                    await asyncio.wait_for(then.wait(), OVERLAP_S)
                except TimeoutError:
                    pass
            await uow.kv.set(f"counter:{REF}", str(value + 1))
            order.append(f"{name} wrote {value + 1}")

    first = asyncio.create_task(increment("alert", first_read, second_read))
    await asyncio.wait_for(first_read.wait(), 10)
    second = asyncio.create_task(increment("command", second_read, None))
    await asyncio.wait_for(asyncio.gather(first, second), 60)

    async with database.unit() as uow:
        assert await uow.kv.get(f"counter:{REF}") == "2", order
    assert order == ["alert read 0", "alert wrote 1", "command read 1", "command wrote 2"]
