"""A year of case management on the selected backend: the plan's territory days, review dates,
consent at handovers and withdrawals, a file closed with a meeting planned."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from hub.domain import concertation as cc
from hub.domain.closure import CloseReason
from hub.domain.consent import Scope, Status
from hub.domain.effects import Kick, Notify, SendFile
from hub.domain.errors import DomainError
from hub.domain.persons import Person
from hub.domain.plan import PlanError
from hub.domain.team import Member, Role
from hub.i18n.catalog import Catalog
from hub.services import closure, concertations, consent, handovers, plans
from hub.storage.database import Database

pytestmark = pytest.mark.db
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
CM, GP, CARER, CARER2 = "@cm:x", "@gp:x", "@carer:x", "@carer2:x"
REF = "R-2026-0001"


async def _file(database: Database, *extra: Member) -> Person:
    person = Person(REF, "Jeanne Dupont", CM, NOW)
    async with database.unit() as uow:
        await uow.persons.add(person)
        await uow.persons.set_room(REF, "!room:x")
        for member in (Member(CM, Role.CASE_MANAGER, NOW), Member(GP, Role.GP, NOW), *extra):
            await uow.team.add(REF, member)
    return person


async def _add(database: Database, person: Person, need: str, *, provider: str | None = None,
               review: date | None = None, now: datetime = NOW) -> None:
    async with database.unit() as uow:
        await plans.add_item(uow, person, need, "Action", provider=provider, frequency=None, start=None,
                             review=review, by=CM, now=now)


async def test_the_plan_as_of_a_day_ends_at_the_territorys_midnight(database: Database) -> None:
    """`!plan au 2026-03-01`: an item added at 00:30 in Paris on 2 March (23:30 UTC on the 1st)
    was not in the plan of the 1st; in summer (UTC+2), 01:30 on 1 July neither."""
    person = await _file(database)
    await _add(database, person, "Toilette", now=datetime(2026, 3, 1, 22, 59, tzinfo=UTC))  # 23:59 Paris
    await _add(database, person, "Repas", now=datetime(2026, 3, 1, 23, 30, tzinfo=UTC))  # 00:30 on the 2nd
    await _add(database, person, "Chutes", now=datetime(2026, 6, 30, 23, 30, tzinfo=UTC))  # 01:30 on 1 July
    paris = ZoneInfo("Europe/Paris")
    async with database.unit() as uow:
        first = await plans.view(uow, person, date(2026, 3, 1), paris)
        second = await plans.view(uow, person, date(2026, 3, 2), paris)
        june = await plans.view(uow, person, date(2026, 6, 30), paris)
        reunion = await plans.view(uow, person, date(2026, 3, 1), ZoneInfo("Indian/Reunion"))  # UTC+4
    assert [i.need for i in first.open] == ["Toilette"]
    assert [i.need for i in second.open] == ["Toilette", "Repas"]
    assert [i.need for i in june.open] == ["Toilette", "Repas"]
    assert [i.need for i in reunion.open] == []  # 02:59 and 03:30 on the 2nd there


async def test_a_review_date_already_gone_by_is_refused_and_nothing_changes(database: Database) -> None:
    person = await _file(database)
    paris = ZoneInfo("Europe/Paris")
    late_evening = datetime(2026, 3, 1, 23, 30, tzinfo=UTC)  # already 2 March in Paris
    async with database.unit() as uow:
        with pytest.raises(PlanError) as refused:
            await plans.add_item(uow, person, "Soins", "Pansements", provider=None, frequency=None, start=None,
                                 review=date(2026, 3, 1), by=CM, now=late_evening, tz=paris)
    assert refused.value.key == "error.plan_review_past"
    assert refused.value.params == {"review": "2026-03-01", "today": "2026-03-02"}
    async with database.unit() as uow:  # today is fine, and so is a start date in the past
        await plans.add_item(uow, person, "Soins", "Pansements", provider=None, frequency=None,
                             start=date(2026, 1, 5), review=date(2026, 3, 2), by=CM, now=late_evening, tz=paris)
    later = NOW + timedelta(days=30)
    async with database.unit() as uow:
        versions = await uow.plans.versions(REF)
        with pytest.raises(PlanError) as refused:
            await plans.set_item(uow, person, 1, {"review": date(2026, 3, 31)}, by=CM, now=later, tz=paris)
        assert refused.value.key == "error.plan_review_past"
        # Another change to an item whose review has gone by keeps it: that is what the prompt is for.
        await plans.set_item(uow, person, 1, {"status": "in_place"}, by=CM, now=later, tz=paris)
        await plans.set_item(uow, person, 1, {"review": date(2026, 4, 1)}, by=CM, now=later, tz=paris)
    async with database.unit() as uow:
        after = await uow.plans.versions(REF)
    assert len(after) == len(versions) + 2
    assert (await _items(database))[0].review == date(2026, 4, 1)


async def _items(database: Database) -> list[plans.PlanItem]:
    async with database.unit() as uow:
        return await uow.plans.items(REF)


async def test_a_carers_successor_joins_only_with_extended_consent(database: Database) -> None:
    """`!equipe retirer @carer --successeur @carer2`: the successor joins as a carer, outside the
    care team, so the person's extended consent is needed as for `!equipe ajouter` (L1110-4)."""
    person = await _file(database)
    async with database.unit() as uow:
        await consent.record(uow, person, Status.GIVEN, Scope.EXTENDED, None, None, by=CM, now=NOW)
        await uow.team.add(REF, Member(CARER, Role.CARER, NOW))
    await _add(database, person, "Courses", provider=CARER)
    async with database.unit() as uow:
        await consent.record(uow, person, Status.REFUSED, Scope.EXTENDED, None, None, by=CM, now=NOW)
        await uow.team.add(REF, Member(CARER, Role.CARER, NOW))  # as if still there (an older file)
    kw = {"organisation": None, "by": CM, "now": NOW + timedelta(hours=1), "allowed_servers": ("x",),
          "bot_user": "@relais:x"}
    async with database.unit() as uow:
        with pytest.raises(DomainError) as refused:
            await handovers.remove_member(uow, person, CARER, CARER2, "déménage", **kw)  # type: ignore[arg-type]
    assert refused.value.key == "error.consent_refused_extended"
    async with database.unit() as uow:
        active = [m.user_id for m in await uow.team.members(REF) if m.active]
        assert CARER2 not in active and CARER in active
        assert await uow.handovers.of_case(REF) == []
    # A professional's successor needs no consent.
    async with database.unit() as uow:
        await uow.team.add(REF, Member("@nurse:x", Role.NURSE, NOW))
    async with database.unit() as uow:
        await handovers.remove_member(uow, person, "@nurse:x", "@nurse2:x", None, **kw)  # type: ignore[arg-type]


