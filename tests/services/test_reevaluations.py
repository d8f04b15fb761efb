"""The sweeps on a real database, with a clock the test moves: each prompt once, late not lost."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, update

from hub.clock import FakeClock
from hub.domain.persons import Person
from hub.domain.settings import Setting
from hub.domain.team import Member, Role
from hub.scheduler import Scheduler
from hub.services import plans
from hub.services.reevaluations import PromptSweeper
from hub.storage.database import Database
from hub.storage.models import PersonRow

PARIS = ZoneInfo("Europe/Paris")

pytestmark = pytest.mark.db
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
REF = "R-2026-0001"
CM, GP, NURSE = "@cm:x", "@gp:x", "@nurse:x"


async def _open(db: Database, ref: str = REF, *, evaluated_on: date | None = None) -> Person:
    person = Person(ref, "Jeanne Dupont", CM, T0)
    async with db.unit() as uow:
        await uow.persons.add(person)
        await uow.team.add(ref, Member(CM, Role.CASE_MANAGER, T0))
        await uow.team.add(ref, Member(GP, Role.GP, T0))
        await uow.team.add(ref, Member(NURSE, Role.NURSE, T0))
        if evaluated_on is not None:
            await plans.record_evaluation(uow, person, evaluated_on, tool="interRAI-HC", reason=None, gir=None,
                                          by=CM, now=T0, interval_days=182, tz=PARIS)
    return person


async def _prompts(db: Database) -> list[tuple[str, dict[str, Any]]]:
    """Every prompt in the outbox, oldest first: (key, payload)."""
    async with db.unit() as uow:
        entries = await uow.outbox.pending(datetime(2100, 1, 1, tzinfo=UTC), limit=1000)
    return [(e.key, e.payload) for e in entries if e.key.startswith("prompt:")]


def at(day: date) -> datetime:
    return datetime.combine(day, T0.timetz())


async def test_upcoming_due_and_overdue_are_each_sent_once_in_their_room(database: Database) -> None:
    await _open(database, evaluated_on=T0.date())
    due = T0.date() + timedelta(days=182)
    sweeper = PromptSweeper(database, interval_days=182)
    expected = [
        (due - timedelta(days=15), None),
        (due - timedelta(days=14), "upcoming"),
        (due - timedelta(days=10), None),
        (due - timedelta(days=1), None),
        (due, "due"),
        (due + timedelta(days=6), None),
        (due + timedelta(days=7), "overdue"),
        (due + timedelta(days=13), None),
        (due + timedelta(days=14), "overdue"),
    ]
    for day, kind in expected:
        for _hourly in range(2):  # the same day swept twice sends nothing new
            await sweeper.sweep(at(day))
        got = [p for _k, p in await _prompts(database)]
        assert len(got) == sum(1 for d, k in expected if k and d <= day), day
        if kind is not None:
            last = got[-1]
            assert last["kind"] == f"reevaluation.{kind}" and last["case_ref"] == REF
            assert last["params"]["due"] == due.isoformat()
            assert last["mentions"] == [CM, GP]  # the case manager and the GP, not the nurse
            assert last["room_id"] is None and last["desk"] is None  # to the person's own room
    keys = [k for k, _p in await _prompts(database)]
    assert keys == [f"prompt:{REF}:upcoming:{due}:0", f"prompt:{REF}:due:{due}:0",
                    f"prompt:{REF}:overdue:{due}:1:0", f"prompt:{REF}:overdue:{due}:2:0"]


async def test_a_due_date_passed_while_down_is_sent_late_once(database: Database) -> None:
    await _open(database, evaluated_on=T0.date())
    due = T0.date() + timedelta(days=182)
    sweeper = PromptSweeper(database, interval_days=182)
    assert await sweeper.sweep(at(due - timedelta(days=1))) == 1  # upcoming
    # Down from the day before until three days after the due date.
    assert await sweeper.sweep(at(due + timedelta(days=3))) == 1
    assert await sweeper.sweep(at(due + timedelta(days=3, hours=5))) == 0
    kinds = [p["kind"] for _k, p in await _prompts(database)]
    assert kinds == ["reevaluation.upcoming", "reevaluation.due"]
    assert (await _prompts(database))[-1][1]["params"]["days"] == 3


async def test_a_new_file_is_due_at_once_and_an_evaluation_moves_the_date(database: Database) -> None:
    person = await _open(database)
    sweeper = PromptSweeper(database, interval_days=182)
    assert await sweeper.sweep(T0) == 1
    assert [p["kind"] for _k, p in await _prompts(database)] == ["reevaluation.due"]
    async with database.unit() as uow:
        _evaluation, status = await plans.record_evaluation(
            uow, person, None, tool=None, reason=None, gir=None, by=CM, now=T0 + timedelta(days=2),
            interval_days=182, tz=PARIS)
    assert status.due == T0.date() + timedelta(days=184)
    assert await sweeper.sweep(T0 + timedelta(days=9)) == 0  # no overdue for the date met
    assert await sweeper.sweep(T0 + timedelta(days=184 - 14)) == 1


async def test_a_hospital_return_brings_the_date_forward_until_evaluated(database: Database) -> None:
    person = await _open(database, evaluated_on=T0.date())
    back = T0.date() + timedelta(days=30)
    async with database.unit() as uow:
        await uow.persons.set_setting(REF, Setting.HOME, at(back), hospital_return=back)
    sweeper = PromptSweeper(database, interval_days=182)
    assert await sweeper.sweep(at(back)) == 1
    [(_key, upcoming)] = await _prompts(database)
    assert upcoming["kind"] == "reevaluation.upcoming"
    assert upcoming["params"]["due"] == (back + timedelta(days=7)).isoformat()
    async with database.unit() as uow:
        stored = await uow.persons.get(REF)
        assert stored is not None
        await plans.record_evaluation(uow, stored, back + timedelta(days=2), tool="SMAF", reason=None, gir=None,
                                      by=CM, now=at(back + timedelta(days=2)), interval_days=182, tz=PARIS)
        assert (await uow.plans.last_evaluation(REF)).reason.value == "hospital_return"  # type: ignore[union-attr]
    assert await sweeper.sweep(at(back + timedelta(days=7))) == 0
    assert person.case_ref == REF


async def test_closed_files_get_no_prompt(database: Database) -> None:
    await _open(database)
    async with database.unit() as uow:
        await uow.session.execute(update(PersonRow).values(closed_at=T0))
    assert await PromptSweeper(database, interval_days=182).sweep(T0 + timedelta(days=30)) == 0


async def test_items_past_review_prompt_their_provider_once_per_review_date(database: Database) -> None:
    person = await _open(database, evaluated_on=T0.date())
    review = T0.date() + timedelta(days=20)
    async with database.unit() as uow:
        await plans.add_item(uow, person, "Soins", "Pansements", provider=NURSE, frequency=None, start=None,
                             review=review, by=CM, now=T0)
        await plans.add_item(uow, person, "Repas", "Portage", provider=None, frequency=None, start=None,
                             review=None, by=CM, now=T0)
    sweeper = PromptSweeper(database, interval_days=182)
    assert await sweeper.sweep_reviews(at(review)) == 0  # the review day itself is not past
    assert await sweeper.sweep_reviews(at(review + timedelta(days=1))) == 1
    assert await sweeper.sweep_reviews(at(review + timedelta(days=5))) == 0
    [(key, payload)] = await _prompts(database)
    assert key == f"prompt:{REF}:review:1:{review}:0"
    assert payload["kind"] == "plan.review" and payload["mentions"] == [NURSE, CM]
    # A new review date is a new occasion.
    later = review + timedelta(days=30)
    async with database.unit() as uow:
        await plans.set_item(uow, person, 1, {"review": later}, by=CM, now=at(review + timedelta(days=5)))
    assert await sweeper.sweep_reviews(at(later)) == 0
    assert await sweeper.sweep_reviews(at(later + timedelta(days=1))) == 1


async def test_a_changed_interval_recomputes_the_cached_dates(database: Database) -> None:
    await _open(database, evaluated_on=T0.date())
    sweeper = PromptSweeper(database, interval_days=90)
    assert await sweeper.reconcile() == 1
    assert await sweeper.reconcile() == 0
    async with database.unit() as uow:
        person = await uow.persons.get(REF)
        assert person is not None
        status = await plans.evaluation_status(uow, person)
    assert status.due == T0.date() + timedelta(days=90)


async def test_the_scheduler_runs_at_start_what_was_missed_while_down(database: Database) -> None:
    await _open(database, evaluated_on=T0.date())
    clock = FakeClock(T0)
    sweeper = PromptSweeper(database, interval_days=182)
    first = Scheduler(database, clock, sweeper, interval_s=3600)
    await first.start()  # a new database: the first run is one interval away
    await asyncio.sleep(0.05)
    await first.stop()
    assert await _prompts(database) == []

    clock.set(T0 + timedelta(days=182 - 3))  # down for months: the next run is overdue
    restarted = Scheduler(database, clock, sweeper, interval_s=3600)
    await restarted.start()
    try:
        for _ in range(200):  # the overdue job runs as soon as the loop lets it
            if await _prompts(database):
                break
            await asyncio.sleep(0.02)
    finally:
        await restarted.stop()
    assert [p["kind"] for _k, p in await _prompts(database)] == ["reevaluation.upcoming"]
    assert await restarted.run_now() == 0


async def test_one_failing_batch_among_several_in_flight_stops_none_of_the_others(database: Database) -> None:
    """Batches of one file, as many in flight as the backend allows (two on PostgreSQL): the
    batch that fails is rolled back alone and prompted at the next sweep; the others land."""
    refs = [f"R-2026-{n:04d}" for n in range(1, 6)]
    for ref in refs:
        await _open(database, ref)
    sweeper = PromptSweeper(database, interval_days=182, batch_size=1)
    assert sweeper.concurrency == (1 if database.single_writer else 2)
    work = sweeper._reevaluation_batch
    broken = await _person_id(database, refs[2])

    async def failing_once(uow: Any, batch: Any, now: datetime) -> int:
        if list(batch) == [broken]:
            raise RuntimeError("a batch that cannot be written")
        return await work(uow, batch, now)

    sweeper._reevaluation_batch = failing_once  # type: ignore[method-assign]
    assert await sweeper.sweep_reevaluations(T0) == 4
    assert sorted(p["case_ref"] for _k, p in await _prompts(database)) == refs[:2] + refs[3:]
    sweeper._reevaluation_batch = work  # type: ignore[method-assign]
    assert await sweeper.sweep_reevaluations(T0 + timedelta(hours=1)) == 1  # the failed one, once
    assert sorted(p["case_ref"] for _k, p in await _prompts(database)) == refs


async def _person_id(db: Database, ref: str) -> int:
    async with db.unit() as uow:
        found = await uow.session.execute(select(PersonRow.id).where(PersonRow.case_ref == ref))
    return int(found.scalar_one())


async def test_an_evaluation_back_dated_before_the_hospital_return_is_not_labelled_as_the_one_after_it(
        database: Database) -> None:
    """Done on the ward the day before discharge and entered after the return: its default reason
    is `routine`, not `hospital_return` (the evaluation after the return is still due, and says so);
    one dated before every other is the file's `initial` one."""
    await _open(database, evaluated_on=T0.date())
    back = T0.date() + timedelta(days=30)
    async with database.unit() as uow:
        await uow.persons.set_setting(REF, Setting.HOME, at(back), hospital_return=back)
        stored = await uow.persons.get(REF)
        assert stored is not None
        on_ward, status = await plans.record_evaluation(
            uow, stored, back - timedelta(days=1), tool="SMAF", reason=None, gir=None, by=CM,
            now=at(back + timedelta(days=1)), interval_days=182, tz=PARIS)
        assert on_ward.reason.value == "routine"
        assert status.due == back + timedelta(days=7)  # the evaluation after the return is still due
        after, status = await plans.record_evaluation(
            uow, stored, back + timedelta(days=1), tool="SMAF", reason=None, gir=None, by=CM,
            now=at(back + timedelta(days=1)), interval_days=182, tz=PARIS)
        assert after.reason.value == "hospital_return" and status.due == back + timedelta(days=183)
        earliest, _ = await plans.record_evaluation(
            uow, stored, T0.date() - timedelta(days=40), tool="SMAF", reason=None, gir=None, by=CM,
            now=at(back + timedelta(days=1)), interval_days=182, tz=PARIS)
        assert earliest.reason.value == "initial"
