"""Handover storage, the leave watcher's once-only rule and the pilot's report on the selected backend."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from hub.__main__ import main
from hub.clock import FakeClock
from hub.domain import plan
from hub.domain.caseload import Limits
from hub.domain.continuity import Break, Category, Source
from hub.domain.handover import Handover, HandoverKind
from hub.domain.persons import Person
from hub.domain.settings import Setting
from hub.domain.team import Member, Role
from hub.domain.transitions import SettingChange
from hub.services import report
from hub.services.continuity import MembershipWatcher
from hub.services.handovers import HandoverReminders
from hub.storage.database import Database
from hub.storage.models import Base

pytestmark = pytest.mark.db
NOW = datetime(2026, 3, 31, 12, 0, tzinfo=UTC)
TABLES = ("handovers", "continuity_breaks")


async def test_migration_matches_the_models(database: Database) -> None:
    def diff(sync_conn: object) -> list[object]:
        context = MigrationContext.configure(sync_conn)  # type: ignore[arg-type]
        return list(compare_metadata(context, Base.metadata))

    async with database.engine.connect() as conn:
        changes = await conn.run_sync(diff)
    assert [c for c in changes if any(t in repr(c) for t in TABLES)] == []


async def test_a_leave_is_handled_once_per_event_and_once_per_member(database: Database) -> None:
    ref, nurse = "R-2026-0001", "@nurse:x"
    async with database.unit() as uow:
        await uow.persons.add(Person(ref, "Jeanne Dupont", "@cm:x", NOW))
        await uow.persons.set_room(ref, "!room:x")
        await uow.team.add(ref, Member("@cm:x", Role.CASE_MANAGER, NOW))
        await uow.team.add(ref, Member(nurse, Role.NURSE, NOW))
        item, _ = plan.add_item([], ref, "Soins", "Pansements", provider_user=nurse, by="@cm:x", now=NOW)
        await uow.plans.save(ref, item)
    watcher = MembershipWatcher(database, FakeClock(NOW))
    assert await watcher.member_left("!room:x", "$leave", nurse, Source.LEFT)
    assert not await watcher.member_left("!room:x", "$leave", nurse, Source.LEFT)  # replayed sync
    assert not await watcher.member_left("!room:x", "$again", nurse, Source.LEFT)  # record already closed
    assert not await watcher.member_left("!other:x", "$x", nurse, Source.LEFT)  # not a file's room
    await watcher.on_membership("!room:x", "$kick", "@cm:x", "kicked")  # the bot's own removals
    async with database.unit() as uow:
        breaks = await uow.handovers.breaks(ref)
        outbox = await uow.outbox.pending(NOW)
        items = await uow.plans.items(ref)
    assert [(b.source, b.subject) for b in breaks] == [(Source.LEFT, nurse)]
    # The item's change is Relais's own, not credited to the leaver.
    assert [e.payload["message"] for e in outbox] == ["break.left", "plan.changed_auto"]
    assert items[0].provider_user is None and items[0].version == 2


# --- the report: a seeded territory, figures worked out by hand ----------------------------

CMS = ("@a:x", "@b:x")
# (referent, opened, closed, close reason) — person i gets case ref R-2026-000i
FILES = [
    ("@a:x", date(2025, 11, 3), None, None),
    ("@a:x", date(2026, 1, 10), None, None),
    ("@a:x", date(2026, 1, 20), date(2026, 2, 15), "death"),
    ("@a:x", date(2026, 2, 1), date(2026, 4, 2), "institution"),  # closed after the period: active at its end
    ("@b:x", date(2026, 3, 5), None, None),
    ("@b:x", date(2026, 4, 1), None, None),  # opened after the period
]
UNAVAILABLE = {1: 2, 2: 1, 3: 1}  # file index → unavailable open items (file 3 is closed: not counted)
MOVES = [(1, Setting.HOSPITAL, Setting.HOME, date(2026, 1, 12)),
         (1, Setting.REHAB, Setting.HOSPITAL, date(2026, 1, 20)),
         (1, Setting.HOME, Setting.REHAB, date(2026, 2, 10)), (2, Setting.EMERGENCY, Setting.HOME, date(2026, 3, 3)),
         (2, Setting.HOSPITAL, Setting.HOME, date(2025, 12, 1))]
BREAKS = [(1, Category.RELATIONAL, date(2026, 1, 5)), (2, Category.APPROACH, date(2026, 2, 5)),
          (2, Category.APPROACH, date(2026, 3, 25)), (5, Category.INFORMATIONAL, date(2026, 4, 1))]


def _ref(i: int) -> str:
    return f"R-2026-{i:04d}"


def _at(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 10, 0, tzinfo=UTC)


async def _seed(db: Database) -> None:
    async with db.unit() as uow:
        for i, (referent, opened, closed, reason) in enumerate(FILES, 1):
            await uow.persons.add(Person(_ref(i), f"Personne {i}", referent, _at(opened)))
            items: list[plan.PlanItem] = []
            for _ in range(UNAVAILABLE.get(i, 0)):
                item, _ = plan.add_item(items, _ref(i), "Besoin", "Action", by=referent, now=_at(opened))
                item, _ = plan.set_item(item, _ref(i), {"status": "unavailable"}, by=referent, now=_at(opened))
                items.append(item)
                await uow.plans.save(_ref(i), item)
            if closed is not None and reason is not None:
                await uow.persons.close_file(_ref(i), _at(closed), reason)
        for i, setting, previous, day in MOVES:
            await uow.alerts.add_change(SettingChange(_ref(i), setting, _at(day), previous, None, None, None,
                                                      "command", "@a:x"), _at(day))
        for i, category, day in BREAKS:
            await uow.handovers.add_break(Break(_ref(i), category, Source.REPORTED, "@a:x", _at(day), "texte"))
        await uow.handovers.add(Handover(_ref(1), HandoverKind.PROFESSIONAL, "@n:x", "@n2:x", None, (), "@a:x",
                                         _at(date(2026, 2, 2))))


def _expected(start: date, end: date) -> dict[str, dict[str, int]]:
    """The same figures, worked out directly from the seed lists."""
    def active(closed: date | None) -> bool:
        return closed is None or closed > end
    caseload = {cm: 0 for cm in CMS}
    for referent, opened, closed, _ in FILES:
        if opened <= end and active(closed):
            caseload[referent] += 1
    months = {"2026-01": 0, "2026-02": 0, "2026-03": 0}
    for _, opened, _, _ in FILES:
        if start <= opened <= end:
            months[opened.strftime("%Y-%m")] += 1
    open_files = [i for i, f in enumerate(FILES, 1) if f[2] is None]
    unmet_files = [i for i in UNAVAILABLE if i in open_files]
    in_period = [m for m in MOVES if start <= m[3] <= end]
    return {
        "caseload": caseload,
        "intake": months,
        "unmet_needs": {"items": sum(UNAVAILABLE[i] for i in unmet_files), "files": len(unmet_files)},
        "breaks": {c.value: sum(1 for b in BREAKS if b[1] is c and start <= b[2] <= end) for c in Category},
        "hospital": {"hospital": sum(1 for m in in_period if m[1] is Setting.HOSPITAL),
                     "hospital_stays": sum(1 for m in in_period if m[1] in (Setting.HOSPITAL, Setting.EMERGENCY)
                                           and m[2] is Setting.HOME)},
    }


async def test_the_report_matches_a_seeded_territory(database: Database, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    await _seed(database)
    start, end = date(2026, 1, 1), date(2026, 3, 31)
    expected = _expected(start, end)
    async with database.unit() as uow:
        _p, got = await report.build(uow, start, end, today=end, case_managers=CMS, limits=Limits(2, 3, 5))
    assert got["caseload"] == expected["caseload"] == {"@a:x": 3, "@b:x": 1}
    assert got["limits"] == {"target": 2, "maximum": 3, "over_target": 1, "over_maximum": 0}
    assert got["intake"] == expected["intake"]
    assert got["unmet_needs"] == expected["unmet_needs"] == {"items": 3, "files": 2}
    assert got["breaks"] == expected["breaks"]
    assert got["transitions"]["hospital"] == expected["hospital"]["hospital"]
    assert got["transitions"]["hospital_stays"] == expected["hospital"]["hospital_stays"] == 2
    assert got["closures"]["death"] == 1 and got["closures"]["institution"] == 0
    assert got["handovers"] == {"professional": 1, "case_manager": 0, "unacknowledged": 1}
    # Files never evaluated are due from their opening day: every open one opened before today.
    assert got["reevaluations"] == {"open_files": 4, "overdue": 3}

    config = tmp_path / "relais.toml"
    config.write_text(f'[matrix]\nuser_id = "@relais:x"\npassword = "pw-for-tests"\n'
                      f'[database]\nurl = "{database.url}"\n[care]\ncase_managers = ["@a:x", "@b:x"]\n'
                      'caseload_target = 2\ncaseload_max = 3\n', encoding="utf-8")
    capsys.readouterr()
    code = await asyncio.to_thread(main, ["report", "-c", str(config), "--from", "2026-01-01", "--to", "2026-03-31"])
    assert code == 0
    rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert rows[0] == ["section", "key", "value", "measured"] and ["period", "to", "2026-03-31", ""] in rows
    figures = {(s, k): int(v) for s, k, v, _ in rows[1:] if s != "period"}
    # Each figure says whether it counts the period or describes one day.
    measured = {s: m for s, _k, _v, m in rows[1:] if s != "period"}
    today = datetime.now(UTC).date().isoformat()
    assert measured["caseload"] == measured["limits"] == "at 2026-03-31"
    assert measured["reevaluations"] == measured["unmet_needs"] == measured["consent"] == f"at {today}"
    assert {measured[s] for s in ("intake", "transitions", "breaks", "handovers", "closures",
                                  "concertations")} == {"period"}
    assert {k: v for (s, k), v in figures.items() if s == "caseload"} == expected["caseload"]
    assert {k: v for (s, k), v in figures.items() if s == "breaks"} == expected["breaks"]
    assert figures[("intake", "2026-01")] == 2 and figures[("unmet_needs", "items")] == 3
    assert not any("Personne" in cell or "R-2026" in cell for row in rows for cell in row)
    assert await asyncio.to_thread(main, ["report", "-c", str(config), "--from", "2026-04-01", "--to",
                                          "2026-01-01"]) == 1
    assert "après sa fin" in capsys.readouterr().err


async def test_handover_rows_round_trip_and_reminders_skip_closed_files(database: Database) -> None:
    async with database.unit() as uow:
        for ref in ("R-2026-0001", "R-2026-0002"):
            await uow.persons.add(Person(ref, "X", "@cm:x", NOW))
            await uow.handovers.add(Handover(ref, HandoverKind.PROFESSIONAL, "@n:x", "@n2:x", "raison", (1, 3),
                                             "@cm:x", NOW))
        await uow.persons.close_file("R-2026-0002", NOW, "other")
    async with database.unit() as uow:
        [h] = await uow.handovers.of_case("R-2026-0001")
        assert h.items == (1, 3) and h.reason == "raison" and h.created_at == NOW and h.open
        due = await uow.handovers.reminder_candidates(NOW + timedelta(days=3))
        assert [r.handover.case_ref for r in due] == ["R-2026-0001"]
        assert await uow.handovers.reminder_candidates(NOW - timedelta(seconds=1)) == []


async def test_the_reminder_sweep_counts_the_territorys_calendar_days_across_summer_time(
        database: Database) -> None:
    """Made Friday 27/03 at 14:00 in Paris; summer time starts on Sunday: the reminder comes on
    Monday at 14:00 local (71 hours on), not at 15:00."""
    made = datetime(2026, 3, 27, 13, 0, tzinfo=UTC)
    monday_two_pm = datetime(2026, 3, 30, 12, 0, tzinfo=UTC)
    async with database.unit() as uow:
        await uow.persons.add(Person("R-2026-0001", "X", "@cm:x", made))
        await uow.handovers.add(Handover("R-2026-0001", HandoverKind.PROFESSIONAL, "@n:x", "@n2:x", None, (),
                                         "@cm:x", made))
    reminders = HandoverReminders(database, 3)
    assert await reminders.sweep(monday_two_pm - timedelta(minutes=1)) == 0
    assert await reminders.sweep(monday_two_pm) == 1
    assert await reminders.sweep(monday_two_pm + timedelta(hours=2)) == 0  # once
    async with database.unit() as uow:
        [entry] = await uow.outbox.pending(monday_two_pm + timedelta(days=1))
    assert entry.key.startswith("handover-reminder:")
