"""Plan, evaluation and prompt storage on the selected backend."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from hub.domain import plan
from hub.domain.effects import Notify
from hub.domain.evaluations import Evaluation, Reason, Tool
from hub.domain.persons import Person
from hub.domain.settings import Setting
from hub.domain.team import Member, Role
from hub.services.outbox import enqueue
from hub.services.reevaluations import notice_payload, prompt_key
from hub.storage.database import Database
from hub.storage.models import Base, PersonRow

pytestmark = pytest.mark.db
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
PLAN_TABLES = {"plan_items", "evaluations", "evaluation_due", "sent_prompts"}


async def _person(db: Database, ref: str = "R-2026-0001", referent: str = "@cm:x") -> Person:
    person = Person(ref, "Jeanne Dupont", referent, NOW)
    async with db.unit() as uow:
        await uow.persons.add(person)
    return person


async def test_migration_matches_the_models(database: Database) -> None:
    def diff(sync_conn: object) -> list[object]:
        context = MigrationContext.configure(sync_conn)  # type: ignore[arg-type]
        return list(compare_metadata(context, Base.metadata))

    async with database.engine.connect() as conn:
        changes = await conn.run_sync(diff)
    ours = [c for c in changes if any(t in repr(c) for t in (*PLAN_TABLES, "ix_persons_hospital_return_on"))]
    assert ours == []


async def test_every_version_is_kept_and_one_is_current(database: Database) -> None:
    await _person(database)
    first, _ = plan.add_item([], "R-2026-0001", "Toilette", "Aide à domicile", provider_org="SAD", by="@cm:x",
                             now=NOW)
    second, _ = plan.set_item(first, "R-2026-0001", {"status": "in_place", "review": date(2026, 6, 1)},
                              by="@cm:x", now=NOW + timedelta(days=3))
    other, _ = plan.add_item([first], "R-2026-0001", "Soins", "Pansements", by="@cm:x", now=NOW)
    async with database.unit() as uow:
        for item in (first, second, other):
            await uow.plans.save("R-2026-0001", item)
    async with database.unit() as uow:
        items = await uow.plans.items("R-2026-0001")
        versions = await uow.plans.versions("R-2026-0001")
    assert items == [second, other]
    assert versions == [first, second, other]
    assert plan.plan_as_of(versions, NOW + timedelta(days=1)) == [first, other]
    with pytest.raises(IntegrityError):  # a version number is never reused
        async with database.unit() as uow:
            await uow.plans.save("R-2026-0001", replace(second, need="autre"))


async def test_items_without_provider_and_past_review_are_counted_for_open_files(database: Database) -> None:
    await _person(database, "R-2026-0001")
    await _person(database, "R-2026-0002")
    bare, _ = plan.add_item([], "R-2026-0001", "Repas", "Portage", review=date(2026, 3, 10), by="@cm:x", now=NOW)
    held, _ = plan.add_item([bare], "R-2026-0001", "Soins", "Pansements", provider_user="@n:x", by="@cm:x",
                            review=date(2026, 4, 10), now=NOW)
    closed, _ = plan.close_item(plan.add_item([], "R-2026-0002", "X", "Y", by="@cm:x", now=NOW)[0],
                                "R-2026-0002", by="@cm:x", now=NOW)
    async with database.unit() as uow:
        for ref, item in (("R-2026-0001", bare), ("R-2026-0001", held), ("R-2026-0002", closed)):
            await uow.plans.save(ref, item)
        assert await uow.plans.count_without_provider("@cm:x") == 1
        assert await uow.plans.count_without_provider("@other:x") == 0
        ids = await uow.plans.review_candidates(date(2026, 3, 11))
        records = await uow.plans.review_batch(ids)
    assert [(r.case_ref, r.item.number) for r in records] == [("R-2026-0001", 1)]
    async with database.unit() as uow:
        await uow.session.execute(update(PersonRow).values(closed_at=NOW))
        assert await uow.plans.count_without_provider("@cm:x") == 0
        assert await uow.plans.review_batch(ids) == []


async def test_last_evaluation_is_the_latest_by_date(database: Database) -> None:
    await _person(database)
    later = Evaluation(date(2026, 2, 1), Tool.AGGIR, Reason.ROUTINE, 3, "@cm:x")
    backdated = Evaluation(date(2025, 9, 1), Tool.INTERRAI_HC, Reason.INITIAL, None, "@cm:x")
    async with database.unit() as uow:
        assert await uow.plans.last_evaluation("R-2026-0001") is None
        await uow.plans.add_evaluation("R-2026-0001", later, NOW)
        await uow.plans.add_evaluation("R-2026-0001", backdated, NOW)
    async with database.unit() as uow:
        assert await uow.plans.last_evaluation("R-2026-0001") == later


async def test_due_candidates_use_the_cached_date_hospital_returns_and_missing_rows(database: Database) -> None:
    for n in range(1, 6):
        await _person(database, f"R-2026-000{n}")
    async with database.unit() as uow:
        await uow.plans.set_due("R-2026-0001", date(2026, 3, 10), date(2025, 9, 9), 182)  # near: in
        await uow.plans.set_due("R-2026-0002", date(2026, 8, 1), date(2026, 1, 30), 182)  # far: out
        await uow.plans.set_due("R-2026-0003", date(2026, 8, 1), date(2026, 1, 30), 182)  # far, but back home
        await uow.persons.set_setting("R-2026-0003", Setting.HOME, NOW, hospital_return=date(2026, 3, 1))
        await uow.plans.set_due("R-2026-0004", date(2026, 8, 1), None, 182)
        await uow.plans.set_due("R-2026-0004", date(2026, 3, 5), date(2025, 9, 4), 182)  # updated: in
        # R-2026-0005 has no cached row at all: it must not be forgotten.
    async with database.unit() as uow:
        ids = await uow.plans.due_candidates(date(2026, 3, 16), date(2026, 3, 9))
        records = await uow.plans.due_batch(ids)
        single = await uow.plans.due_of("R-2026-0005")
    assert [r.case_ref for r in records] == ["R-2026-0001", "R-2026-0003", "R-2026-0004", "R-2026-0005"]
    assert records[1].hospital_return == date(2026, 3, 1) and records[1].next_due == date(2026, 8, 1)
    assert single is not None and single.next_due is None and single.opened_on == NOW.date()


async def test_a_prompt_occasion_is_recorded_once(database: Database) -> None:
    async with database.unit() as uow:
        await uow.plans.record_sent([("R-2026-0001", "due:2026-03-10")], NOW)
    async with database.unit() as uow:
        assert await uow.plans.sent_among([("R-2026-0001", "due:2026-03-10"), ("R-2026-0001", "upcoming:x"),
                                           ("R-2026-0002", "due:2026-03-10")]) == {("R-2026-0001", "due:2026-03-10")}
        assert await uow.plans.is_sent("R-2026-0001", "due:2026-03-10")
    with pytest.raises(IntegrityError):
        async with database.unit() as uow:
            await uow.plans.record_sent([("R-2026-0001", "due:2026-03-10")], NOW)


async def test_bulk_prompts_land_in_the_outbox_as_enqueue_writes_them(database: Database) -> None:
    notice = Notify("reevaluation.due", "R-2026-0001", "reevaluation.due",
                    {"due": "2026-03-10", "days": 0, "occasion": "due:2026-03-10"}, ("@cm:x", "@gp:x"))
    async with database.unit() as uow:
        await uow.plans.enqueue_notices([(prompt_key("R-2026-0001", "due:2026-03-10"), "R-2026-0001",
                                          notice_payload(notice))], NOW)
        await enqueue(uow, "reference", [notice], NOW)
        # The key is the one enqueue() derives from the prefix: a replay through it adds nothing.
        assert await enqueue(uow, "prompt:R-2026-0001:due:2026-03-10", [notice], NOW) == 0
    async with database.unit() as uow:
        bulk, reference = await uow.outbox.pending(NOW)
    assert (bulk.action, bulk.case_ref, bulk.payload) == (reference.action, reference.case_ref, reference.payload)
    assert bulk.lane == reference.lane == "case:R-2026-0001"  # the outbox serves them in the room's order


async def test_gps_of_lists_active_gps_only(database: Database) -> None:
    await _person(database)
    async with database.unit() as uow:
        await uow.team.add("R-2026-0001", Member("@gp:x", Role.GP, NOW))
        await uow.team.add("R-2026-0001", Member("@old:x", Role.GP, NOW))
        await uow.team.end("R-2026-0001", Member("@old:x", Role.GP, NOW, until=NOW))
        await uow.team.add("R-2026-0001", Member("@n:x", Role.NURSE, NOW))
        records = await uow.plans.due_batch(await uow.plans.due_candidates(date(2030, 1, 1), date(2030, 1, 1)))
        assert await uow.plans.gps_of([r.person_id for r in records]) == {records[0].person_id: ["@gp:x"]}
