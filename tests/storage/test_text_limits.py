"""The longest text the domain accepts is stored on every backend (PostgreSQL bounds columns; SQLite
does not), so a long text is refused with a clear message, never with an internal error (issue 17 §8)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from hub.domain import limits, plan
from hub.domain.persons import Person
from hub.domain.team import Member, Role
from hub.storage.database import Database

pytestmark = pytest.mark.db
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def longest(field: str) -> str:
    return "é" * limits.limit(field)  # two bytes each in UTF-8: columns count characters


async def test_the_longest_accepted_texts_are_stored(database: Database) -> None:
    person = Person("R-2026-0001", longest("name"), "@cm:x", NOW, None, ())
    item, _ = plan.add_item([], person.case_ref, longest("need"), longest("action"), provider_org=longest("provider"),
                            frequency=longest("frequency"), by="@cm:x", now=NOW)
    member = Member("@gp:x", Role.GP, NOW, longest("org"))
    async with database.unit() as uow:
        await uow.persons.add(person)
        await uow.team.add(person.case_ref, member)
        await uow.plans.save(person.case_ref, item)
    ended = Member("@gp:x", Role.GP, NOW, longest("org"), until=NOW, end_reason=longest("reason"))
    async with database.unit() as uow:
        await uow.team.end(person.case_ref, ended)
    async with database.unit() as uow:
        assert (await uow.persons.get(person.case_ref)) == person
        assert await uow.team.members(person.case_ref) == [ended]
        assert await uow.plans.items(person.case_ref) == [item]


async def test_a_hospital_sender_longer_than_its_column_is_stored_once(database: Database) -> None:
    sender, control_id = "S" * 300, "C" * 300
    async with database.unit() as uow:
        first = await uow.alerts.store_message("hl7", sender, control_id, "h" * 64, b"MSH|", NOW)
    async with database.unit() as uow:
        again = await uow.alerts.store_message("hl7", sender, control_id, "h" * 64, b"MSH|", NOW)
    assert first.created and not again.created and again.id == first.id


async def test_outbox_keys_built_from_the_longest_ids_are_kept_once(database: Database) -> None:
    key = "unreachable:!" + "r" * 254 + ":@" + "u" * 254 + ":0"  # room and user ids take 255 each
    other = key[:-1] + "1"
    async with database.unit() as uow:
        assert await uow.outbox.add(key, "notify", None, {}, NOW)
        assert await uow.outbox.add(other, "notify", None, {}, NOW)
    async with database.unit() as uow:
        assert not await uow.outbox.add(key, "notify", None, {}, NOW)
        entries = await uow.outbox.pending(NOW)
        await uow.outbox.done(entries[0].id, "$sent")
    async with database.unit() as uow:
        assert await uow.outbox.event_id_of(key) == "$sent"
    assert len({e.key for e in entries}) == 2 and all(len(e.key) <= 128 for e in entries)
