"""When a GIR opens a rights review, its numbering, closing, and the weekly reminder occasions."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from hub.domain import evaluations, rights
from hub.domain.aggir import GridError
from hub.domain.errors import DomainError
from hub.domain.evaluations import EvaluationError, Tool

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
D0 = T0.date()
REF, CM = "R-2026-0001", "@cm:x"


@pytest.mark.parametrize(("previous", "new", "expected"), [
    (None, 1, True), (None, 4, True),  # enters 1–4 with nothing known before
    (None, 5, False), (None, 6, False),  # first GIR outside the APA: nothing to ask
    (5, 4, True), (6, 1, True),  # enters 1–4
    (3, 2, True), (2, 3, True),  # changes within 1–4: revision
    (4, 5, True), (2, 6, True),  # leaves 1–4
    (5, 6, True), (6, 5, True),  # changes outside 1–4
    (3, 3, False), (6, 6, False),  # same GIR: nothing
    (3, None, False), (None, None, False),  # an evaluation without GIR
])
def test_a_review_when_the_gir_enters_1_to_4_or_changes(previous: int | None, new: int | None,
                                                        expected: bool) -> None:
    assert rights.needs_review(previous, new) is expected


@pytest.mark.parametrize(("old", "new", "advice"), [
    (None, 3, "enter"), (5, 4, "enter"), (3, 2, "revise"), (4, 5, "leave"), (5, 6, "outside"),
])
def test_the_notice_says_what_to_ask_the_departement(old: int | None, new: int, advice: str) -> None:
    previous = None if old is None else (D0 - timedelta(days=200), old)
    opened = rights.open_review(previous, D0, new, [], case_ref=REF, by=CM, referent=CM, now=T0)
    assert opened is not None
    review, notice = opened
    assert (review.number, review.old_gir, review.new_gir, review.evaluated_on) == (1, old, new, D0)
    assert notice.kind == "rights.review" and notice.case_ref == REF and notice.mentions == (CM,)
    assert notice.params["advice"] == {"key": f"rights.advice.{advice}"}
    assert notice.params["new"] == new
    assert notice.params["old"] == (old if old is not None else {"key": "rights.no_previous"})


def test_numbers_continue_per_file_and_a_backdated_gir_opens_nothing() -> None:
    first = rights.open_review(None, D0, 4, [], case_ref=REF, by=CM, referent=CM, now=T0)
    assert first is not None
    second = rights.open_review((D0, 4), D0 + timedelta(days=30), 2, [first[0]], case_ref=REF, by=CM,
                                referent=CM, now=T0 + timedelta(days=30))
    assert second is not None and second[0].number == 2 and second[0].old_gir == 4
    # Dated before the latest known GIR: history, not the current state.
    assert rights.open_review((D0, 4), D0 - timedelta(days=1), 2, [first[0]], case_ref=REF, by=CM,
                              referent=CM, now=T0) is None
    # Same day as the latest: it is the current state.
    assert rights.open_review((D0, 4), D0, 3, [], case_ref=REF, by=CM, referent=CM, now=T0) is not None


def test_closing_a_review_once() -> None:
    opened = rights.open_review(None, D0, 3, [], case_ref=REF, by=CM, referent=CM, now=T0)
    assert opened is not None
    later = T0 + timedelta(days=3)
    closed = rights.close([opened[0]], 1, by=CM, now=later, tz=UTC)
    assert not closed.is_open and closed.closed_at == later and closed.closed_by == CM
    with pytest.raises(DomainError) as again:
        rights.close([closed], 1, by=CM, now=later, tz=UTC)
    assert again.value.key == "error.rights_closed" and again.value.params["date"] == later.date().isoformat()
    with pytest.raises(DomainError) as unknown:
        rights.close([closed], 2, by=CM, now=later, tz=UTC)
    assert unknown.value.key == "error.rights_unknown"


@pytest.mark.parametrize(("days", "occasion"), [
    (0, None), (29, None), (30, "0"), (36, "0"), (37, "1"), (43, "1"), (44, "2"), (400, "52"),
])
def test_a_review_older_than_30_days_has_one_occasion_a_week(days: int, occasion: str | None) -> None:
    assert rights.reminder_occasion(D0, D0 + timedelta(days=days)) == occasion


def test_an_evaluation_with_a_grid_records_the_letters_and_the_computed_gir() -> None:
    e = evaluations.record(D0, Tool.AGGIR, "initial", None, CM, today=D0, grid="abcabcaaab")
    assert (e.grid, e.gir) == ("ABCABCAAAB", 3)
    assert evaluations.record(D0, Tool.AGGIR, "initial", 3, CM, today=D0, grid="ABCABCAAAB").gir == 3
    with pytest.raises(EvaluationError) as disagrees:
        evaluations.record(D0, Tool.AGGIR, "initial", 2, CM, today=D0, grid="ABCABCAAAB")
    assert disagrees.value.key == "error.eval_gir_disagrees" and disagrees.value.params["computed"] == 3
    with pytest.raises(EvaluationError) as other_tool:
        evaluations.record(D0, Tool.SMAF, "initial", None, CM, today=D0, grid="ABCABCAAAB")
    assert other_tool.value.key == "error.eval_grid_needs_aggir"
    with pytest.raises(GridError):
        evaluations.record(D0, Tool.AGGIR, "initial", None, CM, today=D0, grid="ABCABCAAA")
    assert evaluations.record(D0, Tool.AGGIR, "initial", 4, CM, today=D0).grid is None  # --gir alone


def test_a_review_line_lists_its_age() -> None:
    opened = rights.open_review((D0 - timedelta(days=9), 5), D0, 4, [], case_ref=REF, by=CM, referent=CM, now=T0)
    assert opened is not None
    line = rights.line(opened[0], REF, date(2026, 3, 12), UTC, with_case=True)
    assert line["key"] == "rights.line_desk"
    assert line["params"]["days"] == 10 and line["params"]["old"] == 5 and line["params"]["case"] == REF
