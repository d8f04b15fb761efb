"""The person's information and consent (French public health code, article L1110-4).

Within the care team, information is shared once the person has been informed; outside it
(carers, other people without a care role), their consent is needed. The file keeps every
record (the history); the current state is derived from it, never stored apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, time, tzinfo
from enum import StrEnum
from zoneinfo import ZoneInfo

from hub.domain.effects import Effect, Kick, Notify
from hub.domain.errors import DomainError
from hub.domain.team import Member, Role, active

KIND = "consent.update"
REMINDER_KIND = "consent.reminder"
NOTE_MAX = 500
END_REASON = "consent_withdrawn"  # kept on the ended team membership
PARIS = ZoneInfo("Europe/Paris")
REMINDER_HOUR = time(9, 0)  # reminders come in the (French) working day, not at night

# Roles outside the care team: adding them shares information beyond it.
OUTSIDE_CARE_TEAM = frozenset({Role.CARER, Role.OTHER})


class Status(StrEnum):
    INFORMED = "informed"  # told how the care team shares information about them
    GIVEN = "given"  # agreed to a sharing (scope)
    REFUSED = "refused"  # refused (or withdrew) a sharing (scope)


class Scope(StrEnum):
    CARE_TEAM = "care_team"
    EXTENDED = "extended"  # beyond the care team: carers, other people


STATUS_ALIASES = {"informe": "informed", "informé": "informed", "informee": "informed", "informée": "informed",
                  "donne": "given", "donné": "given", "donnee": "given", "donnée": "given",
                  "refuse": "refused", "refusé": "refused", "refusee": "refused", "refusée": "refused"}
SCOPE_ALIASES = {"equipe": "care_team", "équipe": "care_team", "equipe_de_soins": "care_team",
                 "équipe_de_soins": "care_team", "soins": "care_team",
                 "etendu": "extended", "étendu": "extended", "etendue": "extended", "étendue": "extended",
                 "elargi": "extended", "élargi": "extended"}


@dataclass(frozen=True)
class Record:
    status: Status
    scope: Scope
    on: date  # when the person was informed / agreed / refused
    by: str
    at: datetime  # when it was recorded
    note: str | None = None


@dataclass(frozen=True)
class State:
    informed: bool
    extended: bool  # information may be shared beyond the care team
    latest: Record | None  # the record deciding `extended` (given/refused), if any
    informed_on: date | None


def by_date(history: Sequence[Record]) -> list[Record]:
    """The records in the order of their dates (the day the person said it), not of their entry:
    a record may be back-dated (`--date`), and a refusal dated before a consent entered earlier
    does not undo it. Same date: the later entry comes last (the stable sort keeps entry order)."""
    return sorted(history, key=lambda r: r.on)


def state(history: Sequence[Record]) -> State:
    """The current state from the records, in entry order. The record with the latest date
    decides (ties: the later entry). Giving or refusing consent implies the person was informed;
    an `informed` record never changes the consent itself."""
    informed_on = min((r.on for r in history), default=None)
    decisive = [r for r in by_date(history) if r.status is not Status.INFORMED]
    latest = decisive[-1] if decisive else None
    extended = latest is not None and latest.status is Status.GIVEN and latest.scope is Scope.EXTENDED
    return State(informed=bool(history), extended=extended, latest=latest, informed_on=informed_on)


def check_member(current: State, user_id: str, role: Role) -> None:
    """A carer or another person outside the care team joins only with extended consent."""
    if role in OUTSIDE_CARE_TEAM and not current.extended:
        key = "error.consent_refused_extended" if current.latest is not None \
            and current.latest.status is Status.REFUSED else "error.consent_extended_needed"
        raise DomainError(key, user=user_id, role=role.value)


def check_note(note: str | None) -> str | None:
    if note is None:
        return None
    note = " ".join(note.split())
    if not note:
        return None
    if len(note) > NOTE_MAX:
        raise DomainError("error.consent_note_long", max=NOTE_MAX)
    return note


def record(
    history: Sequence[Record], team: Sequence[Member], case_ref: str, status: Status, scope: Scope | None,
    on: date | None, note: str | None, *, by: str, now: datetime, tz: tzinfo = PARIS,
) -> tuple[Record, list[Member], list[Effect]]:
    """Record information, consent or refusal. Returns the record, the members who must leave
    (consent to share beyond the care team withdrawn) and the effects."""
    today = now.astimezone(tz).date()
    on = on or today
    if on > today:
        raise DomainError("error.consent_future", date=on.isoformat())
    if status is Status.INFORMED and scope is Scope.EXTENDED:
        raise DomainError("error.consent_informed_extended")
    # Refusing without a scope refuses the sharing beyond the care team; giving without one
    # covers the care team only: widening the sharing is always said explicitly.
    chosen = scope or (Scope.EXTENDED if status is Status.REFUSED else Scope.CARE_TEAM)
    entry = Record(status, chosen, on, by, now, check_note(note))
    before, after = state(history), state([*history, entry])
    leaving = [m for m in active(list(team)) if m.role in OUTSIDE_CARE_TEAM] \
        if before.extended and not after.extended else []
    ended = [replace(m, until=now, end_reason=END_REASON) for m in leaving]
    consequence = _consequence(before, after, entry, leaving)
    params = {"by": by, "what": {"key": f"consent.what.{status.value}.{chosen.value}"}, "date": on.isoformat(),
              "note": {"key": "consent.note", "params": {"note": entry.note}} if entry.note else "",
              "consequence": consequence}
    effects: list[Effect] = [Notify(KIND, case_ref, "consent.recorded", params)]
    # The kick reason is server-readable state: the generic one, nothing about consent.
    effects += [Kick(case_ref, m.user_id) for m in leaving]
    return entry, ended, effects


def _consequence(before: State, after: State, entry: Record, leaving: Sequence[Member]) -> dict[str, object]:
    if entry.status is not Status.INFORMED and after.latest is not entry:
        # Back-dated before a later decision: kept in the history, but the later one still holds.
        assert after.latest is not None
        return {"key": "consent.consequence.superseded",
                "params": {"date": after.latest.on.isoformat(),
                           "what": {"key": f"consent.what.{after.latest.status.value}.{after.latest.scope.value}"}}}
    if leaving:
        return {"key": "consent.consequence.removed",
                "params": {"users": [m.user_id for m in leaving], "count": len(leaving)}}
    if before.extended and not after.extended:
        return {"key": "consent.consequence.withdrawn"}
    if after.extended and not before.extended:
        return {"key": "consent.consequence.extended"}
    if entry.status is Status.REFUSED and entry.scope is Scope.CARE_TEAM:
        return {"key": "consent.consequence.objects"}
    if not before.informed:
        return {"key": "consent.consequence.informed"}
    return {"key": "consent.consequence.none"}


def reminder_due(opened_at: datetime, reminded_at: datetime | None, now: datetime, tz: tzinfo = PARIS) -> bool:
    """At most one reminder per local calendar day (the territory's zone `tz`), from 9:00,
    starting the day after opening: the case manager usually informs the person at the first visit."""
    local = now.astimezone(tz)
    if local.time() < REMINDER_HOUR or local.date() <= opened_at.astimezone(tz).date():
        return False
    return reminded_at is None or reminded_at.astimezone(tz).date() < local.date()


def reminder(case_ref: str, referent: str, opened_at: datetime, now: datetime, tz: tzinfo = PARIS) -> Notify:
    days = (now.astimezone(tz).date() - opened_at.astimezone(tz).date()).days
    return Notify(REMINDER_KIND, case_ref, "consent.reminder", {"case": case_ref, "days": days},
                  mentions=(referent,))


def reminder_day(now: datetime, tz: tzinfo = PARIS) -> date:
    return now.astimezone(tz).date()


def history_lines(history: Sequence[Record]) -> list[dict[str, object]]:
    return [{"key": "consent.history_line", "params": {
        "date": r.on.isoformat(), "what": {"key": f"consent.what.{r.status.value}.{r.scope.value}"},
        "by": r.by, "note": {"key": "consent.note", "params": {"note": r.note}} if r.note else ""}}
        for r in reversed(by_date(history))]


def summary(current: State) -> dict[str, object]:
    """The state as catalog messages: information, then sharing beyond the care team."""
    informed: dict[str, object] = (
        {"key": "consent.summary.informed", "params": {"date": current.informed_on.isoformat()}}
        if current.informed_on else {"key": "consent.summary.not_informed"})
    if current.extended:
        assert current.latest is not None
        sharing: dict[str, object] = {"key": "consent.summary.extended",
                                      "params": {"date": current.latest.on.isoformat()}}
    elif current.latest is not None and current.latest.status is Status.REFUSED:
        sharing = {"key": f"consent.summary.refused.{current.latest.scope.value}",
                   "params": {"date": current.latest.on.isoformat()}}
    else:
        sharing = {"key": "consent.summary.care_team"}
    return {"informed": informed, "sharing": sharing}
