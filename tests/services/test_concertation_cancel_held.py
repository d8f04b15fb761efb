"""A concertation that has started and whose decisions are being taken down did happen: cancelling
it then would send a METHOD:CANCEL for a meeting in progress and drop its decisions (the minutes
only follow a pending concertation). It is refused; one that started without any decision (nobody
came) can still be cancelled."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from hub.domain.effects import Notify
from hub.domain.errors import DomainError
from hub.domain.persons import Person
from hub.domain.team import Member, Role
from hub.i18n.catalog import Catalog
from hub.services import concertations
from hub.storage.database import Database

pytestmark = pytest.mark.db
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
REF = "R-2026-0001"
CM, GP = "@cm:x", "@gp:x"
CATALOG = Catalog("fr")


async def _file(database: Database) -> Person:
    person = Person(REF, "Jeanne Dupont", CM, NOW)
    async with database.unit() as uow:
        await uow.persons.add(person)
        await uow.persons.set_room(REF, "!room:x")
        for user, role in ((CM, Role.CASE_MANAGER), (GP, Role.GP)):
            await uow.team.add(REF, Member(user, role, NOW))
        await concertations.plan(uow, person, date(2026, 3, 10), "14:00", minutes=60, place=None, visio=None,
                                 with_=(), by=CM, now=NOW, catalog=CATALOG, bot_user="@relais:x")
        c = await uow.concertations.pending(REF)
    assert c is not None
    return person


async def test_a_concertation_with_decisions_taken_down_cannot_be_cancelled_and_its_minutes_go_out(
        database: Database) -> None:
    person = await _file(database)
    async with database.unit() as uow:
        c = await uow.concertations.pending(REF)
        assert c is not None
        during = c.starts_at + timedelta(minutes=20)
        await concertations.decide(uow, person, "Passage infirmier quotidien", None, by=CM, now=during)
    with pytest.raises(DomainError) as refused:
        async with database.unit() as uow:
            await concertations.cancel(uow, person, by=CM, now=during + timedelta(minutes=5), catalog=CATALOG)
    assert refused.value.key == "error.concertation_cancel_decided"
    assert refused.value.params["count"] == 1
    # The decision reaches the minutes once the concertation closes.
    sweeper = concertations.ConcertationSweeper(database)
    assert await sweeper.sweep(c.closes_at) == 1
    async with database.unit() as uow:
        [(held, decisions)] = await uow.concertations.of_case(REF)
    assert held.state.value == "held" and [d.text for d in decisions] == ["Passage infirmier quotidien"]
    Catalog("fr").text("error.concertation_cancel_decided", count=1)
    Catalog("en").text("error.concertation_cancel_decided", count=2)


async def test_a_concertation_nobody_came_to_can_still_be_cancelled_once_started(database: Database) -> None:
    person = await _file(database)
    async with database.unit() as uow:
        c = await uow.concertations.pending(REF)
        assert c is not None
        effects = await concertations.cancel(uow, person, by=CM, now=c.starts_at + timedelta(minutes=15),
                                             catalog=CATALOG)
    assert [e.message for e in effects if isinstance(e, Notify)] == ["concertation.cancelled"]
    async with database.unit() as uow:
        assert await uow.concertations.pending(REF) is None
