"""Commands of SPEC §9 and §10 in an overseas territory (`[care] timezone = "Indian/Reunion"`):
"today", the month of the intake and the year of a reference are the territory's, never the
UTC ones nor Paris's (SPEC §5). Through the dispatcher, on a real database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hub.clock import FakeClock
from hub.commands.context import Settings
from hub.commands.dispatcher import Dispatcher
from hub.commands.registry import build_registry
from hub.domain.caseload import Limits
from hub.domain.effects import TRIAGE_DESK
from hub.domain.persons import Person
from hub.services.desks import adopt_desk
from hub.storage.database import Database

pytestmark = pytest.mark.db
CM1, CM2, COORD, DOC = "@cm1:x", "@cm2:x", "@coord:x", "@doc:x"
DESK1, TRIAGE, DM = "!desk1:x", "!triage:x", "!dm:x"
# 9 March 2026, 21:00 UTC: 22:00 in Paris, already 10 March 01:00 in La Réunion (UTC+4).
LATE_UTC = datetime(2026, 3, 9, 21, 0, tzinfo=UTC)


class Directory:
    async def user_exists(self, user_id: str) -> bool:
        return True


async def _notices(database: Database) -> list[dict[str, Any]]:
    async with database.unit() as uow:
        entries = await uow.outbox.pending(datetime(2030, 1, 1, tzinfo=UTC))
    return [e.payload for e in entries if e.action == "notify"]


async def _setup(database: Database, start: datetime) -> tuple[Dispatcher, FakeClock]:
    await adopt_desk(database, CM1, "case_manager", DESK1)
    async with database.unit() as uow:
        await uow.desks.ensure(TRIAGE_DESK, "triage")
        await uow.desks.set_room(TRIAGE_DESK, TRIAGE)
        await uow.referrals.add_referrer_room(DM, DOC)
    clock = FakeClock(start, "Indian/Reunion")
    settings = Settings(language="fr", bot_user="@bot:x", allowed_servers=("x",), limits=Limits(40, 60, 5),
                        case_managers=(CM1, CM2), pilots=(), coordinators=(COORD,))
    return Dispatcher(database, build_registry(), settings, clock, Directory()), clock


async def _say(d: Dispatcher, event: str, sender: str, room: str, text: str) -> None:
    assert await d.handle(event, sender, room, {"msgtype": "m.text", "body": text})


async def test_an_aggir_evaluation_typed_after_midnight_in_la_reunion_is_dated_that_day(database: Database) -> None:
    d, _clock = await _setup(database, LATE_UTC)
    await _say(d, "$new", CM1, DESK1, '!nouveau "Paulette Exemple"')
    async with database.unit() as uow:
        ref = (await uow.persons.active_refs(CM1))[0]
        await uow.persons.set_room(ref, "!room:x")
    # Today in La Réunion is 10/03/2026: typing that date is not "in the future"…
    await _say(d, "$e1", CM1, "!room:x", "!eval faite 10/03/2026 --outil AGGIR --grille CCCCCCCCAA")
    # …and without a date the evaluation is dated 10 March, not Paris's (or UTC's) 9 March.
    await _say(d, "$e2", CM1, "!room:x", "!eval faite --outil AGGIR --grille AAAAAAAAAA")
    messages = [(n["message"], n["params"]) for n in await _notices(database)]
    recorded = [p for m, p in messages if m == "eval.recorded"]
    assert [p["date"] for p in recorded] == ["2026-03-10", "2026-03-10"], messages
    reviews = [p for m, p in messages if m == "rights.review"]
    assert [(p["old"], p["new"], p["date"]) for p in reviews] == [
        ({"key": "rights.no_previous"}, 1, "2026-03-10"), (1, 6, "2026-03-10")]


async def test_accept_counts_the_intake_of_the_territory_month_and_numbers_in_its_year(database: Database) -> None:
    # cm1 opened 5 files on 1 April 2026 between 00:30 and 01:30 in La Réunion (31 March in Paris
    # and in UTC): their April intake is reached; cm2 has less room but has taken none this month.
    d, clock = await _setup(database, datetime(2026, 2, 10, 8, 0, tzinfo=UTC))
    async with database.unit() as uow:
        for n in range(6):
            await uow.persons.add(Person(case_ref=f"R-2026-9{n:03d}", display_name=f"B {n}", referent=CM2,
                                         opened_at=datetime(2026, 2, 10, 8, 0, tzinfo=UTC)))
        for n in range(5):
            opened = datetime(2026, 3, 31, 20, 30, tzinfo=UTC) + timedelta(minutes=10 * n)
            await uow.persons.add(Person(case_ref=f"R-2026-8{n:03d}", display_name=f"A {n}", referent=CM1,
                                         opened_at=opened))
    clock.set(datetime(2026, 4, 2, 8, 0, tzinfo=UTC))
    await _say(d, "$ref", DOC, DM, '!orienter "Paulette Exemple" --naissance 1938-07-14 --motif "chutes"')
    await _say(d, "$crit", COORD, TRIAGE, "!orientation criteres O-2026-0001 autonomie=oui aides=oui coordination=oui")
    await _say(d, "$acc", COORD, TRIAGE, "!orientation accepter O-2026-0001")
    replies = {n["message"]: n["params"] for n in await _notices(database)}
    assert "reply.referral_accepted" in replies, replies
    assert replies["reply.referral_accepted"]["cm"] == CM2  # not cm1, whose April intake is full
    async with database.unit() as uow:
        assert len(await uow.persons.active_refs(CM2)) == 7


async def test_a_referral_received_on_new_year_night_in_la_reunion_takes_the_new_year(database: Database) -> None:
    # 31 December 2026, 21:00 UTC: 1 January 2027, 01:00 in La Réunion.
    d, _clock = await _setup(database, datetime(2026, 12, 31, 21, 0, tzinfo=UTC))
    await _say(d, "$ref", DOC, DM, '!orienter "Paulette Exemple" --naissance 1938-07-14 --motif "chutes"')
    replies = [n["params"] for n in await _notices(database) if n["message"] == "reply.refer"]
    assert replies == [{"ref": "O-2027-0001"}]
