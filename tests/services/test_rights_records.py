"""Rights reviews on a real database (SQLite, and PostgreSQL when RELAIS_TEST_POSTGRES is set):
opened by the GIR an evaluation records, closed once, reminded weekly after 30 days once per
occasion across restarts; the grids in the export, the GIR distribution in the report."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from hub.domain.aggir import GridError
from hub.domain.caseload import Limits
from hub.domain.errors import DomainError
from hub.domain.persons import Person
from hub.domain.team import Member, Role
from hub.services import cases, closure, export, report, rights
from hub.services.rights import RightsReminders
from hub.storage.database import Database
from hub.storage.models_plan import EvaluationRow

pytestmark = pytest.mark.db
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
PARIS = ZoneInfo("Europe/Paris")
CM = "@cm:x"


async def _open(db: Database, ref: str) -> Person:
    person = Person(ref, "Jeanne Dupont", CM, T0)
    async with db.unit() as uow:
        await uow.persons.add(person)
        await uow.team.add(ref, Member(CM, Role.CASE_MANAGER, T0))
    return person


async def _evaluate(db: Database, person: Person, day: date, *, grid: str | None = None, gir: int | None = None,
                    tool: str | None = None, now: datetime | None = None) -> tuple[int | None, list[Any]]:
    async with db.unit() as uow:
        evaluation, _status, effects = await rights.record_evaluation(
            uow, person, day, tool=tool, reason=None, gir=gir, grid=grid, by=CM, now=now or T0, interval_days=182,
            tz=PARIS)
    return evaluation.gir, effects


async def _reminders(db: Database) -> list[tuple[str, dict[str, Any]]]:
    async with db.unit() as uow:
        entries = await uow.outbox.pending(datetime(2100, 1, 1, tzinfo=UTC), limit=1000)
    return [(e.key, e.payload) for e in entries if e.payload.get("message") == "rights.reminder"]


async def test_a_gir_opens_a_review_when_it_enters_1_to_4_or_changes(database: Database) -> None:
    person = await _open(database, "R-2026-0001")
    d = T0.date()
    assert await _evaluate(database, person, d - timedelta(days=60), tool="interRAI-HC") == (None, [])
    assert await _evaluate(database, person, d - timedelta(days=50), grid="AAAAAAAAAA") == (6, [])  # GIR 6 first
    gir, effects = await _evaluate(database, person, d - timedelta(days=40), grid="abc-abc-aaab")
    assert gir == 3 and len(effects) == 1
    notice = effects[0]
    assert (notice.kind, notice.message, notice.mentions) == ("rights.review", "rights.review", (CM,))
    assert (notice.params["number"], notice.params["old"], notice.params["new"]) == (1, 6, 3)
    assert await _evaluate(database, person, d - timedelta(days=30), tool="SMAF") == (None, [])
    assert await _evaluate(database, person, d - timedelta(days=20), gir=3) == (3, [])  # same GIR: nothing
    gir, effects = await _evaluate(database, person, d, grid="CCCCCCCCCC")
    assert gir == 1 and effects[0].params["number"] == 2 and effects[0].params["old"] == 3
    assert await _evaluate(database, person, d - timedelta(days=45), gir=5) == (5, [])  # backdated: history

    async with database.unit() as uow:
        stored = await uow.plans.last_evaluation(person.case_ref)
        assert stored is not None and (stored.grid, stored.gir) == ("CCCCCCCCCC", 1)
        assert await uow.rights.latest_gir(person.case_ref) == (d, 1)
        assert [(r.number, r.old_gir, r.new_gir) for r in await uow.rights.of_case(person.case_ref)] == [
            (1, 6, 3), (2, 3, 1)]
        assert (await cases.load_caseload(uow, CM, T0, PARIS)).rights_reviews == 2
        closed = await rights.close_review(uow, person, 1, by=CM, now=T0, tz=PARIS)
        assert closed.closed_by == CM
        with pytest.raises(DomainError):
            await rights.close_review(uow, person, 1, by=CM, now=T0, tz=PARIS)
    async with database.unit() as uow:
        assert (await cases.load_caseload(uow, CM, T0, PARIS)).rights_reviews == 1
        lines = await rights.open_lines(uow, None, CM, T0.date(), PARIS)
        assert [(line["params"]["case"], line["params"]["number"]) for line in lines] == [("R-2026-0001", 2)]


async def test_a_bad_grid_records_nothing(database: Database) -> None:
    person = await _open(database, "R-2026-0001")
    with pytest.raises(GridError) as caught:
        await _evaluate(database, person, T0.date(), grid="ABCABCAAXB")
    assert caught.value.params["position"] == 9
    async with database.unit() as uow:
        count = (await uow.session.execute(select(func.count()).select_from(EvaluationRow))).scalar_one()
        assert count == 0 and await uow.rights.of_case(person.case_ref) == []


async def test_an_open_review_is_reminded_weekly_after_30_days_once_per_occasion(database: Database) -> None:
    person = await _open(database, "R-2026-0001")
    other = await _open(database, "R-2026-0002")
    await _evaluate(database, person, T0.date(), grid="AAAACBAAAA")  # GIR 4: review 1
    await _evaluate(database, other, T0.date(), gir=2)
    expected = [(29, 0), (30, 2), (30, 0), (36, 0), (37, 2), (37, 0)]
    for days, count in expected:
        # A new sweeper each time: what was sent is kept in the database, not in memory.
        assert await RightsReminders(database).sweep(T0 + timedelta(days=days)) == count, days
    keys = [key for key, _ in await _reminders(database)]
    assert keys == ["prompt:R-2026-0001:rights:1:0:0", "prompt:R-2026-0002:rights:1:0:0",
                    "prompt:R-2026-0001:rights:1:1:0", "prompt:R-2026-0002:rights:1:1:0"]
    payload = (await _reminders(database))[0][1]
    assert payload["kind"] == "rights.review" and payload["mentions"] == [CM]
    assert payload["params"]["days"] == 30 and payload["params"]["new"] == 4

    async with database.unit() as uow:  # closed review, closed file: no more reminders
        await rights.close_review(uow, person, 1, by=CM, now=T0 + timedelta(days=38), tz=PARIS)
        await closure.close_file(uow, other, closure.CloseReason("stabilised"), by=CM, now=T0 + timedelta(days=38))
    assert await RightsReminders(database).sweep(T0 + timedelta(days=60)) == 0
    # Down for weeks: only the current week's reminder, late, once.
    third = await _open(database, "R-2026-0003")
    await _evaluate(database, third, T0.date(), gir=1)
    assert await RightsReminders(database).sweep(T0 + timedelta(days=100)) == 1
    assert [k for k, _ in await _reminders(database)][-1] == "prompt:R-2026-0003:rights:1:10:0"


async def test_reminders_count_local_days_around_midnight(database: Database) -> None:
    # Opened at 23:30 in La Réunion (UTC+4) on 1 March: 19:30 UTC, still 1 March in UTC too. The
    # 30th local day starts at 00:00 on 31 March there — 20:00 UTC on 30 March, while the UTC
    # date is still the 30th day minus one. The reminder is due from local midnight, and the
    # notice says "since 1 March", 30 days.
    reunion = ZoneInfo("Indian/Reunion")
    opened = datetime(2026, 3, 1, 19, 30, tzinfo=UTC)
    person = await _open(database, "R-2026-0001")
    await _evaluate(database, person, date(2026, 3, 1), gir=2, now=opened)
    sweeper = RightsReminders(database, tz=reunion)
    assert await sweeper.sweep(datetime(2026, 3, 30, 19, 59, tzinfo=UTC)) == 0  # 23:59 on the 30th, local
    assert await sweeper.sweep(datetime(2026, 3, 30, 20, 1, tzinfo=UTC)) == 1  # 00:01 on the 31st, local
    payload = (await _reminders(database))[0][1]
    assert (payload["params"]["since"], payload["params"]["days"]) == ("2026-03-01", 30)
    async with database.unit() as uow:
        lines = await rights.open_lines(uow, person, CM, date(2026, 3, 31), reunion)
    assert (lines[0]["params"]["since"], lines[0]["params"]["days"]) == ("2026-03-01", 30)
    # Opened at 00:30 on 2 March in Paris (23:30 UTC on 1 March): "since 2 March", not the 1st.
    late = datetime(2026, 3, 1, 23, 30, tzinfo=UTC)
    other = await _open(database, "R-2026-0002")
    await _evaluate(database, other, date(2026, 3, 2), gir=2, now=late)
    async with database.unit() as uow:
        lines = await rights.open_lines(uow, other, CM, date(2026, 3, 2), PARIS)
        with pytest.raises(DomainError) as again:
            await rights.close_review(uow, other, 1, by=CM, now=late, tz=PARIS)
            await rights.close_review(uow, other, 1, by=CM, now=late, tz=PARIS)
    assert (lines[0]["params"]["since"], lines[0]["params"]["days"]) == ("2026-03-02", 0)
    assert again.value.params["date"] == "2026-03-02"


async def test_the_export_carries_the_grids_and_the_report_the_gir_of_active_files(database: Database) -> None:
    d = T0.date()
    a, b, c, e = [await _open(database, f"R-2026-000{i}") for i in (1, 2, 3, 4)]
    await _evaluate(database, a, d - timedelta(days=30), grid="AACCCCCCAA")  # GIR 2
    await _evaluate(database, a, d, grid="AAAACBAAAA")  # then GIR 4: the latest counts
    await _evaluate(database, b, d, tool="interRAI-HC")  # no GIR
    await _evaluate(database, c, d - timedelta(days=10), gir=3)
    await _evaluate(database, c, d - timedelta(days=20), gir=5)  # backdated: 3 stays the latest
    await _evaluate(database, e, d, gir=1)
    async with database.unit() as uow:
        await closure.close_file(uow, e, closure.CloseReason("death"), by=CM, now=T0)  # not active
    async with database.unit() as uow:
        data = await export.export(uow, a.case_ref, T0)
        period, sections = await report.build(uow, None, None, today=d, case_managers=(CM,),
                                              limits=Limits(40, 60, 5))
    assert [(x["grid"], x["gir"]) for x in data["evaluations"]] == [("AACCCCCCAA", 2), ("AAAACBAAAA", 4)]
    assert [(r["number"], r["old_gir"], r["new_gir"]) for r in data["rights_reviews"]] == [(1, None, 2), (2, 2, 4)]
    assert sections["gir"] == {"gir_1": 0, "gir_2": 0, "gir_3": 1, "gir_4": 1, "gir_5": 0, "gir_6": 0,
                               "gir_unknown": 1}
    csv = report.to_csv(period, sections, d)
    assert f"gir,gir_4,1,at {d.isoformat()}\n" in csv and f"gir,gir_unknown,1,at {d.isoformat()}\n" in csv
