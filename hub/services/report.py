"""The pilot's report: named sections of counts, computed by `hub.domain.report` from plain rows.

Another feature adds a section by appending to `SECTIONS` (and to `AS_OF` when it describes one
day rather than the period). `to_csv` gives the operator's CLI output: one
`section,key,value,measured` line per figure.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from hub.clock import DEFAULT_TIMEZONE, local_date
from hub.domain import report
from hub.domain.caseload import Limits
from hub.domain.report import BreakRow, FileRow, HandoverRow, ItemRow, MoveRow, Period, Section
from hub.services import concertations, consent, plans, referrals, rights
from hub.storage.database import UnitOfWork


@dataclass(frozen=True)
class ReportInput:
    uow: UnitOfWork
    period: Period
    today: date
    case_managers: tuple[str, ...]
    limits: Limits
    cache: dict[str, Any] = field(default_factory=dict)  # rows several sections read
    tz: ZoneInfo = field(default_factory=lambda: ZoneInfo(DEFAULT_TIMEZONE))


SectionFn = Callable[[ReportInput], Awaitable[Section]]


def _day(moment: datetime, tz: ZoneInfo) -> date:
    return local_date(moment, tz)


async def _files(inp: ReportInput) -> list[FileRow]:
    if "files" in inp.cache:
        return list(inp.cache["files"])
    records = await inp.uow.reports.files()
    open_ids = [r.person_id for r in records if r.closed_at is None]
    dues = {d.person_id: plans.due_date(d) for d in await inp.uow.plans.due_batch(open_ids)} if open_ids else {}
    rows = [FileRow(r.referent, _day(r.opened_at, inp.tz), _day(r.closed_at, inp.tz) if r.closed_at else None,
                    r.close_reason, dues.get(r.person_id)) for r in records]
    inp.cache["files"] = rows
    return rows


async def _caseload(inp: ReportInput) -> Section:
    return report.caseloads(await _files(inp), inp.case_managers, inp.period.end)


async def _limits(inp: ReportInput) -> Section:
    return report.limits(await _caseload(inp), inp.limits.target, inp.limits.maximum)


async def _intake(inp: ReportInput) -> Section:
    return report.intake(await _files(inp), inp.period)


async def _reevaluations(inp: ReportInput) -> Section:
    return report.reevaluations(await _files(inp), inp.today)


async def _unmet(inp: ReportInput) -> Section:
    return report.unmet_needs(ItemRow(pid, status, closed) for pid, status, closed in
                              await inp.uow.reports.current_items())


async def _transitions(inp: ReportInput) -> Section:
    return report.transitions([MoveRow(s, prev, _day(at, inp.tz)) for s, prev, at in await inp.uow.reports.moves()],
                              inp.period)


async def _breaks(inp: ReportInput) -> Section:
    return report.breaks([BreakRow(c, s, _day(at, inp.tz)) for c, s, at in await inp.uow.reports.breaks()], inp.period)


async def _handovers(inp: ReportInput) -> Section:
    rows = [HandoverRow(k, _day(at, inp.tz), acked) for k, at, acked in await inp.uow.reports.handovers()]
    return report.handovers(rows, inp.period)


async def _closures(inp: ReportInput) -> Section:
    return report.closures(await _files(inp), inp.period)


async def _consent(inp: ReportInput) -> Section:
    return await consent.report_counts(inp.uow)


async def _concertations(inp: ReportInput) -> Section:
    return await concertations.report_counts(inp.uow, inp.period, inp.tz)


async def _referrals(inp: ReportInput) -> Section:
    return await referrals.report_section(inp.uow, inp.period.start, inp.period.end, inp.tz)


async def _gir(inp: ReportInput) -> Section:
    return await rights.report_counts(inp.uow)


SECTIONS: tuple[tuple[str, SectionFn], ...] = (
    ("caseload", _caseload),
    ("limits", _limits),
    ("intake", _intake),
    ("reevaluations", _reevaluations),
    ("unmet_needs", _unmet),
    ("transitions", _transitions),
    ("breaks", _breaks),
    ("handovers", _handovers),
    ("closures", _closures),
    ("consent", _consent),
    ("concertations", _concertations),
    ("referrals", _referrals),
    ("gir", _gir),
)


#: Sections that are a state on one day, not a count over the period: "end" (the period's last
#: day) or "today" (no history is kept for them). Every other section counts the period.
AS_OF: dict[str, str] = {
    "caseload": "end", "limits": "end",
    "reevaluations": "today", "unmet_needs": "today", "consent": "today", "gir": "today",
}


def as_of(name: str, p: Period, today: date) -> date | None:
    """The day a snapshot section describes; None for a section counted over the period."""
    when = AS_OF.get(name)
    return None if when is None else p.end if when == "end" else today


def measured(name: str, p: Period, today: date) -> str:
    """The CSV's `measured` column: `period` or `at YYYY-MM-DD`."""
    day = as_of(name, p, today)
    return "period" if day is None else f"at {day.isoformat()}"


async def build(uow: UnitOfWork, start: date | None, end: date | None, *, today: date,
                case_managers: tuple[str, ...], limits: Limits,
                sections: Sequence[tuple[str, SectionFn]] = SECTIONS,
                tz: ZoneInfo | None = None) -> tuple[Period, dict[str, Section]]:
    """The report's sections; every event counts on the territory's date it happened (`tz`)."""
    p = report.period(start, end, today)
    inp = ReportInput(uow, p, today, case_managers, limits, tz=tz or ZoneInfo(DEFAULT_TIMEZONE))
    return p, {name: await fn(inp) for name, fn in sections}


def to_csv(p: Period, sections: dict[str, Section], today: date) -> str:
    """`section,key,value,measured`: `measured` is `period` for a count over the period, or
    `at <date>` for a state on that day (AS_OF)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["section", "key", "value", "measured"])
    writer.writerow(["period", "from", p.start.isoformat(), ""])
    writer.writerow(["period", "to", p.end.isoformat(), ""])
    for name, section in sections.items():
        when = measured(name, p, today)
        for key, value in section.items():
            writer.writerow([name, key, value, when])
    return out.getvalue()
