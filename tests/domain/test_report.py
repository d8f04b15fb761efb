"""The pilot's report computed from plain rows."""

from __future__ import annotations

from datetime import date

import pytest

from hub.domain import report
from hub.domain.errors import DomainError
from hub.domain.report import BreakRow, FileRow, HandoverRow, ItemRow, MoveRow, Period

P = Period(date(2026, 1, 1), date(2026, 3, 31))
FILES = [
    FileRow("@a:x", date(2025, 12, 20), due=date(2026, 3, 1)),  # before the period, overdue
    FileRow("@a:x", date(2026, 1, 5), due=date(2026, 6, 1)),
    FileRow("@a:x", date(2026, 1, 31), date(2026, 2, 10), "death"),  # closed in the period
    FileRow("@b:x", date(2026, 3, 31), due=date(2026, 3, 31)),  # due today: not overdue
    FileRow("@c:x", date(2026, 4, 2)),  # after the period
]


def test_caseload_counts_files_active_at_the_end_for_every_configured_case_manager() -> None:
    load = report.caseloads(FILES, ("@a:x", "@b:x", "@z:x"), P.end)
    assert load == {"@a:x": 2, "@b:x": 1, "@z:x": 0}
    assert report.limits(load, 1, 2) == {"target": 1, "maximum": 2, "over_target": 1, "over_maximum": 0}


def test_intake_lists_every_month_of_the_period() -> None:
    assert report.intake(FILES, P) == {"2026-01": 2, "2026-02": 0, "2026-03": 1}
    assert list(report.intake([], Period(date(2025, 11, 15), date(2026, 2, 1)))) == [
        "2025-11", "2025-12", "2026-01", "2026-02"]


def test_overdue_unmet_transitions_breaks_handovers_closures() -> None:
    assert report.reevaluations(FILES, date(2026, 3, 31)) == {"open_files": 4, "overdue": 1}
    items = [ItemRow(1, "unavailable"), ItemRow(1, "unavailable"), ItemRow(2, "unavailable", closed=True),
             ItemRow(3, "in_place"), ItemRow(4, "unavailable")]
    assert report.unmet_needs(items) == {"items": 3, "files": 2}
    moves = [MoveRow("hospital", "home", date(2026, 1, 3)), MoveRow("rehab", "hospital", date(2026, 1, 9)),
             MoveRow("hospital", "rehab", date(2026, 1, 20)),  # a transfer, not a new stay
             MoveRow("emergency", "home", date(2026, 2, 2)), MoveRow("home", "emergency", date(2026, 2, 3)),
             MoveRow("hospital", "home", date(2025, 12, 1))]
    moved = report.transitions(moves, P)
    assert moved["hospital"] == 2 and moved["rehab"] == 1 and moved["emergency"] == 1 and moved["home"] == 1
    assert moved["hospital_stays"] == 2 and moved["nursing_home"] == 0
    breaks = [BreakRow("relational", "left", date(2026, 1, 2)), BreakRow("approach", "reported", date(2026, 3, 1)),
              BreakRow("approach", "reported", date(2026, 4, 1))]
    assert report.breaks(breaks, P) == {"relational": 1, "informational": 0, "approach": 1}
    handovers = [HandoverRow("professional", date(2026, 1, 2), True),
                 HandoverRow("case_manager", date(2026, 2, 2), False)]
    assert report.handovers(handovers, P) == {"professional": 1, "case_manager": 1, "unacknowledged": 1}
    assert report.closures(FILES, P)["death"] == 1 and sum(report.closures(FILES, P).values()) == 1


def test_the_period_defaults_to_a_year_and_must_be_in_order() -> None:
    assert report.period(None, None, date(2026, 5, 17)) == Period(date(2025, 5, 1), date(2026, 5, 17))
    with pytest.raises(DomainError, match=r"error\.report_period"):
        report.period(date(2026, 2, 1), date(2026, 1, 1), date(2026, 5, 17))
