"""The territory's report for the pilot (SPEC §1 system level): counts only, from plain rows. Pure.

Each section is a mapping of labels to counts. Labels are case managers' Matrix ids (the
pilot must see who is overloaded), months, settings, categories or reasons — never a person's
name nor a case reference.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from hub.domain.closure import CloseReason
from hub.domain.continuity import Category
from hub.domain.errors import DomainError
from hub.domain.settings import Setting

Section = dict[str, int]
HOSPITAL = frozenset({Setting.EMERGENCY, Setting.HOSPITAL})
HOSPITAL_LIKE = frozenset({Setting.EMERGENCY, Setting.HOSPITAL, Setting.REHAB, Setting.HAD})


@dataclass(frozen=True)
class Period:
    start: date
    end: date  # inclusive

    def __contains__(self, day: date) -> bool:
        return self.start <= day <= self.end


def period(start: date | None, end: date | None, today: date) -> Period:
    """Default: from the first day of the month a year ago to today."""
    end = end or today
    start = start or date(end.year - 1, end.month, 1)
    if start > end:
        raise DomainError("error.report_period", start=start.isoformat(), end=end.isoformat())
    return Period(start, end)


@dataclass(frozen=True)
class FileRow:
    referent: str
    opened_on: date
    closed_on: date | None = None
    close_reason: str | None = None
    due: date | None = None  # next evaluation due date, for open files

    def active_on(self, day: date) -> bool:
        return self.opened_on <= day and (self.closed_on is None or self.closed_on > day)


@dataclass(frozen=True)
class ItemRow:
    """A plan item as it stands now (its current version) in an open file."""

    file: int  # any key grouping the items of one file
    status: str
    closed: bool = False


@dataclass(frozen=True)
class MoveRow:
    setting: str
    previous: str
    on: date


@dataclass(frozen=True)
class BreakRow:
    category: str
    source: str
    on: date


@dataclass(frozen=True)
class HandoverRow:
    kind: str
    on: date
    acked: bool


def caseloads(files: Iterable[FileRow], case_managers: Iterable[str], at: date) -> Section:
    """Active files per case manager on `at`: every configured one, even with none."""
    counts = Counter(f.referent for f in files if f.active_on(at))
    out = {cm: counts.get(cm, 0) for cm in case_managers}
    out.update({cm: n for cm, n in sorted(counts.items()) if cm not in out})
    return out


def limits(load: Section, target: int, maximum: int) -> Section:
    return {"target": target, "maximum": maximum,
            "over_target": sum(1 for n in load.values() if n > target),
            "over_maximum": sum(1 for n in load.values() if n > maximum)}


def _months(p: Period) -> list[str]:
    out, year, month = [], p.start.year, p.start.month
    while (year, month) <= (p.end.year, p.end.month):
        out.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return out


def intake(files: Iterable[FileRow], p: Period) -> Section:
    """Files opened per month of the period (every month listed, zeros included)."""
    out = dict.fromkeys(_months(p), 0)
    for f in files:
        if f.opened_on in p:
            out[f.opened_on.strftime("%Y-%m")] += 1
    return out


def reevaluations(files: Iterable[FileRow], today: date) -> Section:
    """Open files today, and those whose re-evaluation date has gone by."""
    open_files = [f for f in files if f.closed_on is None]
    return {"open_files": len(open_files),
            "overdue": sum(1 for f in open_files if f.due is not None and f.due < today)}


def unmet_needs(items: Iterable[ItemRow]) -> Section:
    """Open plan items marked `unavailable`: needs no service could meet."""
    unmet = [i for i in items if not i.closed and i.status == "unavailable"]
    return {"items": len(unmet), "files": len({i.file for i in unmet})}


def transitions(moves: Iterable[MoveRow], p: Period) -> Section:
    """Moves in the period by setting reached, and hospital stays (entries into acute care)."""
    inside = [m for m in moves if m.on in p]
    out = {s.value: 0 for s in Setting}
    for m in inside:
        out[m.setting] = out.get(m.setting, 0) + 1
    out["hospital_stays"] = sum(
        1 for m in inside if m.setting in HOSPITAL and m.previous not in HOSPITAL_LIKE
    )
    return out


def breaks(rows: Iterable[BreakRow], p: Period) -> Section:
    out = {c.value: 0 for c in Category}
    for b in rows:
        if b.on in p:
            out[b.category] = out.get(b.category, 0) + 1
    return out


def handovers(rows: Iterable[HandoverRow], p: Period) -> Section:
    inside = [h for h in rows if h.on in p]
    return {"professional": sum(1 for h in inside if h.kind == "professional"),
            "case_manager": sum(1 for h in inside if h.kind == "case_manager"),
            "unacknowledged": sum(1 for h in inside if not h.acked)}


def closures(files: Iterable[FileRow], p: Period) -> Section:
    out = {r.value: 0 for r in CloseReason}
    for f in files:
        if f.closed_on is not None and f.closed_on in p and f.close_reason:
            out[f.close_reason] = out.get(f.close_reason, 0) + 1
    return out
