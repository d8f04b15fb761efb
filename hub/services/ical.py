"""The concertation's iCalendar invitation (RFC 5545 / iTIP RFC 5546). Pure: data in, bytes out.

One VEVENT with a stable UID: a move sends the same UID with a higher SEQUENCE, a cancellation
METHOD:CANCEL. Times are local French times with their own VTIMEZONE (the EU rule, valid for any
year, unlike a table of past transitions), so calendar programs show the right hour across the
clock changes. People are addressed by their Matrix URI (matrix:u/…); the file carries the
pseudonymous case reference, never the person's name: calendars sync to many places.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from hub.domain.concertation import PARIS, Concertation, State

if TYPE_CHECKING:
    from icalendar import Timezone, vCalAddress

MIMETYPE = "text/calendar"
PRODID = "-//Relais//Concertation clinique//FR"


def ical() -> Any:
    """The icalendar package, imported when the first invitation is written (≈ 7 MB and 0.1 s
    that a start does not need)."""
    import icalendar

    return icalendar


def matrix_uri(user_id: str) -> str:
    """A Matrix user id as a URI (the `matrix:` scheme): @gp:example.org → matrix:u/gp:example.org."""
    return "matrix:u/" + user_id.removeprefix("@")


def _address(user_id: str, role: str, partstat: str) -> vCalAddress:
    address: vCalAddress = ical().vCalAddress(matrix_uri(user_id))
    address.params["CN"] = ical().vText(user_id)
    address.params["ROLE"] = ical().vText(role)
    address.params["PARTSTAT"] = ical().vText(partstat)
    address.params["CUTYPE"] = ical().vText("INDIVIDUAL")
    return address


def paris_timezone() -> Timezone:
    """Europe/Paris as the EU rule: summer time from the last Sunday of March, 02:00 local, to the
    last Sunday of October, 03:00 local."""
    tz: Timezone = ical().Timezone()
    tz.add("tzid", "Europe/Paris")
    summer = ical().TimezoneDaylight()
    summer.add("dtstart", datetime(1996, 3, 31, 2, 0))
    summer.add("rrule", ical().vRecur(freq="YEARLY", bymonth=3, byday="-1SU"))
    summer.add("tzoffsetfrom", PARIS.utcoffset(datetime(1996, 1, 1)))
    summer.add("tzoffsetto", PARIS.utcoffset(datetime(1996, 7, 1)))
    summer.add("tzname", "CEST")
    winter = ical().TimezoneStandard()
    winter.add("dtstart", datetime(1996, 10, 27, 3, 0))
    winter.add("rrule", ical().vRecur(freq="YEARLY", bymonth=10, byday="-1SU"))
    winter.add("tzoffsetfrom", PARIS.utcoffset(datetime(1996, 7, 1)))
    winter.add("tzoffsetto", PARIS.utcoffset(datetime(1996, 1, 1)))
    winter.add("tzname", "CET")
    tz.add_component(summer)
    tz.add_component(winter)
    return tz


def vtimezone(tz: ZoneInfo) -> Timezone:
    """The territory's zone: Paris as its EU rule (valid for ever), any other from the tz database."""
    zone: Timezone = paris_timezone() if tz.key == PARIS.key else ical().Timezone.from_tzinfo(tz)
    return zone


def invitation(c: Concertation, *, summary: str, description: str, stamp: datetime,
               cancelled: bool = False, tz: ZoneInfo = PARIS) -> bytes:
    """The invitation as it stands (METHOD:REQUEST), or its cancellation (METHOD:CANCEL), in the
    territory's time zone `tz`."""
    cancelled = cancelled or c.state is State.CANCELLED
    cal = ical().Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", "CANCEL" if cancelled else "REQUEST")
    cal.add_component(vtimezone(tz))
    event = ical().Event()
    event.add("uid", c.uid)
    event.add("sequence", c.sequence)
    event.add("dtstamp", stamp)
    event.add("dtstart", c.starts_at.astimezone(tz))
    event.add("dtend", c.ends_at.astimezone(tz))
    event.add("summary", summary)
    event.add("description", description)
    event.add("status", "CANCELLED" if cancelled else "CONFIRMED")
    if c.visio:
        event.add("location", c.visio)
        event.add("url", c.visio)
    elif c.place:
        event.add("location", c.place)
    event.add("organizer", _organizer(c.organiser))
    for address in _attendees(c.organiser, c.participants):
        event.add("attendee", address)
    cal.add_component(event)
    return bytes(cal.to_ical())


def _organizer(user_id: str) -> vCalAddress:
    address: vCalAddress = ical().vCalAddress(matrix_uri(user_id))
    address.params["CN"] = ical().vText(user_id)
    return address


def _attendees(organiser: str, participants: Sequence[str]) -> list[vCalAddress]:
    chair = _address(organiser, "CHAIR", "ACCEPTED")
    return [chair, *(_address(u, "REQ-PARTICIPANT", "NEEDS-ACTION") for u in participants if u != organiser)]


def filename(case_ref: str, sequence: int, cancelled: bool) -> str:
    suffix = "-annulation" if cancelled else "" if sequence == 0 else f"-v{sequence + 1}"
    return f"concertation-{case_ref}{suffix}.ics"
