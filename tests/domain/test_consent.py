"""The person's information and consent (L1110-4): pure rules."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest

from hub.domain import consent
from hub.domain.consent import Record, Scope, Status
from hub.domain.effects import Kick, Notify
from hub.domain.errors import DomainError
from hub.domain.team import Member, Role

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
REF = "R-2026-0001"
TEAM = [Member("@cm:x", Role.CASE_MANAGER, NOW), Member("@gp:x", Role.GP, NOW),
        Member("@daughter:x", Role.CARER, NOW), Member("@neighbour:x", Role.OTHER, NOW),
        Member("@old:x", Role.CARER, NOW, until=NOW)]


def _rec(status: Status, scope: Scope | None = None, history: list[Record] | None = None,
         **kw: object) -> tuple[Record, list[Member], list[object]]:
    return consent.record(history or [], TEAM, REF, status, scope, kw.get("on"), kw.get("note"),  # type: ignore[arg-type]
                          by="@cm:x", now=NOW)


def test_nothing_recorded_means_not_informed_and_no_sharing_beyond_the_team() -> None:
    state = consent.state([])
    assert not state.informed and not state.extended and state.latest is None
    with pytest.raises(DomainError) as err:
        consent.check_member(state, "@daughter:x", Role.CARER)
    assert err.value.key == "error.consent_extended_needed" and err.value.params["role"] == "carer"
    consent.check_member(state, "@nurse:x", Role.NURSE)  # professionals need only the information


def test_informed_defaults_to_today_in_paris_and_refuses_a_future_date_or_extended_scope() -> None:
    entry, ended, effects = _rec(Status.INFORMED)
    assert entry.on == date(2026, 3, 2) and entry.scope is Scope.CARE_TEAM and not ended
    assert isinstance(effects[0], Notify) and effects[0].kind == "consent.update"
    assert effects[0].params["consequence"] == {"key": "consent.consequence.informed"}
    late = consent.record([], TEAM, REF, Status.INFORMED, None, None, None, by="@cm:x",
                          now=datetime(2026, 3, 2, 23, 30, tzinfo=UTC))[0]
    assert late.on == date(2026, 3, 3)  # 00:30 in Paris
    with pytest.raises(DomainError, match=r"error\.consent_future"):
        _rec(Status.INFORMED, on=date(2026, 3, 3))
    with pytest.raises(DomainError, match=r"error\.consent_informed_extended"):
        _rec(Status.INFORMED, Scope.EXTENDED)


def test_extended_consent_must_be_explicit_and_lets_carers_join() -> None:
    given, _, _ = _rec(Status.GIVEN)
    assert given.scope is Scope.CARE_TEAM and not consent.state([given]).extended
    extended, _, effects = _rec(Status.GIVEN, Scope.EXTENDED, note="  accord   écrit ")
    assert extended.note == "accord écrit"
    state = consent.state([given, extended])
    assert state.informed and state.extended and state.informed_on == date(2026, 3, 2)
    consent.check_member(state, "@daughter:x", Role.CARER)
    assert effects[0].params["consequence"] == {"key": "consent.consequence.extended"}  # type: ignore[attr-defined]


def test_withdrawal_removes_the_active_members_outside_the_care_team_once() -> None:
    extended, _, _ = _rec(Status.GIVEN, Scope.EXTENDED)
    refused, ended, effects = _rec(Status.REFUSED, history=[extended])
    assert refused.scope is Scope.EXTENDED  # refusing without a scope: beyond the care team
    assert [m.user_id for m in ended] == ["@daughter:x", "@neighbour:x"]
    assert all(m.until == NOW and m.end_reason == consent.END_REASON for m in ended)
    assert [e.user_id for e in effects if isinstance(e, Kick)] == ["@daughter:x", "@neighbour:x"]
    assert all(e.reason_key == "kick.reason" for e in effects if isinstance(e, Kick))  # nothing about consent
    notice = effects[0]
    assert isinstance(notice, Notify)
    assert notice.params["consequence"]["params"]["users"] == ["@daughter:x", "@neighbour:x"]
    with pytest.raises(DomainError, match=r"error\.consent_refused_extended"):
        consent.check_member(consent.state([extended, refused]), "@daughter:x", Role.CARER)
    # Narrowing the scope back to the care team withdraws too; refusing again removes nobody.
    assert len(_rec(Status.GIVEN, Scope.CARE_TEAM, history=[extended])[1]) == 2
    assert _rec(Status.REFUSED, history=[extended, refused])[1] == []
    # Re-informing never withdraws a consent.
    assert consent.state([extended, _rec(Status.INFORMED)[0]]).extended


def test_a_note_is_bounded_and_blank_notes_are_dropped() -> None:
    assert _rec(Status.INFORMED, note="   ")[0].note is None
    with pytest.raises(DomainError, match=r"error\.consent_note_long"):
        _rec(Status.INFORMED, note="x" * (consent.NOTE_MAX + 1))


def test_reminder_at_most_once_a_paris_day_from_nine_and_not_on_the_opening_day() -> None:
    opened = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    assert not consent.reminder_due(opened, None, datetime(2026, 3, 2, 15, 0, tzinfo=UTC))  # opening day
    assert not consent.reminder_due(opened, None, datetime(2026, 3, 3, 7, 59, tzinfo=UTC))  # 08:59 Paris
    first = datetime(2026, 3, 3, 8, 0, tzinfo=UTC)
    assert consent.reminder_due(opened, None, first)
    assert not consent.reminder_due(opened, first, first + timedelta(hours=14))  # same day, 23:00 Paris
    assert consent.reminder_due(opened, first, first + timedelta(days=1))
    notice = consent.reminder(REF, "@cm:x", opened, first)
    assert notice.kind == "consent.reminder" and notice.mentions == ("@cm:x",) and notice.params["days"] == 1


def test_summary_and_history_read_latest_first() -> None:
    informed = _rec(Status.INFORMED, on=date(2026, 2, 1))[0]
    refused = _rec(Status.REFUSED, Scope.CARE_TEAM, history=[informed])[0]
    summary = consent.summary(consent.state([informed, refused]))
    assert summary["informed"] == {"key": "consent.summary.informed", "params": {"date": "2026-02-01"}}
    assert summary["sharing"]["key"] == "consent.summary.refused.care_team"  # type: ignore[index]
    lines = consent.history_lines([informed, refused])
    assert [line["params"]["date"] for line in lines] == ["2026-03-02", "2026-02-01"]  # type: ignore[index]


def test_the_latest_dated_record_decides_not_the_last_entered() -> None:
    """`!consentement donné --date 10/03` then `!consentement refusé --date 01/02`: the consent
    of March still holds; the back-dated refusal is history, and the notice says so."""
    now = datetime(2026, 3, 12, 10, 0, tzinfo=UTC)
    given = consent.record([], TEAM, REF, Status.GIVEN, Scope.EXTENDED, date(2026, 3, 10), None,
                           by="@cm:x", now=now)[0]
    refused, ended, effects = consent.record([given], TEAM, REF, Status.REFUSED, None, date(2026, 2, 1), None,
                                             by="@cm:x", now=now + timedelta(minutes=5))
    current = consent.state([given, refused])
    assert current.extended and current.latest is given and not ended
    assert [type(e) for e in effects] == [Notify]  # nobody removed
    assert effects[0].params["consequence"] == {  # type: ignore[attr-defined]
        "key": "consent.consequence.superseded",
        "params": {"date": "2026-03-10", "what": {"key": "consent.what.given.extended"}}}
    consent.check_member(current, "@daughter:x", Role.CARER)
    assert consent.summary(current)["sharing"] == {"key": "consent.summary.extended",
                                                   "params": {"date": "2026-03-10"}}
    lines = consent.history_lines([given, refused])  # newest date first
    assert [line["params"]["date"] for line in lines] == ["2026-03-10", "2026-02-01"]  # type: ignore[index]
    # The other way round: a consent back-dated before a refusal does not let carers in.
    later_refusal = replace(refused, on=date(2026, 3, 11))
    back_given = replace(given, on=date(2026, 3, 1), at=now + timedelta(hours=1))
    assert not consent.state([later_refusal, back_given]).extended
    # Same date: the later entry decides.
    same_day = replace(refused, on=given.on)
    assert not consent.state([given, same_day]).extended
    assert consent.state([same_day, replace(given, at=now + timedelta(hours=1))]).extended
