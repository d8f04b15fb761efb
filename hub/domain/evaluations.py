"""Standardised multidimensional evaluations and when the next one is due (SPEC §1, §5)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

from hub.domain import aggir
from hub.domain.errors import DomainError

DEFAULT_INTERVAL_DAYS = 182
HOSPITAL_RETURN_DAYS = 7  # a return from hospital makes an evaluation due within a week

E = TypeVar("E", bound=StrEnum)


class Tool(StrEnum):
    INTERRAI_HC = "interRAI-HC"
    SMAF = "SMAF"
    AGGIR = "AGGIR"
    OTHER = "other"


class Reason(StrEnum):
    INITIAL = "initial"
    ROUTINE = "routine"
    CHANGE = "change"
    HOSPITAL_RETURN = "hospital_return"


class EvaluationError(DomainError):
    """A refused evaluation record; `key` is the catalog message the user reads."""


@dataclass(frozen=True)
class Evaluation:
    date: dt.date
    tool: Tool
    reason: Reason
    gir: int | None  # AGGIR's result, 1 (most dependent) to 6
    evaluator: str
    grid: str | None = None  # the ten AGGIR letters it was computed from (hub.domain.aggir)


def record(
    when: dt.date,
    tool: Tool | str,
    reason: Reason | str,
    gir: int | None,
    evaluator: str,
    *,
    today: dt.date,
    grid: str | None = None,
) -> Evaluation:
    """A validated evaluation: a known tool and reason, a GIR only from AGGIR, not in the future.

    With `grid` (ten letters A/B/C, see `hub.domain.aggir.parse_grid`) the GIR is computed by
    the official algorithm; a `gir` given as well must agree with it. Raises EvaluationError,
    or aggir.GridError naming the bad position and variable.
    """
    parsed_tool = _parse(Tool, tool, "error.eval_bad_tool")
    parsed_reason = _parse(Reason, reason, "error.eval_bad_reason")
    if when > today:
        raise EvaluationError("error.eval_in_future", date=when.isoformat(),
                              today=today.isoformat())
    letters: str | None = None
    if grid is not None:
        if parsed_tool is not Tool.AGGIR:
            raise EvaluationError("error.eval_grid_needs_aggir", tool=parsed_tool.value)
        letters = aggir.parse_grid(grid)
        computed = aggir.gir(letters)
        if gir is not None and gir != computed:
            raise EvaluationError("error.eval_gir_disagrees", gir=gir, computed=computed, grid=letters)
        gir = computed
    if gir is not None:
        if parsed_tool is not Tool.AGGIR:
            raise EvaluationError("error.eval_gir_needs_aggir", tool=parsed_tool.value)
        if isinstance(gir, bool) or not 1 <= gir <= 6:
            raise EvaluationError("error.eval_bad_gir", gir=gir)
    if not evaluator.strip():
        raise EvaluationError("error.eval_no_evaluator")
    return Evaluation(when, parsed_tool, parsed_reason, gir, evaluator.strip(), letters)


def default_reason(last: Evaluation | None, hospital_return: dt.date | None, on: dt.date | None = None) -> Reason:
    """The reason to assume when `!eval done` names none, for an evaluation done on `on` (None:
    after every other); `last` is the latest evaluation on or before that day. One dated before
    the hospital return is not the evaluation that follows it (back-dated: done on the ward)."""
    if last is None:
        return Reason.INITIAL
    if hospital_return is not None and last.date < hospital_return and (on is None or on >= hospital_return):
        return Reason.HOSPITAL_RETURN
    return Reason.ROUTINE


def next_due(
    last: Evaluation | None,
    opened_on: dt.date,
    interval_days: int = DEFAULT_INTERVAL_DAYS,
    hospital_return: dt.date | None = None,
) -> dt.date:
    """When the next evaluation is due.

    With none yet, the initial one is due on the day the file was opened; otherwise
    `interval_days` after the last one. A return from hospital (the latest one) brings it
    forward to within 7 days, unless an evaluation was done on or after the return day.
    """
    if interval_days < 1:
        raise ValueError("interval_days must be positive")
    due = opened_on if last is None else last.date + dt.timedelta(days=interval_days)
    if hospital_return is not None and (last is None or last.date < hospital_return):
        due = min(due, hospital_return + dt.timedelta(days=HOSPITAL_RETURN_DAYS))
    return due


def _parse(enum: type[E], value: E | str, key: str) -> E:
    try:
        return enum(value.strip() if isinstance(value, str) else value)
    except ValueError:
        raise EvaluationError(key, value=str(value),
                              allowed=", ".join(e.value for e in enum)) from None
