"""A pending concertation's list follows the team: whoever leaves is off it (and off its
invitation), their successor on it, whatever way they left (handover, transfer, consent, leave)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from icalendar import Calendar

from hub.clock import FakeClock
from hub.domain import concertation as cc
from hub.domain.caseload import Limits
from hub.domain.consent import Scope, Status
from hub.domain.continuity import Source
from hub.domain.effects import Effect, Notify, SendFile
from hub.domain.persons import Person
from hub.domain.team import Member, Role
from hub.i18n.catalog import Catalog
from hub.services import concertations, consent, handovers, ical
from hub.services.continuity import MembershipWatcher
from hub.storage.database import Database

pytestmark = pytest.mark.db
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
REF = "R-2026-0001"
CM, GP, NURSE, NURSE2, CARER = "@cm:x", "@gp:x", "@nurse:x", "@nurse2:x", "@carer:x"
CATALOG = Catalog("fr")


async def _file(database: Database, *, with_: tuple[str, ...] = ()) -> Person:
    person = Person(REF, "Jeanne Dupont", CM, NOW)
    async with database.unit() as uow:
        await uow.persons.add(person)
        await uow.persons.set_room(REF, "!room:x")
        for user, role in ((CM, Role.CASE_MANAGER), (GP, Role.GP), (NURSE, Role.NURSE)):
            await uow.team.add(REF, Member(user, role, NOW))
        if CARER in with_:
            await consent.record(uow, person, Status.GIVEN, Scope.EXTENDED, None, None, by=CM, now=NOW)
            await uow.team.add(REF, Member(CARER, Role.CARER, NOW))
        await concertations.plan(uow, person, date(2026, 3, 10), "14:00", minutes=None, place=None, visio=None,
                                 with_=with_, by=CM, now=NOW, catalog=CATALOG, bot_user="@relais:x")
    return person


def _attendees(effects: list[Effect]) -> tuple[int, set[str]]:
    """The updated invitation's SEQUENCE and attendees (as Matrix URIs)."""
    [file] = [e for e in effects if isinstance(e, SendFile)]
    [event] = Calendar.from_ical(file.data).walk("VEVENT")
    people = event.get("attendee")
    return int(event["sequence"]), {str(a) for a in (people if isinstance(people, list) else [people])}


async def _pending(database: Database) -> cc.Concertation:
    async with database.unit() as uow:
        c = await uow.concertations.pending(REF)
    assert c is not None
    return c


async def test_a_removal_with_a_successor_puts_the_successor_on_the_list_and_the_invitation(
        database: Database) -> None:
    person = await _file(database)
    assert (await _pending(database)).participants == (GP, NURSE)
    async with database.unit() as uow:
        effects = await handovers.remove_member(
            uow, person, NURSE, NURSE2, "mutation", organisation=None, by=CM, now=NOW + timedelta(hours=1),
            allowed_servers=("x",), bot_user="@relais:x", catalog=CATALOG)
    c = await _pending(database)
    assert c.participants == (GP, NURSE2) and c.organiser == CM and c.sequence == 1
    [notice] = [e for e in effects if isinstance(e, Notify) and e.message == "concertation.attendees_changed"]
    assert notice.kind == "concertation.moved" and notice.mentions == (CM, GP, NURSE2)
    assert notice.params["leaver"] == NURSE
    assert _attendees(effects) == (1, {ical.matrix_uri(u) for u in (CM, GP, NURSE2)})  # the leaver is off
    # The next reminder goes to the team as it now stands.
    _, reminder = cc.reminded(c, cc.Reminder.DAY, c.starts_at - timedelta(hours=23))
    assert NURSE not in reminder.mentions and NURSE2 in reminder.mentions


async def test_a_removal_without_successor_and_a_leave_take_the_member_off(database: Database) -> None:
    person = await _file(database)
    async with database.unit() as uow:
        effects = await handovers.remove_member(
            uow, person, NURSE, None, None, organisation=None, by=CM, now=NOW, allowed_servers=("x",),
            bot_user="@relais:x", catalog=CATALOG)
    assert (await _pending(database)).participants == (GP,)
    assert _attendees(effects)[0] == 1
    watcher = MembershipWatcher(database, FakeClock(NOW + timedelta(hours=1)), catalog=CATALOG)
    assert await watcher.member_left("!room:x", "$leave", GP, Source.LEFT)
    c = await _pending(database)
    assert c.participants == () and c.sequence == 2
    async with database.unit() as uow:
        later = await uow.outbox.pending(NOW + timedelta(days=1))
    messages = [e.payload.get("message") for e in later]
    assert "concertation.attendees_changed" in messages


async def test_a_withdrawn_consent_takes_the_carer_off_and_a_transfer_hands_the_organiser_on(
        database: Database) -> None:
    person = await _file(database, with_=(GP, CARER))
    async with database.unit() as uow:
        effects = await consent.record(uow, person, Status.REFUSED, None, None, None, by=CM,
                                       now=NOW + timedelta(hours=1), catalog=CATALOG)
    assert (await _pending(database)).participants == (GP,)
    assert [type(e).__name__ for e in effects][-1] == "SendFile"
    async with database.unit() as uow:
        await uow.team.add(REF, Member("@cm2:x", Role.CASE_MANAGER, NOW))
    async with database.unit() as uow:
        await handovers.transfer(uow, REF, "@cm2:x", by=CM, now=NOW + timedelta(hours=2),
                                 case_managers=(CM, "@cm2:x"), limits=Limits(40, 60, 5),
                                 tz=FakeClock(NOW).tz, catalog=CATALOG)
    c = await _pending(database)
    assert c.organiser == "@cm2:x" and CM not in c.everyone()


async def test_nothing_changes_when_the_leaver_was_not_invited_or_the_meeting_has_started(
        database: Database) -> None:
    person = await _file(database, with_=(GP,))
    async with database.unit() as uow:
        assert await concertations.follow_team(uow, person, [(NURSE, None)], now=NOW) == []
        started = datetime(2026, 3, 10, 13, 5, tzinfo=UTC)
        assert await concertations.follow_team(uow, person, [(GP, None)], now=started) == []
    assert (await _pending(database)).sequence == 0
