"""The concertation's iCalendar file, parsed back with the icalendar library."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from icalendar import Calendar

from hub.domain.concertation import Concertation, State, local_start
from hub.services import ical

STAMP = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _concertation(day: date = date(2026, 3, 30), hhmm: str = "14:00", **kw: object) -> Concertation:
    base = Concertation("R-2026-0001", "0123abcd@example.org", "@cm:example.org",
                        ("@gp:example.org", "@nurse:example.org"), local_start(day, hhmm), 90,
                        "Maison de santé, salle 2", None, STAMP)
    return replace(base, **kw)  # type: ignore[arg-type]


def _event(data: bytes) -> tuple[Calendar, object]:
    cal = Calendar.from_ical(data)
    events = cal.walk("VEVENT")
    assert len(events) == 1
    return cal, events[0]


def test_invitation_has_one_event_with_uid_times_people_and_place() -> None:
    c = _concertation()
    cal, event = _event(ical.invitation(c, summary="Concertation clinique — dossier R-2026-0001",
                                        description="d", stamp=STAMP))
    assert cal["METHOD"] == "REQUEST" and cal["VERSION"] == "2.0"
    assert str(event["UID"]) == "0123abcd@example.org" and event["SEQUENCE"] == 0  # type: ignore[index]
    start = event.decoded("DTSTART")  # type: ignore[attr-defined]
    assert start.tzinfo == ZoneInfo("Europe/Paris") and start.hour == 14  # summer time: 12:00 UTC
    assert start.astimezone(UTC) == datetime(2026, 3, 30, 12, 0, tzinfo=UTC)
    assert event.decoded("DTEND") - start == timedelta(minutes=90)  # type: ignore[attr-defined]
    assert str(event["LOCATION"]) == "Maison de santé, salle 2"  # type: ignore[index]
    assert str(event["ORGANIZER"]) == "matrix:u/cm:example.org"  # type: ignore[index]
    attendees = {str(a.params["CN"]): str(a.params["ROLE"]) for a in event["ATTENDEE"]}  # type: ignore[index]
    assert attendees == {"@cm:example.org": "CHAIR", "@gp:example.org": "REQ-PARTICIPANT",
                         "@nurse:example.org": "REQ-PARTICIPANT"}
    assert str(event["STATUS"]) == "CONFIRMED"  # type: ignore[index]


def test_the_timezone_is_the_eu_rule_and_agrees_with_zoneinfo_in_any_year() -> None:
    tz = Calendar.from_ical(ical.invitation(_concertation(), summary="s", description="d", stamp=STAMP)) \
        .walk("VTIMEZONE")[0].to_tz()
    paris = ZoneInfo("Europe/Paris")
    for moment in (datetime(2026, 1, 15, 12), datetime(2026, 3, 29, 3, 30), datetime(2026, 10, 25, 4),
                   datetime(2041, 7, 1, 12), datetime(2041, 12, 1, 12)):
        assert tz.utcoffset(moment) == paris.utcoffset(moment), moment


def test_a_move_keeps_the_uid_with_a_higher_sequence_and_a_cancellation_says_cancel() -> None:
    moved = replace(_concertation(day=date(2026, 12, 1), hhmm="09:15"), sequence=1)
    _, event = _event(ical.invitation(moved, summary="s", description="d", stamp=STAMP))
    assert str(event["UID"]) == "0123abcd@example.org" and event["SEQUENCE"] == 1  # type: ignore[index]
    assert event.decoded("DTSTART").astimezone(UTC) == datetime(2026, 12, 1, 8, 15, tzinfo=UTC)  # type: ignore[attr-defined]
    cancelled = replace(moved, state=State.CANCELLED, sequence=2)
    cal, event = _event(ical.invitation(cancelled, summary="s", description="d", stamp=STAMP))
    assert cal["METHOD"] == "CANCEL" and str(event["STATUS"]) == "CANCELLED" and event["SEQUENCE"] == 2  # type: ignore[index]
    assert ical.filename("R-2026-0001", 2, True) == "concertation-R-2026-0001-annulation.ics"
    assert ical.filename("R-2026-0001", 1, False) == "concertation-R-2026-0001-v2.ics"


def test_a_video_meeting_is_its_location_and_url() -> None:
    c = _concertation(place=None, visio="https://visio.example.org/abc")
    _, event = _event(ical.invitation(c, summary="s", description="d", stamp=STAMP))
    assert str(event["LOCATION"]) == str(event["URL"]) == "https://visio.example.org/abc"  # type: ignore[index]
