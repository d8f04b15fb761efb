from __future__ import annotations

from datetime import date

import pytest

from hub.domain.errors import DomainError
from hub.domain.evaluations import (
    Evaluation,
    Reason,
    Tool,
    default_reason,
    next_due,
    record,
)

TODAY = date(2026, 3, 10)


def ev(on: date) -> Evaluation:
    return Evaluation(on, Tool.INTERRAI_HC, Reason.ROUTINE, None, "@cm:x")


def test_record_parses_tool_and_reason() -> None:
    e = record(date(2026, 3, 1), "AGGIR", "initial", 3, " @cm:x ", today=TODAY)
    assert e == Evaluation(date(2026, 3, 1), Tool.AGGIR, Reason.INITIAL, 3, "@cm:x")
    assert record(TODAY, "interRAI-HC", Reason.CHANGE, None, "@cm:x", today=TODAY).tool is (
        Tool.INTERRAI_HC
    )


@pytest.mark.parametrize(
    ("when", "tool", "reason", "gir", "key"),
    [
        (date(2026, 3, 11), "SMAF", "routine", None, "error.eval_in_future"),
        (TODAY, "SMAF", "routine", 3, "error.eval_gir_needs_aggir"),
        (TODAY, "AGGIR", "routine", 0, "error.eval_bad_gir"),
        (TODAY, "AGGIR", "routine", 7, "error.eval_bad_gir"),
        (TODAY, "Katz", "routine", None, "error.eval_bad_tool"),
        (TODAY, "SMAF", "whim", None, "error.eval_bad_reason"),
    ],
)
def test_record_refuses(when: date, tool: str, reason: str, gir: int | None, key: str) -> None:
    with pytest.raises(DomainError) as err:
        record(when, tool, reason, gir, "@cm:x", today=TODAY)
    assert err.value.key == key


def test_initial_evaluation_due_at_once() -> None:
    assert next_due(None, date(2026, 1, 5)) == date(2026, 1, 5)


def test_due_after_interval() -> None:
    assert next_due(ev(date(2026, 1, 1)), date(2025, 1, 1)) == date(2026, 7, 2)
    assert next_due(ev(date(2026, 1, 1)), date(2025, 1, 1), interval_days=90) == date(
        2026, 4, 1
    )


def test_hospital_return_brings_it_forward() -> None:
    last = ev(date(2026, 1, 1))
    assert next_due(last, date(2025, 1, 1), hospital_return=date(2026, 2, 1)) == date(2026, 2, 8)
    # an evaluation done on or after the return satisfies it
    assert next_due(ev(date(2026, 2, 1)), date(2025, 1, 1),
                    hospital_return=date(2026, 2, 1)) == date(2026, 8, 2)
    # never pushes a nearer due date back
    assert next_due(None, date(2026, 2, 1), hospital_return=date(2026, 1, 30)) == date(2026, 2, 1)
    assert next_due(last, date(2025, 1, 1), hospital_return=date(2026, 6, 30)) == date(2026, 7, 2)


def test_interval_must_be_positive() -> None:
    with pytest.raises(ValueError):
        next_due(None, TODAY, interval_days=0)


def test_default_reason() -> None:
    assert default_reason(None, None) is Reason.INITIAL
    assert default_reason(ev(date(2026, 1, 1)), date(2026, 2, 1)) is Reason.HOSPITAL_RETURN
    assert default_reason(ev(date(2026, 3, 1)), date(2026, 2, 1)) is Reason.ROUTINE


def test_default_reason_of_an_evaluation_dated_before_the_hospital_return() -> None:
    back = date(2026, 2, 1)
    assert default_reason(ev(date(2026, 1, 1)), back, date(2026, 1, 31)) is Reason.ROUTINE
    assert default_reason(ev(date(2026, 1, 1)), back, back) is Reason.HOSPITAL_RETURN
