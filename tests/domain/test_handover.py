"""Handover composition, acknowledgement and reminders: pure rules."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from hub.domain import handover, plan
from hub.domain.effects import Invite, Kick, MovePower, Notify
from hub.domain.errors import DomainError
from hub.domain.evaluations import Evaluation, Reason, Tool
from hub.domain.team import Member, Role

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
REF = "R-2026-0001"
CM, GP, NURSE, NURSE2, BOT = "@cm:x", "@gp:x", "@nurse:x", "@nurse2:x", "@relais:x"
TEAM = [Member(CM, Role.CASE_MANAGER, NOW), Member(GP, Role.GP, NOW),
        Member(NURSE, Role.NURSE, NOW, organisation="Cabinet Les Tilleuls")]
LAST = Evaluation(date(2026, 2, 1), Tool.AGGIR, Reason.INITIAL, 3, CM)


def _items() -> list[plan.PlanItem]:
    a, _ = plan.add_item([], REF, "Soins", "Pansements", provider_user=NURSE, by=CM, now=NOW)
    b, _ = plan.add_item([a], REF, "Toilette", "Aide", provider_org="SAD", by=CM, now=NOW)
    c, _ = plan.add_item([a, b], REF, "Injections", "Insuline", provider_user=NURSE, by=CM, now=NOW)
    c, _ = plan.close_item(c, REF, by=CM, now=NOW)
    return [a, b, c]


def _professional(successor: str | None, **kw: object) -> handover.Composed:
    args: dict[str, object] = dict(organisation=None, last=LAST, due=date(2026, 8, 2), by=CM, now=NOW,
                                   allowed_servers=("x",), bot_user=BOT)
    args.update(kw)
    return handover.professional(TEAM, _items(), REF, CM, NURSE, successor, "changement de poste",
                                 **args)  # type: ignore[arg-type]


def test_a_handover_invites_first_then_tells_everything_then_removes_the_leaver() -> None:
    done = _professional(NURSE2)
    kinds = [type(e).__name__ if not isinstance(e, Notify) else e.message for e in done.effects]
    assert kinds == ["Invite", "handover.notice", "plan.changed", "Kick"]
    assert done.effects[0] == Invite(REF, NURSE2) and done.effects[-1] == Kick(REF, NURSE)
    notice = done.effects[1]
    assert isinstance(notice, Notify) and notice.kind == "handover.professional"
    params = notice.params
    assert params["leaver"] == NURSE and params["successor"] == NURSE2 and params["role"] == "nurse"
    assert params["why"] == "changement de poste"
    # the closed item 3 does not pass; item 1 is shown once, the other open item by number only
    assert [i["params"]["number"] for i in params["passing"]["params"]["items"]] == [1]
    assert params["others"] == "2"
    assert params["last_eval"]["params"] == {"date": "2026-02-01", "tool": "AGGIR",
                                             "gir": {"key": "handover.gir", "params": {"gir": 3}}}
    assert params["due"] == "2026-08-02"
    assert set(notice.mentions) == {CM, GP, NURSE2}
    assert done.ended.until == NOW and done.ended.end_reason == "changement de poste"
    assert done.added == Member(NURSE2, Role.NURSE, NOW, organisation="Cabinet Les Tilleuls")
    assert [(i.number, i.provider_user, i.version) for i in done.items] == [(1, NURSE2, 2)]
    assert done.handover.items == (1,) and done.handover.open


def test_a_successor_already_in_the_team_is_not_invited_again_and_may_get_another_org() -> None:
    assert not any(isinstance(e, Invite) for e in _professional(GP).effects)
    assert _professional(NURSE2, organisation="SSIAD Nord").added == Member(NURSE2, Role.NURSE, NOW, "SSIAD Nord")


def test_without_a_successor_the_items_are_flagged_as_a_continuity_break() -> None:
    done = _professional(None)
    messages = [e.message for e in done.effects if isinstance(e, Notify)]
    assert messages == ["team.removed", "plan.changed", "plan.provider_lost"]
    flagged = next(e for e in done.effects if isinstance(e, Notify) and e.kind == "continuity.break")
    assert [i["number"] for i in flagged.params["items"]] == [1]
    assert done.items[0].provider_user is None and not done.handover.open
    assert done.added is None and isinstance(done.effects[-1], Kick)


@pytest.mark.parametrize(("successor", "kw", "key"), [
    (NURSE, {}, "error.successor_is_leaver"),
    ("@nurse2:elsewhere", {}, "error.server_not_allowed"),
    (BOT, {}, "error.member_is_bot"),
])
def test_bad_successors_are_refused(successor: str, kw: dict[str, object], key: str) -> None:
    with pytest.raises(DomainError) as err:
        _professional(successor, **kw)
    assert err.value.key == key


def test_the_referent_and_strangers_cannot_be_handed_over() -> None:
    with pytest.raises(DomainError, match=r"error\.remove_referent"):
        handover.professional(TEAM, [], REF, CM, CM, NURSE2, None, organisation=None, last=None,
                              due=date(2026, 3, 2), by=CM, now=NOW, allowed_servers=("x",), bot_user=BOT)
    with pytest.raises(DomainError, match=r"error\.not_member"):
        handover.professional(TEAM, [], REF, CM, "@nobody:x", NURSE2, None, organisation=None, last=None,
                              due=date(2026, 3, 2), by=CM, now=NOW, allowed_servers=("x",), bot_user=BOT)


def test_a_transfer_moves_items_power_and_referent_record() -> None:
    items = [plan.add_item([], REF, "Suivi", "Visite mensuelle", provider_user=CM, by=CM, now=NOW)[0]]
    done = handover.transfer(TEAM, items, REF, CM, "@cm2:x", case_managers=(CM, "@cm2:x"), last=None,
                             due=date(2026, 3, 2), by=CM, now=NOW)
    assert [type(e).__name__ for e in done.effects] == ["Invite", "Notify", "Notify", "MovePower", "Kick"]
    assert MovePower(REF, CM, "@cm2:x") in done.effects
    notice = done.effects[1]
    assert isinstance(notice, Notify) and notice.message == "handover.transfer"
    assert notice.params["last_eval"] == {"key": "handover.no_evaluation"}
    assert done.added == Member("@cm2:x", Role.CASE_MANAGER, NOW) and done.ended.end_reason == "transfer"
    assert done.items[0].provider_user == "@cm2:x"
    for receiver, key in ((CM, "error.transfer_same"), ("@gp:x", "error.transfer_not_case_manager")):
        with pytest.raises(DomainError, match=key.replace(".", r"\.")):
            handover.transfer(TEAM, [], REF, CM, receiver, case_managers=(CM,), last=None, due=date(2026, 3, 2),
                              by=CM, now=NOW)


def test_ack_closes_the_latest_open_handover_of_that_successor_only() -> None:
    old = handover.Handover(REF, handover.HandoverKind.PROFESSIONAL, NURSE, NURSE2, None, (), CM, NOW, id=1)
    new = replace(old, id=2, created_at=NOW + timedelta(days=1))
    other = replace(old, id=3, successor=GP, created_at=NOW + timedelta(days=2))
    done, effects = handover.acknowledge([old, new, other], NURSE2, now=NOW + timedelta(days=2))
    assert done.id == 2 and done.acked_at == NOW + timedelta(days=2) and not done.open
    assert isinstance(effects[0], Notify) and effects[0].message == "handover.acked"
    with pytest.raises(DomainError, match=r"error\.no_handover"):
        handover.acknowledge([replace(old, acked_at=NOW)], NURSE2, now=NOW)
    with pytest.raises(DomainError, match=r"error\.no_handover"):
        handover.acknowledge([old], GP, now=NOW)


def test_one_reminder_after_three_days_unacknowledged() -> None:
    h = handover.Handover(REF, handover.HandoverKind.PROFESSIONAL, NURSE, NURSE2, None, (), CM, NOW, id=1)
    assert not handover.reminder_due(h, NOW + timedelta(days=3) - timedelta(seconds=1))
    assert handover.reminder_due(h, NOW + timedelta(days=3))
    assert not handover.reminder_due(replace(h, reminded_at=NOW), NOW + timedelta(days=9))
    assert not handover.reminder_due(replace(h, acked_at=NOW), NOW + timedelta(days=9))
    assert handover.reminder_due(h, NOW + timedelta(days=5), days=5)
    notice = handover.reminder(h, CM, True, NOW + timedelta(days=3))
    assert notice.desk == CM and notice.params["days"] == 3 and notice.mentions == (CM,)
    assert handover.reminder(h, CM, False, NOW).desk is None


@pytest.mark.parametrize(("created", "due"), [
    # Friday 14:00 in Paris before summer time starts (Sunday 29/03): Monday 14:00 is 71 hours on.
    (datetime(2026, 3, 27, 13, 0, tzinfo=UTC), datetime(2026, 3, 30, 12, 0, tzinfo=UTC)),
    # Friday 14:00 before it ends (Sunday 25/10): Monday 14:00 is 73 hours on.
    (datetime(2026, 10, 23, 12, 0, tzinfo=UTC), datetime(2026, 10, 26, 13, 0, tzinfo=UTC)),
])
def test_three_days_are_three_local_calendar_days_across_a_change_of_time(created: datetime,
                                                                        due: datetime) -> None:
    h = handover.Handover(REF, handover.HandoverKind.PROFESSIONAL, NURSE, NURSE2, None, (), CM, created, id=1)
    assert not handover.reminder_due(h, due - timedelta(seconds=1))
    assert handover.reminder_due(h, due)
    assert handover.reminder(h, CM, True, due).params["days"] == 3
    # Another territory's zone counts its own days (Réunion keeps no summer time: 72 hours).
    reunion = ZoneInfo("Indian/Reunion")
    assert handover.reminder_due(h, created + timedelta(days=3), tz=reunion)
    assert not handover.reminder_due(h, created + timedelta(days=3) - timedelta(seconds=1), tz=reunion)
