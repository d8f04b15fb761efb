from __future__ import annotations

import json
import time
from datetime import date, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from hub.domain.reevaluation import DueRow, PromptKind, prompt_for, sweep

DUE = date(2026, 6, 15)


def day(n: int) -> date:
    return DUE + timedelta(days=n)


def test_nothing_before_the_upcoming_window() -> None:
    assert prompt_for(DUE, day(-15)) is None


def test_upcoming_is_one_occasion_for_the_two_weeks_before() -> None:
    assert prompt_for(DUE, day(-14)) == (PromptKind.UPCOMING, "upcoming:2026-06-15")
    assert prompt_for(DUE, day(-1)) == (PromptKind.UPCOMING, "upcoming:2026-06-15")


def test_due_on_the_day_and_late_within_the_due_week() -> None:
    assert prompt_for(DUE, DUE) == (PromptKind.DUE, "due:2026-06-15")
    assert prompt_for(DUE, day(6)) == (PromptKind.DUE, "due:2026-06-15")


def test_overdue_is_weekly() -> None:
    assert prompt_for(DUE, day(7)) == (PromptKind.OVERDUE, "overdue:2026-06-15:1")
    assert prompt_for(DUE, day(13)) == (PromptKind.OVERDUE, "overdue:2026-06-15:1")
    assert prompt_for(DUE, day(14)) == (PromptKind.OVERDUE, "overdue:2026-06-15:2")


def test_hub_down_three_weeks_sends_only_the_current_week() -> None:
    sent: set[tuple[str, str]] = set()
    rows = [DueRow("C1", DUE, ("@cm:x",))]
    assert [n.params["occasion"] for n in sweep(rows, day(-3), sent)] == ["upcoming:2026-06-15"]
    sent.add(("C1", "upcoming:2026-06-15"))
    notices = sweep(rows, day(23), sent)
    assert [(n.kind, n.params["occasion"]) for n in notices] == [
        ("reevaluation.overdue", "overdue:2026-06-15:3")
    ]


def test_sweep_notice_shape() -> None:
    rows = [DueRow("C1", DUE, ("@cm:x", "@gp:x")), ("C2", day(30), ())]
    [notice] = sweep(rows, day(-5), set())
    assert notice.kind == notice.message == "reevaluation.upcoming"
    assert notice.case_ref == "C1"
    assert notice.mentions == ("@cm:x", "@gp:x")
    assert notice.params == {"due": "2026-06-15", "days": 5, "occasion": "upcoming:2026-06-15"}
    json.dumps(notice.params)
    [late] = sweep(rows, day(9), set())
    assert late.params["days"] == 9


def test_sweep_skips_sent_and_duplicate_rows() -> None:
    rows = [DueRow("C1", DUE, ()), DueRow("C1", DUE, ()), DueRow("C2", DUE, ())]
    notices = sweep(rows, DUE, {("C2", "due:2026-06-15")})
    assert [n.case_ref for n in notices] == ["C1"]


def test_sweep_100k_rows_is_fast() -> None:
    today = date(2026, 1, 1)
    rows = [DueRow(f"C{i}", today + timedelta(days=i % 400 - 200), ()) for i in range(100_000)]
    start = time.perf_counter()
    notices = sweep(rows, today, set())
    elapsed = time.perf_counter() - start
    assert len(notices) == 100_000 - sum(1 for r in rows if (today - r.due).days < -14)
    assert elapsed < 2.0, elapsed


@settings(max_examples=300, deadline=None)
@given(
    up=st.sets(st.integers(min_value=0, max_value=119)),
    due_offset=st.integers(min_value=0, max_value=119),
)
def test_each_occasion_at_most_once_and_due_exactly_once(up: set[int], due_offset: int) -> None:
    start = date(2026, 1, 1)
    due = start + timedelta(days=due_offset)
    rows = [DueRow("C1", due, ())]
    sent: set[tuple[str, str]] = set()
    occasions: list[str] = []
    kinds: list[str] = []
    for n in sorted(up):
        today = start + timedelta(days=n)
        notices = sweep(rows, today, sent)
        assert len(notices) <= 1
        for notice in notices:
            # only the occasion current today is ever sent: never a stale backlog
            prompt = prompt_for(due, today)
            assert prompt is not None and notice.params["occasion"] == prompt[1]
            occasions.append(notice.params["occasion"])
            kinds.append(notice.kind)
            sent.add((notice.case_ref, notice.params["occasion"]))
    assert len(occasions) == len(set(occasions))
    up_days = {(start + timedelta(days=n) - due).days for n in up}
    if 0 in up_days:
        assert kinds.count(PromptKind.DUE) == 1
    expected_due = 1 if any(0 <= d <= 6 for d in up_days) else 0
    assert kinds.count(PromptKind.DUE) == expected_due
    expected_upcoming = 1 if any(-14 <= d <= -1 for d in up_days) else 0
    assert kinds.count(PromptKind.UPCOMING) == expected_upcoming
