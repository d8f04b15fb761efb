"""The person's rights: when a GIR calls for the département's APA (re)assessment (SPEC §10).

The APA (allocation personnalisée d'autonomie) is open to GIR 1 to 4 (CASF art. R. 232-4); the
département's medico-social team assesses it, and assesses it again when the person's
situation changes. So a recorded GIR opens a *rights review* for the case manager:

- when it enters 1–4 (no GIR known before, or the previous one was 5 or 6): ask for the APA;
- when it differs from the previous known GIR: ask for a revision (or tell the département
  that the person no longer qualifies, when it leaves 1–4).

"The previous GIR" is the latest GIR recorded before (by evaluation date), whatever the tool
of the evaluations without one in between. A backdated GIR (dated before the latest known
one) is history, not the person's current state: it opens nothing.

A review stays open until the case manager closes it (`!rights done <n>`). One open for more
than 30 days is reminded once a week: occasion `rights:<n>:<week>`, week 0 on day 30, so the
caller records (case, occasion) once sent and a hub down for weeks sends only the current one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from typing import Any

from hub.domain.aggir import APA_ELIGIBLE
from hub.domain.effects import Notify
from hub.domain.errors import DomainError
from hub.domain.transitions import local_day

KIND = "rights.review"
REMIND_AFTER_DAYS = 30
REMIND_EVERY_DAYS = 7


@dataclass(frozen=True)
class Review:
    number: int  # per file, from 1
    old_gir: int | None  # None: no GIR known before
    new_gir: int
    evaluated_on: date  # the evaluation that opened it
    opened_at: datetime
    opened_by: str
    closed_at: datetime | None = None
    closed_by: str | None = None

    @property
    def is_open(self) -> bool:
        return self.closed_at is None


def needs_review(previous: int | None, new: int | None) -> bool:
    """True when `new` enters 1–4 or differs from `previous` (both GIRs, None = unknown)."""
    if new is None:
        return False
    if previous is None:
        return new in APA_ELIGIBLE
    return new != previous


def situation(old: int | None, new: int) -> str:
    """Which advice the notice gives: entering the APA, a revision, leaving it, or outside it."""
    if new in APA_ELIGIBLE:
        return "revise" if old in APA_ELIGIBLE else "enter"
    return "leave" if old in APA_ELIGIBLE else "outside"


def open_review(previous: tuple[date, int] | None, evaluated_on: date, new_gir: int | None,
                existing: list[Review], *, case_ref: str, by: str, referent: str,
                now: datetime) -> tuple[Review, Notify] | None:
    """The review a new GIR opens, with its notice for the case manager, or None.

    `previous` is the latest (date, GIR) recorded before this evaluation; `existing` the file's
    reviews (their numbers continue).
    """
    if new_gir is None or (previous is not None and evaluated_on < previous[0]):
        return None
    old = previous[1] if previous is not None else None
    if not needs_review(old, new_gir):
        return None
    number = max((r.number for r in existing), default=0) + 1
    review = Review(number, old, new_gir, evaluated_on, now, by)
    return review, Notify(KIND, case_ref, "rights.review", notice_params(review, case_ref), (referent,))


def notice_params(review: Review, case_ref: str) -> dict[str, Any]:
    return {
        "case": case_ref, "number": review.number, "new": review.new_gir,
        "old": review.old_gir if review.old_gir is not None else {"key": "rights.no_previous"},
        "date": review.evaluated_on.isoformat(),
        "advice": {"key": f"rights.advice.{situation(review.old_gir, review.new_gir)}"},
    }


def close(reviews: list[Review], number: int, *, by: str, now: datetime, tz: tzinfo) -> Review:
    """The review `number` closed; DomainError when there is none or it is closed already."""
    found = next((r for r in reviews if r.number == number), None)
    if found is None:
        raise DomainError("error.rights_unknown", number=number)
    if not found.is_open:
        raise DomainError("error.rights_closed", number=number,
                          date=local_day(found.closed_at, tz).isoformat() if found.closed_at else "")
    return Review(found.number, found.old_gir, found.new_gir, found.evaluated_on, found.opened_at,
                  found.opened_by, now, by)


def reminder_occasion(opened_on: date, today: date) -> str | None:
    """The weekly occasion current on `today` for a review opened on `opened_on`, or None
    before 30 days."""
    days = (today - opened_on).days
    if days < REMIND_AFTER_DAYS:
        return None
    return f"{(days - REMIND_AFTER_DAYS) // REMIND_EVERY_DAYS}"


def reminder(review: Review, case_ref: str, referent: str, today: date, tz: tzinfo) -> Notify:
    """The weekly reminder; `today` and `tz` are the territory's (SPEC §5: local dates)."""
    opened_on = local_day(review.opened_at, tz)
    params = notice_params(review, case_ref) | {"days": (today - opened_on).days, "since": opened_on.isoformat()}
    return Notify(KIND, case_ref, "rights.reminder", params, (referent,))


def line(review: Review, case_ref: str, today: date, tz: tzinfo, *, with_case: bool) -> dict[str, Any]:
    """One open review in `!rights`, as a catalog message (local dates, SPEC §5)."""
    opened_on = local_day(review.opened_at, tz)
    params = notice_params(review, case_ref) | {"since": opened_on.isoformat(), "days": (today - opened_on).days}
    return {"key": "rights.line_desk" if with_case else "rights.line", "params": params}
