"""Consent and concertation storage on the selected backend: migration, export and report sections."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from hub.domain import concertation as cc
from hub.domain.caseload import Limits
from hub.domain.consent import Scope, Status
from hub.domain.persons import Person
from hub.domain.team import Member, Role
from hub.i18n.catalog import Catalog
from hub.services import concertations, consent, export, report
from hub.storage.database import Database
from hub.storage.models import Base

pytestmark = pytest.mark.db
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
TABLES = ("consent_records", "consent_reminders", "concertations", "concertation_decisions")


async def test_migration_matches_the_models(database: Database) -> None:
    def diff(sync_conn: object) -> list[object]:
        return list(compare_metadata(MigrationContext.configure(sync_conn), Base.metadata))  # type: ignore[arg-type]

    async with database.engine.connect() as conn:
        changes = await conn.run_sync(diff)
    assert [c for c in changes if any(t in repr(c) for t in TABLES)] == []


async def _files(database: Database) -> Person:
    person = Person("R-2026-0001", "Jeanne Dupont", "@cm:x", NOW)
    async with database.unit() as uow:
        for p in (person, Person("R-2026-0002", "Paul Martin", "@cm:x", NOW)):
            await uow.persons.add(p)
            await uow.persons.set_room(p.case_ref, f"!{p.case_ref}:x")
            await uow.team.add(p.case_ref, Member("@cm:x", Role.CASE_MANAGER, NOW))
        await uow.team.add(person.case_ref, Member("@gp:x", Role.GP, NOW))
    return person


async def test_consent_history_export_and_report_counts(database: Database) -> None:
    person = await _files(database)
    async with database.unit() as uow:
        await consent.record(uow, person, Status.INFORMED, None, date(2026, 2, 27), None, by="@cm:x", now=NOW)
        await consent.record(uow, person, Status.GIVEN, Scope.EXTENDED, None, "accord écrit", by="@cm:x", now=NOW)
        await uow.team.add(person.case_ref, Member("@carer:x", Role.CARER, NOW))
    async with database.unit() as uow:
        effects = await consent.record(uow, person, Status.REFUSED, None, None, None, by="@cm:x", now=NOW)
    assert [type(e).__name__ for e in effects] == ["Notify", "Kick"]
    async with database.unit() as uow:
        assert "@carer:x" not in [m.user_id for m in await uow.team.members(person.case_ref) if m.active]
        data = await export.export(uow, person.case_ref, NOW)
        _, sections = await report.build(uow, None, None, today=NOW.date(), case_managers=("@cm:x",),
                                         limits=Limits(40, 60, 5))
    assert [(r["status"], r["scope"], r["note"]) for r in data["consent"]] == [
        ("informed", "care_team", None), ("given", "extended", "accord écrit"), ("refused", "extended", None)]
    assert data["consent"][0]["date"] == "2026-02-27"
    assert sections["consent"] == {"files_not_informed": 1, "files_informed_only": 0, "files_extended_consent": 0,
                                   "files_consent_refused": 1}
    for language in ("fr", "en"):  # the pilot's report has words for every figure
        catalog = Catalog(language)
        for name in ("consent", "concertations"):
            assert catalog.has(f"report.title.{name}")
            assert all(catalog.has(f"report.label.{key}") for key in sections[name])


async def test_reminders_skip_informed_files_and_come_once_a_day(database: Database) -> None:
    person = await _files(database)
    async with database.unit() as uow:
        await consent.record(uow, person, Status.INFORMED, None, None, None, by="@cm:x", now=NOW)
    reminders = consent.ConsentReminders(database)
    next_day = NOW + timedelta(days=1)
    assert await reminders.sweep(next_day) == 1
    assert await reminders.sweep(next_day + timedelta(hours=3)) == 0
    assert await reminders.sweep(next_day + timedelta(days=1)) == 1
    async with database.unit() as uow:
        keys = [e.key for e in await uow.outbox.pending(next_day + timedelta(days=2))]
    assert keys == ["consent-reminder:R-2026-0002:2026-03-03:0", "consent-reminder:R-2026-0002:2026-03-04:0"]


async def test_a_held_concertation_is_exported_and_counted(database: Database) -> None:
    person = await _files(database)
    catalog = Catalog("fr")
    async with database.unit() as uow:
        effects = await concertations.plan(uow, person, date(2026, 3, 10), "14:00", minutes=30, place=None,
                                           visio=None, with_=(), by="@cm:x", now=NOW, catalog=catalog,
                                           bot_user="@relais:x")
    attachment = effects[-1]
    assert type(attachment).__name__ == "SendFile" and "BEGIN:VCALENDAR" in attachment.data  # type: ignore[union-attr]
    start = cc.local_start(date(2026, 3, 10), "14:00")
    async with database.unit() as uow:
        await concertations.decide(uow, person, "Passage quotidien", None, by="@cm:x", now=start)
    sweeper = concertations.ConcertationSweeper(database)
    assert await sweeper.sweep(start + timedelta(hours=2)) == 1  # the minutes; reminders are past
    assert await sweeper.sweep(start + timedelta(hours=3)) == 0
    async with database.unit() as uow:
        data = await export.export(uow, person.case_ref, NOW)
        _, sections = await report.build(uow, None, None, today=date(2026, 3, 31), case_managers=("@cm:x",),
                                         limits=Limits(40, 60, 5))
    (exported,) = data["concertations"]
    assert exported["state"] == "held" and exported["participants"] == ["@gp:x"]
    assert exported["uid"].endswith("@x") and exported["decisions"][0]["text"] == "Passage quotidien"
    assert sections["concertations"] == {"concertations_held": 1, "concertations_cancelled": 0,
                                         "concertation_decisions": 1, "concertation_decisions_on_plan_items": 0}


async def test_a_back_dated_refusal_does_not_undo_a_later_consent(database: Database) -> None:
    """Sharing rules, joining and the pilot's counts all read the record with the latest date."""
    person = await _files(database)
    async with database.unit() as uow:
        await consent.record(uow, person, Status.GIVEN, Scope.EXTENDED, date(2026, 3, 1), None, by="@cm:x", now=NOW)
        await uow.team.add(person.case_ref, Member("@carer:x", Role.CARER, NOW))
    async with database.unit() as uow:
        effects = await consent.record(uow, person, Status.REFUSED, None, date(2026, 2, 1), None, by="@cm:x",
                                       now=NOW + timedelta(minutes=1))
    assert [type(e).__name__ for e in effects] == ["Notify"]
    async with database.unit() as uow:
        assert "@carer:x" in [m.user_id for m in await uow.team.members(person.case_ref) if m.active]
        await consent.check_can_join(uow, person.case_ref, "@neighbour:x", Role.OTHER)
        show = await consent.show_params(uow, person)
        _, sections = await report.build(uow, None, None, today=NOW.date(), case_managers=("@cm:x",),
                                         limits=Limits(40, 60, 5))
    assert show["sharing"]["key"] == "consent.summary.extended"
    assert sections["consent"]["files_extended_consent"] == 1 and sections["consent"]["files_consent_refused"] == 0
