"""Referrals to the integrated access point (guichet intégré, SPEC §9). Pure.

A referral asks the territory's service to follow a person. Core task 1 of case management
(PRISMA / MAIA) is to check that case management is the right level of intervention: the three
criteria of a complex situation must all be met before a file is opened (SPEC §1, §9):
a health problem affecting autonomy, help and care that are insufficient or unsuitable, and
nobody able to set them up and coordinate them.
"""

from __future__ import annotations

import re
import statistics
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta, tzinfo
from enum import StrEnum

from hub.domain import caseload
from hub.domain import days as local_days
from hub.domain.errors import DomainError
from hub.domain.persons import Identifier
from hub.domain.transitions import PARIS, local_day

REF = re.compile(r"^O-\d{4}-\d{4,}$")
REMINDER_DAYS = 7  # SPEC §9: reminded in the triage room when undecided this long
ERASE_DAYS = 90  # SPEC §9: a refused referral's personal data is kept this long
MAX_REASON = 2000


class Source(StrEnum):
    MATRIX = "matrix"
    FHIR = "fhir"


class Status(StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    REFUSED = "refused"


@dataclass(frozen=True)
class Criteria:
    """The three criteria of a complex situation; None while not assessed."""

    autonomy: bool | None = None  # a health problem affecting autonomy
    care: bool | None = None  # help and care insufficient or unsuitable
    coordination: bool | None = None  # nobody able to set them up and coordinate them

    @property
    def all_met(self) -> bool:
        return self.autonomy is True and self.care is True and self.coordination is True

    def missing(self) -> list[str]:
        """Names of the criteria not (yet) met, in SPEC order."""
        return [name for name in ("autonomy", "care", "coordination") if getattr(self, name) is not True]


@dataclass(frozen=True)
class Referral:
    """One referral. `referrer` is a Matrix id (source matrix) or the FHIR requester as sent;
    `referrer_room` is where the referrer is told the decision (None for FHIR: they read the
    ServiceRequest's status). Personal fields are blanked by `erase`."""

    ref: str
    source: Source
    received_at: datetime
    referrer: str
    name: str
    born: date | None
    reason: str
    identifiers: tuple[Identifier, ...] = ()
    gp: str | None = None
    referrer_room: str | None = None
    criteria: Criteria = Criteria()
    status: Status = Status.PENDING
    duplicate_of: str | None = None  # the case reference of the person already followed
    decided_at: datetime | None = None
    decided_by: str | None = None
    case_ref: str | None = None  # the file opened on acceptance
    refusal: str | None = None
    refer_to: str | None = None  # where to turn, on refusal
    reminded_on: date | None = None
    erased_at: datetime | None = None

    @property
    def pending(self) -> bool:
        return self.status is Status.PENDING


def referral_ref(year: int, sequence: int) -> str:
    """O-YYYY-NNNN (SPEC §9), numbered per year like case references."""
    return f"O-{year:04d}-{sequence:04d}"


def check_ref(text: str) -> str:
    ref = text.strip().upper()
    if not REF.match(ref):
        raise DomainError("error.referral_ref", value=text)
    return ref


def check_reason(text: str | None) -> str:
    reason = " ".join((text or "").split())
    if not reason:
        raise DomainError("error.referral_reason_missing")
    if len(reason) > MAX_REASON:
        raise DomainError("error.referral_reason_long", maximum=MAX_REASON)
    return reason


def new_referral(
    *, ref: str, source: Source, now: datetime, referrer: str, name: str, born: date | None, reason: str,
    identifiers: Sequence[Identifier] = (), gp: str | None = None, referrer_room: str | None = None,
    followed: Mapping[Identifier, str] | None = None,
) -> Referral:
    """A new pending referral. `followed` maps identifiers of the referral already held by an
    open or closed file to that file's reference: the referral is flagged, never opened twice.
    The name, birth date and reason are checked by the caller (`persons.check_*`, `check_reason`)."""
    duplicate = next((followed[i] for i in identifiers if followed and i in followed), None)
    return Referral(ref=ref, source=source, received_at=now, referrer=referrer, name=name, born=born,
                    reason=reason, identifiers=tuple(identifiers), gp=gp, referrer_room=referrer_room,
                    duplicate_of=duplicate)


def _require_pending(referral: Referral) -> None:
    if referral.erased_at is not None or not referral.pending:
        raise DomainError("error.referral_decided", ref=referral.ref,
                          state={"key": f"referral.state.{referral.status.value}"})


def record_criteria(referral: Referral, criteria: Criteria) -> Referral:
    """Criteria can be revised while the referral is undecided; a missing one keeps its value."""
    _require_pending(referral)
    merged = Criteria(
        criteria.autonomy if criteria.autonomy is not None else referral.criteria.autonomy,
        criteria.care if criteria.care is not None else referral.criteria.care,
        criteria.coordination if criteria.coordination is not None else referral.criteria.coordination,
    )
    return replace(referral, criteria=merged)


def check_acceptable(referral: Referral) -> None:
    """Only when all three criteria are met (SPEC §9); a person already followed is never opened twice."""
    _require_pending(referral)
    if referral.duplicate_of is not None:
        raise DomainError("error.referral_duplicate", ref=referral.ref, case=referral.duplicate_of)
    if not referral.criteria.all_met:
        raise DomainError("error.referral_criteria", ref=referral.ref,
                          missing=[{"key": f"referral.criterion.{name}"} for name in referral.criteria.missing()])


def accept(referral: Referral, *, case_ref: str, by: str, now: datetime) -> Referral:
    check_acceptable(referral)
    return replace(referral, status=Status.ACCEPTED, case_ref=case_ref, decided_by=by, decided_at=now)


def refuse(referral: Referral, *, why: str, refer_to: str | None, by: str, now: datetime) -> Referral:
    _require_pending(referral)
    return replace(referral, status=Status.REFUSED, refusal=check_reason(why),
                   refer_to=" ".join(refer_to.split()) if refer_to else None, decided_by=by, decided_at=now)


def choose_case_manager(loads: Mapping[str, caseload.Caseload], limits: caseload.Limits,
                        requested: str | None = None) -> tuple[str, list[str]]:
    """The referent of the file a referral opens, and the warnings of `caseload.check_intake`.

    `loads` holds every configured case manager (in configuration order, the tie-break).
    Requested: must be one of them; refused past the maximum, warned past the target or the
    monthly intake. Default (SPEC §9): the one with the most room under the target who has not
    reached the monthly intake and is below the maximum."""
    if requested is not None:
        if requested not in loads:
            raise DomainError("error.referral_not_case_manager", user=requested)
        return requested, caseload.check_intake(loads[requested], limits)
    best: tuple[int, str] | None = None
    for user, load in loads.items():
        if load.intake_this_month >= limits.intake_per_month or load.active >= limits.maximum:
            continue
        room = limits.target - load.active
        if best is None or room > best[0]:
            best = (room, user)
    if best is None:
        raise DomainError("error.referral_no_case_manager")
    return best[1], caseload.check_intake(loads[best[1]], limits)


def reminder_due(referral: Referral, now: datetime, today: date, days: int = REMINDER_DAYS,
                 tz: tzinfo = PARIS) -> bool:
    """Undecided for `days` local calendar days or more (same wall-clock time, the territory's
    zone `tz`), and not yet reminded today (once a day)."""
    return (referral.pending and referral.erased_at is None
            and now >= local_days.later(referral.received_at, days, tz) and referral.reminded_on != today)


def age_days(referral: Referral, now: datetime) -> int:
    return max(0, (now - referral.received_at).days)


def erase_due(referral: Referral, now: datetime, days: int = ERASE_DAYS) -> bool:
    return (referral.status is Status.REFUSED and referral.erased_at is None
            and referral.decided_at is not None and now - referral.decided_at >= timedelta(days=days))


def erase(referral: Referral, now: datetime) -> Referral:
    """Keep what the counts need (reference, source, status, dates); blank everything personal."""
    return replace(referral, name="", born=None, reason="", identifiers=(), gp=None, referrer="",
                   referrer_room=None, refusal=None, refer_to=None, erased_at=now)


@dataclass(frozen=True)
class CountRow:
    source: str
    status: str
    decided_at: datetime | None
    received_at: datetime


def figures(rows: Iterable[CountRow], start: date, end: date, tz: tzinfo) -> dict[str, int]:
    """Received, accepted, refused, pending and the median time to a decision (whole days, and
    hours for same-day decisions), by source and in total, for referrals received in
    [start, end] — the territory's dates, `tz` (SPEC §5, §9 figures). Median of no decision: 0."""
    out: dict[str, int] = {}
    inside = [r for r in rows if start <= local_day(r.received_at, tz) <= end]
    for label, chosen in (("total", inside), *((s.value, [r for r in inside if r.source == s.value])
                                               for s in Source)):
        hours = [(r.decided_at - r.received_at).total_seconds() / 3600 for r in chosen if r.decided_at]
        out[f"{label}.received"] = len(chosen)
        out[f"{label}.accepted"] = sum(1 for r in chosen if r.status == Status.ACCEPTED)
        out[f"{label}.refused"] = sum(1 for r in chosen if r.status == Status.REFUSED)
        out[f"{label}.pending"] = sum(1 for r in chosen if r.status == Status.PENDING)
        median = statistics.median(hours) if hours else 0.0
        out[f"{label}.median_days_to_decision"] = round(median / 24)
        out[f"{label}.median_hours_to_decision"] = round(median)
    return out


@dataclass(frozen=True)
class Draft:
    """What a referrer sends, before it is checked and numbered."""

    source: Source
    referrer: str
    name: str
    born: date | None
    reason: str
    identifiers: tuple[Identifier, ...] = ()
    gp: str | None = None
    referrer_room: str | None = None


def yes_no(word: str) -> bool:
    """`oui`/`non`, `yes`/`no` (and o/n, y/n, true/false, 1/0) for a criterion."""
    folded = word.strip().lower()
    if folded in ("oui", "yes", "o", "y", "true", "1", "vrai"):
        return True
    if folded in ("non", "no", "n", "false", "0", "faux"):
        return False
    raise DomainError("error.referral_yes_no", value=word)


#: Criterion words, English and French (accents folded by the caller), to the canonical name.
CRITERIA_WORDS = {
    "autonomy": "autonomy", "autonomie": "autonomy",
    "care": "care", "aides": "care", "aide": "care", "help": "care", "soins": "care",
    "coordination": "coordination",
}


def parse_criteria(pairs: Sequence[str]) -> Criteria:
    """`autonomie=oui aides=oui coordination=non` → Criteria; at least one pair, each named once."""
    found: dict[str, bool] = {}
    for pair in pairs:
        word, sep, value = pair.partition("=")
        folded = "".join(c for c in unicodedata.normalize("NFKD", word.strip().lower())
                         if not unicodedata.combining(c))
        name = CRITERIA_WORDS.get(folded)
        if not sep or name is None:
            raise DomainError("error.referral_criterion", value=pair)
        if name in found:
            raise DomainError("error.referral_criterion_twice", value=word)
        found[name] = yes_no(value)
    if not found:
        raise DomainError("error.referral_criterion", value="")
    return Criteria(found.get("autonomy"), found.get("care"), found.get("coordination"))
