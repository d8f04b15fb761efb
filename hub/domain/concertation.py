"""Clinical concertation: the case manager gathers the professionals who work with the person
(not their managers) to give the team one shared direction.

One concertation at a time per file: planned, maybe moved or cancelled, reminded the day before
and an hour before, open for decisions from its start until a little after its end, then its
minutes are posted. Times are typed and shown in French local time (Europe/Paris) and kept in UTC.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from hub.domain.effects import Effect, Notify
from hub.domain.errors import DomainError
from hub.domain.team import Member, Role, active, find

PARIS = ZoneInfo("Europe/Paris")  # the default territory; services pass the configured one
DEFAULT_MINUTES = 60
MIN_MINUTES, MAX_MINUTES = 15, 480
MAX_AHEAD = timedelta(days=365)
DAY_LEAD = timedelta(hours=24)
HOUR_LEAD = timedelta(hours=1)
# Decisions are still taken down a little after the planned end (a meeting overruns); the
# minutes are posted once this grace has passed.
GRACE = timedelta(minutes=30)
DECISION_MAX = 1000
PLACE_MAX = 200
# Who the default invitation leaves out: the person's circle, not the professionals.
NOT_PROFESSIONAL = frozenset({Role.CARER, Role.OTHER})
#: A time as French people write it: `14:30`, `14h30`, `14 h 30` (how Relais itself writes times),
#: `14h`, `9 h`, `14.30`; the minutes may be left out only after `h`.
_HHMM = re.compile(r"^([01]?\d|2[0-3])(?:\s*[:.]\s*([0-5]\d)|\s*(?:h|heures?)\s*([0-5]\d)?)$", re.IGNORECASE)
#: The English clock (`9am`, `2:30 pm`, `2 p.m.`), for the English catalog's users.
_AM_PM = re.compile(r"^(1[0-2]|0?[1-9])(?:\s*[:.]\s*([0-5]\d))?\s*([ap])\.?\s*m\.?$", re.IGNORECASE)
_NOON = ("midi", "noon")
_URL = re.compile(r"^https?://[^\s/$.?#][^\s]*$", re.IGNORECASE)


class State(StrEnum):
    PLANNED = "planned"
    CANCELLED = "cancelled"
    HELD = "held"  # its minutes were posted


class Reminder(StrEnum):
    DAY = "day"
    HOUR = "hour"


@dataclass(frozen=True)
class Concertation:
    case_ref: str
    uid: str  # the iCalendar UID: the same across moves and a cancellation
    organiser: str
    participants: tuple[str, ...]  # the organiser excluded
    starts_at: datetime  # UTC
    minutes: int
    place: str | None
    visio: str | None
    scheduled_at: datetime  # when the current time was set (planned or moved)
    sequence: int = 0  # iCalendar SEQUENCE: +1 at each move or the cancellation
    state: State = State.PLANNED
    reminded_day_at: datetime | None = None
    reminded_hour_at: datetime | None = None
    id: int | None = None

    @property
    def ends_at(self) -> datetime:
        return self.starts_at + timedelta(minutes=self.minutes)

    @property
    def closes_at(self) -> datetime:
        """Decisions are accepted until then; the minutes come after."""
        return self.ends_at + GRACE

    @property
    def pending(self) -> bool:
        return self.state is State.PLANNED

    def everyone(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((self.organiser, *self.participants)))


@dataclass(frozen=True)
class Decision:
    number: int
    text: str
    item: int | None
    by: str
    at: datetime


def parse_time(text: str) -> time:
    """`14:30`, `14h30`, `14 h 30`, `14h`, `14 heures`, `14 heures 30`, `14.30`, `2:30 pm`, `midi`
    (full-width digits too) → 14:30."""
    typed = unicodedata.normalize("NFKC", text).strip().rstrip(".,;!?…").strip()
    if typed.lower() in _NOON:
        return time(12, 0)
    if typed.isascii() and (clock := _AM_PM.match(typed)):
        hour = int(clock.group(1)) % 12 + (12 if clock.group(3).lower() == "p" else 0)
        return time(hour, int(clock.group(2) or 0))
    match = _HHMM.match(typed)
    if match is None or not typed.isascii():
        raise DomainError("error.bad_time", value=text)
    return time(int(match.group(1)), int(match.group(2) or match.group(3) or 0))


def local_start(day: date, hhmm: str, tz: tzinfo = PARIS) -> datetime:
    """A date and HH:MM typed in the territory's local time (`tz`) → UTC. A time skipped by the
    spring change is refused; an autumn time that happens twice is the first one (summer time)."""
    wall = datetime.combine(day, parse_time(hhmm))
    aware = wall.replace(tzinfo=tz, fold=0)
    if aware.astimezone(UTC).astimezone(tz).replace(tzinfo=None) != wall:
        raise DomainError("error.concertation_time_gap", date=day.isoformat(), time=hhmm)
    return aware.astimezone(UTC)


def local(moment: datetime, tz: tzinfo = PARIS) -> datetime:
    return moment.astimezone(tz)


def when_params(c: Concertation, tz: tzinfo = PARIS) -> dict[str, Any]:
    start, end = local(c.starts_at, tz), local(c.ends_at, tz)
    if c.visio:
        where: dict[str, Any] = {"key": "concertation.where_visio", "params": {"url": c.visio}}
    elif c.place:
        where = {"key": "concertation.where_place", "params": {"place": c.place}}
    else:
        where = {"key": "concertation.where_unknown"}
    return {"date": start.date().isoformat(), "start": start.strftime("%H:%M"), "end": end.strftime("%H:%M"),
            "minutes": c.minutes, "where": where, "organiser": c.organiser,
            "participants": {"people": list(c.participants)} if c.participants else "—", "case": c.case_ref}


def _check_start(starts_at: datetime, now: datetime) -> None:
    if starts_at <= now:
        raise DomainError("error.concertation_past", date=starts_at.isoformat())
    if starts_at - now > MAX_AHEAD:
        raise DomainError("error.concertation_too_far")


def _participants(team: Sequence[Member], organiser: str, chosen: Sequence[str]) -> tuple[str, ...]:
    members = active(list(team))
    if chosen:
        for user in chosen:
            if find(members, user) is None:
                raise DomainError("error.concertation_not_member", user=user)
        picked = list(chosen)
    else:
        picked = [m.user_id for m in members if m.role not in NOT_PROFESSIONAL]
    out = tuple(dict.fromkeys(u for u in picked if u != organiser))
    if not out:
        raise DomainError("error.concertation_nobody")
    return out


def check_place(place: str | None, visio: str | None) -> tuple[str | None, str | None]:
    if place is not None and visio is not None:
        raise DomainError("error.concertation_place_and_visio")
    if place is not None:
        place = " ".join(place.split())
        if not place or len(place) > PLACE_MAX:
            raise DomainError("error.concertation_place", max=PLACE_MAX)
    if visio is not None and (not _URL.match(visio.strip()) or len(visio) > PLACE_MAX):
        raise DomainError("error.concertation_visio", value=visio)
    return place, visio.strip() if visio else None


def plan(
    upcoming: Concertation | None, team: Sequence[Member], case_ref: str, day: date, hhmm: str, *,
    minutes: int | None, place: str | None, visio: str | None, with_: Sequence[str], uid: str, by: str,
    now: datetime, tz: tzinfo = PARIS,
) -> tuple[Concertation, list[Effect]]:
    """Plan the file's next concertation; `day` and `hhmm` are the territory's local time (`tz`)."""
    if upcoming is not None:
        raise DomainError("error.concertation_exists", **when_params(upcoming, tz))
    starts_at = local_start(day, hhmm, tz)
    _check_start(starts_at, now)
    length = DEFAULT_MINUTES if minutes is None else minutes
    if not MIN_MINUTES <= length <= MAX_MINUTES:
        raise DomainError("error.concertation_minutes", min=MIN_MINUTES, max=MAX_MINUTES)
    place, visio = check_place(place, visio)
    c = Concertation(case_ref=case_ref, uid=uid, organiser=by, participants=_participants(team, by, with_),
                     starts_at=starts_at, minutes=length, place=place, visio=visio, scheduled_at=now)
    return c, [Notify("concertation.planned", case_ref, "concertation.planned", when_params(c, tz),
                      mentions=c.everyone())]


def _require(upcoming: Concertation | None) -> Concertation:
    if upcoming is None:
        raise DomainError("error.concertation_none")
    return upcoming


def move(upcoming: Concertation | None, day: date, hhmm: str, *, by: str,
         now: datetime, tz: tzinfo = PARIS) -> tuple[Concertation, list[Effect]]:
    c = _require(upcoming)
    if now >= c.starts_at:
        raise DomainError("error.concertation_started")
    starts_at = local_start(day, hhmm, tz)
    _check_start(starts_at, now)
    if starts_at == c.starts_at:
        raise DomainError("error.concertation_same_time")
    before = when_params(c, tz)
    moved = replace(c, starts_at=starts_at, sequence=c.sequence + 1, scheduled_at=now,
                    reminded_day_at=None, reminded_hour_at=None)
    params = when_params(moved, tz) | {"by": by, "old_date": before["date"], "old_start": before["start"]}
    return moved, [Notify("concertation.moved", c.case_ref, "concertation.moved", params, mentions=moved.everyone())]


def cancel(upcoming: Concertation | None, *, by: str, now: datetime,
           tz: tzinfo = PARIS, decided: int = 0) -> tuple[Concertation, list[Effect]]:
    """Cancel the pending concertation, also once started if nobody came; `decided` decisions
    already taken down mean it is being held: refused (its minutes would never go out)."""
    c = _require(upcoming)
    if now >= c.ends_at:
        raise DomainError("error.concertation_over")
    if decided:
        raise DomainError("error.concertation_cancel_decided", count=decided)
    cancelled = replace(c, state=State.CANCELLED, sequence=c.sequence + 1)
    return cancelled, [Notify("concertation.cancelled", c.case_ref, "concertation.cancelled",
                              when_params(c, tz) | {"by": by}, mentions=c.everyone())]


def follow_team(upcoming: Concertation | None, leaver: str, successor: str | None, *, referent: str,
                now: datetime, tz: tzinfo = PARIS) -> tuple[Concertation, list[Effect]] | None:
    """A member left the team before the concertation: they are off its list, their successor
    (if any) on it; the organiser who leaves hands it to the successor, or else to the file's
    referent. None when the list does not change (not invited, or already started). The updated
    invitation takes the next SEQUENCE, so calendars replace the copy they hold."""
    if upcoming is None or not upcoming.pending or now >= upcoming.starts_at or leaver not in upcoming.everyone():
        return None
    c = upcoming
    organiser = (successor or referent) if c.organiser == leaver else c.organiser
    keep = [u for u in c.participants if u != leaver]
    if successor is not None:
        keep.append(successor)
    participants = tuple(dict.fromkeys(u for u in keep if u != organiser))
    updated = replace(c, organiser=organiser, participants=participants, sequence=c.sequence + 1)
    params = when_params(updated, tz) | {"leaver": leaver,
                                         "successor": {"key": "concertation.successor_added",
                                                       "params": {"user": successor}} if successor else ""}
    return updated, [Notify("concertation.moved", c.case_ref, "concertation.attendees_changed", params,
                            mentions=updated.everyone())]


def decide(upcoming: Concertation | None, decisions: Sequence[Decision], text: str, item: int | None, *,
           by: str, now: datetime, tz: tzinfo = PARIS) -> Decision:
    """A decision taken down while the concertation is open (from its start to its close)."""
    c = _require(upcoming)
    if now < c.starts_at:
        raise DomainError("error.concertation_not_started", **when_params(c, tz))
    if now >= c.closes_at:
        raise DomainError("error.concertation_over")
    text = " ".join(text.split())
    if not text or len(text) > DECISION_MAX:
        raise DomainError("error.decision_text", max=DECISION_MAX)
    return Decision(number=len(decisions) + 1, text=text, item=item, by=by, at=now)


def reminder_due(c: Concertation, now: datetime) -> Reminder | None:
    """The reminder to send now, if any: each once; none whose moment had passed when the time
    was set (planned two hours ahead: no day-before reminder); after a long outage only the
    most recent one."""
    if not c.pending or now >= c.starts_at:
        return None
    hour_at, day_at = c.starts_at - HOUR_LEAD, c.starts_at - DAY_LEAD
    if now >= hour_at:
        return Reminder.HOUR if c.reminded_hour_at is None and c.scheduled_at < hour_at else None
    if now >= day_at and c.reminded_day_at is None and c.scheduled_at < day_at:
        return Reminder.DAY
    return None


def reminded(c: Concertation, which: Reminder, now: datetime, tz: tzinfo = PARIS) -> tuple[Concertation, Notify]:
    done = replace(c, reminded_day_at=now) if which is Reminder.DAY else replace(c, reminded_hour_at=now)
    return done, Notify("concertation.reminder", c.case_ref, f"concertation.reminder_{which.value}",
                        when_params(c, tz), mentions=c.everyone())


def drop(c: Concertation) -> Concertation:
    """Set aside without notice (its file was closed)."""
    return replace(c, state=State.CANCELLED)


def minutes_due(c: Concertation, now: datetime) -> bool:
    return c.pending and now >= c.closes_at


def minutes(c: Concertation, decisions: Sequence[Decision], referent: str,
            tz: tzinfo = PARIS) -> tuple[Concertation, list[Notify]]:
    """The minutes (the decisions), then a prompt to update the plan items decisions were about."""
    lines = [{"key": "concertation.decision_line",
              "params": {"number": d.number, "text": d.text,
                         "item": {"key": "concertation.decision_item", "params": {"item": d.item}} if d.item else ""}}
             for d in decisions]
    params = when_params(c, tz) | {"decisions": lines, "count": len(decisions)}
    key = "concertation.minutes" if decisions else "concertation.minutes_empty"
    notices = [Notify("concertation.minutes", c.case_ref, key, params, mentions=c.everyone())]
    on_items = [d for d in decisions if d.item is not None]
    if on_items:
        items = [{"key": "concertation.followup_line", "params": {"item": d.item, "text": d.text}} for d in on_items]
        notices.append(Notify("concertation.plan_followup", c.case_ref, "concertation.plan_followup",
                              {"items": items, "date": params["date"]},
                              mentions=tuple(dict.fromkeys((c.organiser, referent)))))
    return replace(c, state=State.HELD), notices