async def test_withdrawn_consent_leaves_no_plan_item_with_the_removed_carer(database: Database) -> None:
    """The carer leaves with the consent; the items they provided lose them and are flagged
    (SPEC §5 `continuity.break`: a plan item lost its provider), as a removal without successor."""
    person = await _file(database)
    async with database.unit() as uow:
        await consent.record(uow, person, Status.GIVEN, Scope.EXTENDED, None, None, by=CM, now=NOW)
        await uow.team.add(REF, Member(CARER, Role.CARER, NOW))
    await _add(database, person, "Courses", provider=CARER)
    await _add(database, person, "Soins", provider=GP)
    withdrawn = NOW + timedelta(days=3)
    async with database.unit() as uow:
        effects = await consent.record(uow, person, Status.REFUSED, None, None, None, by=CM, now=withdrawn)
    notices = [e for e in effects if isinstance(e, Notify)]
    assert [(n.kind, n.message) for n in notices] == [
        ("consent.update", "consent.recorded"), ("plan.update", "plan.changed"),
        ("continuity.break", "plan.provider_lost")]
    assert [e.user_id for e in effects if isinstance(e, Kick)] == [CARER]
    assert CM in notices[-1].mentions and CARER not in notices[-1].mentions
    items = await _items(database)
    assert [(i.need, i.provider_user) for i in items] == [("Courses", None), ("Soins", GP)]
    async with database.unit() as uow:
        breaks = await uow.handovers.breaks(REF)
    assert [(b.source.value, b.subject) for b in breaks] == [("no_successor", CARER)]


async def test_closing_a_file_cancels_its_planned_concertation_in_the_calendars(database: Database) -> None:
    """The participants got an invitation; the file closes before the meeting: they get the
    cancellation (same UID, next SEQUENCE, METHOD:CANCEL) before they leave the room."""
    person = await _file(database, Member("@nurse:x", Role.NURSE, NOW))
    catalog = Catalog("fr")
    async with database.unit() as uow:
        planned = await concertations.plan(uow, person, date(2026, 3, 10), "14:00", minutes=60, place=None,
                                           visio=None, with_=(), by=CM, now=NOW, catalog=catalog, bot_user="@relais:x")
    invitation = planned[-1]
    assert isinstance(invitation, SendFile)
    async with database.unit() as uow:
        effects = await closure.close_file(uow, person, CloseReason.INSTITUTION, by=CM, now=NOW + timedelta(days=2),
                                           catalog=catalog)
    kinds = [e.kind if isinstance(e, (Notify, SendFile)) else type(e).__name__ for e in effects]
    assert kinds == ["concertation.cancelled", "concertation.cancelled", "case.closed", "Kick", "Kick", "Kick"]
    cancel = effects[1]
    assert isinstance(cancel, SendFile) and "METHOD:CANCEL" in cancel.data and "SEQUENCE:1" in cancel.data
    uid = next(line for line in invitation.data.splitlines() if line.startswith("UID:"))
    assert uid in cancel.data.splitlines()
    assert "DTSTART;TZID=Europe/Paris:20260310T140000" in cancel.data
    async with database.unit() as uow:
        assert await uow.concertations.pending(REF) is None
        [(c, _)] = await uow.concertations.of_case(REF)
    assert c.state is cc.State.CANCELLED and c.sequence == 1


async def test_closing_a_file_after_its_meeting_ended_sends_no_cancellation(database: Database) -> None:
    person = await _file(database)
    catalog = Catalog("fr")
    async with database.unit() as uow:
        await concertations.plan(uow, person, date(2026, 3, 10), "14:00", minutes=30, place=None, visio=None,
                                 with_=(), by=CM, now=NOW, catalog=catalog, bot_user="@relais:x")
    over = cc.local_start(date(2026, 3, 10), "14:00") + timedelta(minutes=40)  # ended, minutes not yet posted
    async with database.unit() as uow:
        effects = await closure.close_file(uow, person, CloseReason.DEATH, by=CM, now=over, catalog=catalog)
    assert [e.kind for e in effects if isinstance(e, Notify)] == ["case.closed"]
