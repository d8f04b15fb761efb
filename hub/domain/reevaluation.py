"""Re-evaluation prompts: 14 days before the due date, on it, then weekly while overdue.

A daily sweep reads every open file's due date; there is no job per person. Each prompt
belongs to an *occasion* with a stable key, and the caller records `(case_ref, occasion)`
once sent, so a prompt is never sent twice (even across restarts) and one missed while the
hub was down is sent late, once — but only while it is still the current occasion:

| days from due (d = today - due) | prompt   | occasion key             |
|---------------------------------|----------|--------------------------|
| d < -14                         | none     |                          |
| -14 <= d <= -1                  | upcoming | `upcoming:<due>`         |
| 0 <= d <= 6 (the due week)      | due      | `due:<due>`              |
| d >= 7                          | overdue  | `overdue:<due>:<d // 7>` |

So overdue week n covers days 7n .. 7n+6 after the due date. A hub down for three weeks
sends one prompt for the current week on its return, not a backlog; a hub down on the due
date sends the due prompt late if it is back within the due week, else the current overdue
one. Occasion keys embed the due date: when a new evaluation (or a hospital return) moves
it, the new date's occasions start afresh and the old ones are simply never current again.
"""

from __future__ import annotations

from collections.abc import Container, Iterable
from datetime import date
from enum import StrEnum
from typing import Any, NamedTuple

from hub.domain.effects import Notify

UPCOMING_DAYS = 14
OVERDUE_EVERY_DAYS = 7


class PromptKind(StrEnum):
    UPCOMING = "reevaluation.upcoming"
    DUE = "reevaluation.due"
    OVERDUE = "reevaluation.overdue"


class DueRow(NamedTuple):
    case_ref: str
    due: date
    mentions: tuple[str, ...]


def prompt_for(due: date, today: date) -> tuple[PromptKind, str] | None:
    """The prompt current on `today` for this due date, and its occasion key."""
    d = (today - due).days
    if d < -UPCOMING_DAYS:
        return None
    if d < 0:
        return PromptKind.UPCOMING, f"upcoming:{due.isoformat()}"
    if d < OVERDUE_EVERY_DAYS:
        return PromptKind.DUE, f"due:{due.isoformat()}"
    return PromptKind.OVERDUE, f"overdue:{due.isoformat()}:{d // OVERDUE_EVERY_DAYS}"


def sweep(
    rows: Iterable[DueRow | tuple[str, date, tuple[str, ...]]],
    today: date,
    sent: Container[tuple[str, str]],
) -> list[Notify]:
    """The notices to send today, one pass over the rows.

    Params: `due` (ISO date), `days` (days left before the due date for `upcoming`, days
    since it for `due` and `overdue`) and `occasion`, the key the caller records with the
    case reference in `sent` in the same transaction as the outbox entry.
    """
    out: list[Notify] = []
    taken: set[tuple[str, str]] = set()  # a case listed twice is prompted once
    # Many files share a due date: work out each date's prompt once.
    by_due: dict[date, tuple[str, str, dict[str, Any]] | None] = {}
    for case_ref, due, mentions in rows:
        try:
            prompt = by_due[due]
        except KeyError:
            found = prompt_for(due, today)
            prompt = by_due[due] = (
                None if found is None else (found[0].value, found[1], {
                    "due": due.isoformat(), "days": abs((today - due).days), "occasion": found[1],
                })
            )
        if prompt is None:
            continue
        kind, occasion, params = prompt
        key = (case_ref, occasion)
        if key in sent or key in taken:
            continue
        taken.add(key)
        out.append(Notify(kind, case_ref, kind, dict(params), tuple(mentions)))
    return out
