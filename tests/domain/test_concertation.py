"""Clinical concertation: pure rules (times, participants, reminders, decisions, minutes)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest

from hub.domain import concertation as cc
from hub.domain.concertation import Decision, Reminder, State
from hub.domain.errors import DomainError
from hub.domain.team import Member, Role

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
REF = "R-2026-0001"
TEAM = [Member("@cm:x", Role.CASE_MANAGER, NOW), Member("@gp:x", Role.GP, NOW),
        Member("@nurse:x", Role.NURSE, NOW), Member("@daughter:x", Role.CARER, NOW),
        Member("@left:x", Role.PHYSIO, NOW, until=NOW)]


def _plan(day: date = date(2026, 3, 10), hhmm: str = "14:00", **kw: object) -> cc.Concertation:
    args: dict[str, object] = {"minutes": None, "place": None, "visio": None, "with_": ()} | kw
    c, _ = cc.plan(None, TEAM, REF, day, hhmm, uid="u@x", by="@cm:x", now=NOW, **args)  # type: ignore[arg-type]
    return c


def test_local_times_are_paris_times_kept_in_utc_across_the_clock_changes() -> None:
    assert cc.local_start(date(2026, 3, 10), "14:00") == datetime(2026, 3, 10, 13, 0, tzinfo=UTC)  # CET
    assert cc.local_start(date(2026, 7, 10), "14h30") == datetime(2026, 7, 10, 12, 30, tzinfo=UTC)  # CEST
    assert cc.local_start(date(2026, 10, 25), "02:30") == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)  # first one
    with pytest.raises(DomainError, match=r"error\.concertation_time_gap"):
        cc.local_start(date(2026, 3, 29), "02:30")  # skipped by the spring change
    for bad in ("25:00", "14", "14:60", "13pm", "0am", ""):
        with pytest.raises(DomainError, match=r"error\.bad_time"):
            cc.parse_time(bad)


def test_plan_invites_the_active_professionals_by_default_and_checks_its_inputs() -> None:
    c, effects = cc.plan(None, TEAM, REF, date(2026, 3, 10), "14:00", minutes=None, place="MSP Les Lilas",
                         visio=None, with_=(), uid="u@x", by="@cm:x", now=NOW)
    assert c.participants == ("@gp:x", "@nurse:x")  # not the carer, not the organiser, not who left
    assert c.minutes == 60 and c.ends_at == datetime(2026, 3, 10, 14, 0, tzinfo=UTC)
    notice = effects[0]
    assert notice.kind == "concertation.planned" and notice.mentions == ("@cm:x", "@gp:x", "@nurse:x")  # type: ignore[union-attr]
    assert notice.params["start"] == "14:00" and notice.params["end"] == "15:00"  # type: ignore[union-attr]
    assert _plan(with_=("@daughter:x", "@gp:x", "@gp:x")).participants == ("@daughter:x", "@gp:x")
    refused = [
        ({"with_": ("@stranger:x",)}, "error.concertation_not_member"),
        ({"with_": ("@left:x",)}, "error.concertation_not_member"),
        ({"with_": ("@cm:x",)}, "error.concertation_nobody"),
        ({"minutes": 5}, "error.concertation_minutes"),
        ({"place": "A", "visio": "https://v.example/x"}, "error.concertation_place_and_visio"),
        ({"visio": "javascript:alert(1)"}, "error.concertation_visio"),
        ({"place": "  "}, "error.concertation_place"),
        ({"day": date(2026, 3, 2), "hhmm": "09:30"}, "error.concertation_past"),  # 08:30 UTC < now
        ({"day": date(2027, 3, 10)}, "error.concertation_too_far"),
    ]
    for kw, key in refused:
        with pytest.raises(DomainError) as err:
            _plan(**kw)  # type: ignore[arg-type]
        assert err.value.key == key, kw
    with pytest.raises(DomainError, match=r"error\.concertation_exists"):
        cc.plan(_plan(), TEAM, REF, date(2026, 3, 11), "10:00", minutes=None, place=None, visio=None, with_=(),
                uid="v@x", by="@cm:x", now=NOW)


def test_move_and_cancel_keep_the_uid_and_raise_the_sequence() -> None:
    c = _plan()
    moved, effects = cc.move(replace(c, reminded_day_at=NOW), date(2026, 3, 12), "09:00", by="@cm:x", now=NOW)
    assert (moved.uid, moved.sequence, moved.reminded_day_at) == (c.uid, 1, None)
    assert effects[0].params["old_date"] == "2026-03-10" and effects[0].params["date"] == "2026-03-12"  # type: ignore[union-attr]
    with pytest.raises(DomainError, match=r"error\.concertation_same_time"):
        cc.move(moved, date(2026, 3, 12), "09:00", by="@cm:x", now=NOW)
    with pytest.raises(DomainError, match=r"error\.concertation_started"):
        cc.move(moved, date(2026, 3, 13), "09:00", by="@cm:x", now=moved.starts_at)
    cancelled, effects = cc.cancel(moved, by="@cm:x", now=NOW)
    assert cancelled.state is State.CANCELLED and cancelled.sequence == 2 and cancelled.uid == c.uid
    assert effects[0].kind == "concertation.cancelled"  # type: ignore[union-attr]
    with pytest.raises(DomainError, match=r"error\.concertation_none"):
        cc.cancel(None, by="@cm:x", now=NOW)


def test_each_reminder_once_only_when_its_moment_comes_after_the_planning() -> None:
    c = _plan()  # 2026-03-10 13:00 UTC, planned 8 days ahead
    assert cc.reminder_due(c, c.starts_at - timedelta(hours=25)) is None
    assert cc.reminder_due(c, c.starts_at - timedelta(hours=23)) is Reminder.DAY
    c, notice = cc.reminded(c, Reminder.DAY, c.starts_at - timedelta(hours=23))
    assert notice.message == "concertation.reminder_day" and notice.mentions == ("@cm:x", "@gp:x", "@nurse:x")
    assert cc.reminder_due(c, c.starts_at - timedelta(hours=2)) is None
    assert cc.reminder_due(c, c.starts_at - timedelta(minutes=59)) is Reminder.HOUR
    c, _ = cc.reminded(c, Reminder.HOUR, c.starts_at - timedelta(minutes=59))
    assert cc.reminder_due(c, c.starts_at - timedelta(minutes=30)) is None
    assert cc.reminder_due(c, c.starts_at) is None
    # Planned two hours ahead: no day-before reminder, the hour one only.
    soon = replace(_plan(), scheduled_at=_plan().starts_at - timedelta(hours=2))
    assert cc.reminder_due(soon, soon.starts_at - timedelta(minutes=90)) is None
    assert cc.reminder_due(soon, soon.starts_at - timedelta(minutes=50)) is Reminder.HOUR
    # Down over both moments: only the latest one, once.
    assert cc.reminder_due(_plan(), _plan().starts_at - timedelta(minutes=10)) is Reminder.HOUR
    assert cc.reminder_due(replace(_plan(), state=State.CANCELLED), _plan().starts_at - timedelta(hours=23)) is None


def test_decisions_while_open_then_minutes_and_a_plan_follow_up() -> None:
    c = _plan(minutes=30)
    with pytest.raises(DomainError, match=r"error\.concertation_not_started"):
        cc.decide(c, [], "Passage infirmier", None, by="@cm:x", now=NOW)
    first = cc.decide(c, [], "  Passage   infirmier quotidien ", 2, by="@cm:x", now=c.starts_at)
    assert (first.number, first.text, first.item) == (1, "Passage infirmier quotidien", 2)
    second = cc.decide(c, [first], "Revoir dans un mois", None, by="@cm:x", now=c.ends_at + timedelta(minutes=29))
    assert second.number == 2
    with pytest.raises(DomainError, match=r"error\.concertation_over"):
        cc.decide(c, [first], "trop tard", None, by="@cm:x", now=c.closes_at)
    with pytest.raises(DomainError, match=r"error\.decision_text"):
        cc.decide(c, [], " ", None, by="@cm:x", now=c.starts_at)
    assert not cc.minutes_due(c, c.ends_at) and cc.minutes_due(c, c.closes_at)
    held, notices = cc.minutes(c, [first, second], "@referent:x")
    assert held.state is State.HELD and not cc.minutes_due(held, c.closes_at)
    assert [n.kind for n in notices] == ["concertation.minutes", "concertation.plan_followup"]
    assert notices[0].params["count"] == 2 and len(notices[0].params["decisions"]) == 2
    assert notices[1].params["items"] == [{"key": "concertation.followup_line",
                                           "params": {"item": 2, "text": "Passage infirmier quotidien"}}]
    assert notices[1].mentions == ("@cm:x", "@referent:x")
    _, empty = cc.minutes(c, [Decision(1, "x", None, "@cm:x", NOW)][:0], "@cm:x")
    assert [n.message for n in empty] == ["concertation.minutes_empty"]
