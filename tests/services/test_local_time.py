"""One territory's local date and time everywhere: around midnight and across a DST change.

`[care] timezone` (default Europe/Paris; e.g. Indian/Reunion, UTC+4 all year) decides "today"
in every rule and the time shown in every notice (SPEC §5, §8; issue 13 item 6).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from hub.clock import FakeClock, SystemClock
from hub.config import CareConfig
from hub.domain import consent, transitions
from hub.domain.errors import DomainError
from hub.domain.settings import Setting
from hub.i18n.catalog import Catalog
from hub.services.cases import month_start
from hub.services.reevaluations import PromptSweeper
from hub.storage.database import Database
from tests.bots.notice_samples import MENTIONS, PERSON
from tests.services.test_reevaluations import REF, _open, _prompts

PARIS, REUNION = ZoneInfo("Europe/Paris"), ZoneInfo("Indian/Reunion")
# 26 November 2026, 23:30 UTC: still the 26th in UTC, already the 27th in Paris and in La Réunion.
LATE_EVENING_UTC = datetime(2026, 11, 26, 23, 30, tzinfo=UTC)


def test_today_is_the_territory_date_not_the_utc_date() -> None:
    assert LATE_EVENING_UTC.date() == date(2026, 11, 26)
    assert FakeClock(LATE_EVENING_UTC).today() == date(2026, 11, 27)
    assert FakeClock(LATE_EVENING_UTC - timedelta(hours=3), "Indian/Reunion").today() == date(2026, 11, 27)
    assert SystemClock("Indian/Reunion").tz == REUNION


def test_the_zone_is_configured_and_checked() -> None:
    assert CareConfig().timezone == "Europe/Paris"
    assert CareConfig(timezone="Indian/Reunion").timezone == "Indian/Reunion"
    with pytest.raises(ValueError, match="Indian/Reunion"):
        CareConfig(timezone="Europe/Parsi")


def test_notices_show_the_territory_time_across_the_spring_change() -> None:
    # Sunday 29 March 2026: Paris goes from 02:00 CET to 03:00 CEST at 01:00 UTC.
    before, after = datetime(2026, 3, 29, 0, 30, tzinfo=UTC), datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    paris = Catalog("fr")
    assert paris.text("alert.todo", checklist=[before.isoformat(), after.isoformat()]) == \
        "À faire :\n• dim. 29/03/2026 à 01 h 30\n• dim. 29/03/2026 à 03 h 30"
    reunion = Catalog("fr", "Indian/Reunion")
    assert reunion.text("alert.todo", checklist=[before.isoformat()]) == "À faire :\n• dim. 29/03/2026 à 04 h 30"
    # Autumn: 25 October 2026, 01:30 UTC is 02:30 CET (after the change), 00:30 UTC 02:30 CEST.
    assert paris.text("alert.todo", checklist=["2026-10-25T00:30:00+00:00", "2026-10-25T01:30:00+00:00"]) == \
        "À faire :\n• dim. 25/10/2026 à 02 h 30\n• dim. 25/10/2026 à 02 h 30"


def test_a_return_from_hospital_at_night_counts_seven_local_days() -> None:
    # Discharged at 23:30 UTC on the 26th, i.e. 00:30 on the 27th in Paris: due on 4 December.
    for tz, due in ((PARIS, "2026-12-04"), (ZoneInfo("America/Cayenne"), "2026-12-03")):
        items = transitions.checklist(Setting.HOSPITAL, Setting.HOME, LATE_EVENING_UTC, manager="@cm:x", tz=tz)
        assert items[-1]["params"]["date"] == due, tz


def test_a_manual_move_dated_today_is_today_in_the_territory() -> None:
    # 23:30 UTC on the 26th: "!lieu ehpad --date 27/11/2026" is not in the future in Paris.
    outcome = transitions.manual_move(PERSON, MENTIONS, Setting.NURSING_HOME, None, date(2026, 11, 27), by="@cm:x",
                                      now=LATE_EVENING_UTC, last_movement=None, tz=PARIS)
    assert outcome.move is not None and outcome.move.since == LATE_EVENING_UTC
    with pytest.raises(DomainError) as refused:  # still the 26th in Guadeloupe (UTC-4)
        transitions.manual_move(PERSON, MENTIONS, Setting.NURSING_HOME, None, date(2026, 11, 27), by="@cm:x",
                                now=LATE_EVENING_UTC, last_movement=None, tz=ZoneInfo("America/Guadeloupe"))
    assert refused.value.key == "error.move_future"


def test_consent_reminders_follow_the_local_day_and_hour() -> None:
    opened = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
    # 05:30 UTC: 06:30 in Paris (before 9:00), 09:30 in La Réunion.
    morning = datetime(2026, 11, 26, 5, 30, tzinfo=UTC)
    assert not consent.reminder_due(opened, None, morning, PARIS)
    assert consent.reminder_due(opened, None, morning, REUNION)
    assert consent.reminder_day(LATE_EVENING_UTC, PARIS) == date(2026, 11, 27)


def test_intake_counts_the_local_month() -> None:
    # 30 November 23:30 UTC is 1 December in Paris: the month of intake starts on 1 December.
    assert month_start(datetime(2026, 11, 30, 23, 30, tzinfo=UTC), PARIS) == datetime(2026, 11, 30, 23, 0, tzinfo=UTC)


@pytest.mark.db
async def test_a_reevaluation_due_tomorrow_in_utc_is_due_today_in_paris(database: Database) -> None:
    await _open(database, evaluated_on=date(2026, 3, 1))
    due = date(2026, 3, 1) + timedelta(days=182)
    assert due == date(2026, 8, 30)
    late_evening = datetime(2026, 8, 29, 22, 30, tzinfo=UTC)  # 00:30 on the 30th in Paris (CEST)
    utc_only = PromptSweeper(database, interval_days=182, tz=ZoneInfo("UTC"))
    await utc_only.sweep(late_evening)
    # UTC: still the 29th, the day before: only the "upcoming" prompt, caught up.
    assert [p["kind"] for _k, p in await _prompts(database)] == ["reevaluation.upcoming"]
    await PromptSweeper(database, interval_days=182, tz=PARIS).sweep(late_evening)
    kinds = [(p["kind"], p["case_ref"]) for _k, p in await _prompts(database)]
    assert kinds[-1] == ("reevaluation.due", REF)


def test_a_concertation_is_typed_and_shown_in_local_time_and_its_calendar_file_says_so() -> None:
    from hub.domain import concertation
    from hub.services import ical
    from tests.bots.notice_samples import TEAM

    now = datetime(2026, 11, 27, 6, 0, tzinfo=UTC)
    c, effects = concertation.plan(None, TEAM, "R-1", date(2026, 12, 3), "14:00", minutes=45, place="MSP",
                                   visio=None, with_=(), uid="u@x", by="@cm:x", now=now, tz=REUNION)
    assert c.starts_at == datetime(2026, 12, 3, 10, 0, tzinfo=UTC)  # 14:00 in La Réunion (UTC+4)
    assert effects[0].params["start"] == "14:00" and effects[0].params["date"] == "2026-12-03"
    data = ical.invitation(c, summary="s", description="d", stamp=now, tz=REUNION).decode()
    assert "TZID:Indian/Reunion" in data and "DTSTART;TZID=Indian/Reunion:20261203T140000" in data
    paris = ical.invitation(c, summary="s", description="d", stamp=now).decode()
    assert "DTSTART;TZID=Europe/Paris:20261203T110000" in paris
