"""Professional handovers (SPEC §6): who leaves, who takes over, what passes to them. Pure.

A handover is composed from the team, the plan and the evaluation status; it returns the new
team records, the reassigned plan items and the effects. The successor is invited *before* the
notice is posted: the rooms show history from invitation on, so a notice posted earlier would
stay unreadable to the very person who must acknowledge it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, tzinfo
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from hub.domain import days as local_days
from hub.domain import limits, plan, team
from hub.domain.effects import Effect, Invite, Kick, MovePower, Notify
from hub.domain.errors import DomainError
from hub.domain.evaluations import Evaluation
from hub.domain.plan import PlanItem
from hub.domain.team import Member, Role

KIND = "handover.professional"
DEFAULT_REMINDER_DAYS = 3
PARIS = ZoneInfo("Europe/Paris")  # the default territory; the service passes the configured one


class HandoverKind(StrEnum):
    PROFESSIONAL = "professional"  # !team remove … --successor
    CASE_MANAGER = "case_manager"  # !transfer


@dataclass(frozen=True)
class Handover:
    case_ref: str
    kind: HandoverKind
    leaver: str
    successor: str | None
    reason: str | None
    items: tuple[int, ...]  # plan item numbers that passed to the successor
    created_by: str
    created_at: datetime
    acked_at: datetime | None = None
    reminded_at: datetime | None = None
    id: int | None = None

    @property
    def open(self) -> bool:
        return self.successor is not None and self.acked_at is None


@dataclass(frozen=True)
class Composed:
    """What a handover changes: team records to end and add, plan versions, effects in order."""

    handover: Handover
    ended: Member
    added: Member | None
    items: list[PlanItem]
    effects: list[Effect]


def evaluation_params(last: Evaluation | None, due: date) -> dict[str, Any]:
    if last is None:
        last_eval: Any = {"key": "handover.no_evaluation"}
    else:
        gir: Any = {"key": "handover.gir", "params": {"gir": last.gir}} if last.gir is not None else ""
        last_eval = {"key": "handover.evaluation", "params": {
            "date": last.date.isoformat(), "tool": last.tool.value, "gir": gir}}
    return {"last_eval": last_eval, "due": due.isoformat()}


def _short(item: PlanItem) -> dict[str, Any]:
    return {"key": "handover.item", "params": {"number": item.number, "need": item.need, "action": item.action}}


def _check_successor(leaver: str, successor: str, *, allowed_servers: tuple[str, ...],
                     bot_user: str) -> None:
    if successor == leaver:
        raise DomainError("error.successor_is_leaver", user=successor)
    if successor == bot_user:
        raise DomainError("error.member_is_bot", user=successor)
    if team.server_of(successor) not in allowed_servers:
        raise DomainError("error.server_not_allowed", user=successor, servers=", ".join(allowed_servers))


def _notice(case_ref: str, message: str, *, leaver: Member, successor: str | None, reason: str | None,
            passing: list[PlanItem], open_items: list[PlanItem], last: Evaluation | None, due: date, by: str,
            mentions: tuple[str, ...], person: str) -> Notify:
    """The successor's action first, then what passes to them; the other open items by number
    only (each item is shown once), empty fields left out (SPEC §6, issue 22)."""
    passed = {i.number for i in passing}
    others = [str(i.number) for i in open_items if i.number not in passed]
    return Notify(KIND, case_ref, message, {
        "person": person, "case": case_ref, "leaver": leaver.user_id, "role": leaver.role.value,
        "why": reason, "successor": successor, "by": by,
        "passing": {"key": "handover.passing", "params": {"items": [_short(i) for i in passing]}} if passing else None,
        "others": ", ".join(others) if others else None,
        **evaluation_params(last, due),
    }, mentions)


def professional(
    members: list[Member], items: Sequence[PlanItem], case_ref: str, referent: str, leaver_id: str,
    successor: str | None, reason: str | None, *, organisation: str | None, last: Evaluation | None, due: date,
    by: str, now: datetime, allowed_servers: tuple[str, ...], bot_user: str, person: str = "",
) -> Composed:
    """`!team remove <leaver> [--successor …] [--reason …]`.

    With a successor: invite them (same role; the leaver's organisation unless another is
    given), post the handover notice, pass the leaver's open plan items to them, remove the
    leaver. Without: the items lose their named provider and are flagged (`continuity.break`).
    """
    leaver = team.find(members, leaver_id)
    if leaver is None:
        raise DomainError("error.not_member", user=leaver_id)
    if leaver_id == referent:
        raise DomainError("error.remove_referent", user=leaver_id)
    limits.check("reason", reason)
    limits.check("org", organisation)
    ended = replace(leaver, until=now, end_reason=reason)
    remaining = [m for m in team.active(members) if m.user_id != leaver_id]
    mentions = team.mentions_for(remaining, referent)
    added: Member | None = None
    effects: list[Effect] = []
    if successor is not None:
        _check_successor(leaver_id, successor, allowed_servers=allowed_servers, bot_user=bot_user)
        if team.find(members, successor) is None:
            added = Member(user_id=successor, role=leaver.role, since=now,
                           organisation=organisation if organisation is not None else leaver.organisation)
            effects.append(Invite(case_ref, successor))
        mentions = tuple(dict.fromkeys([*mentions, successor]))
    changed, plan_effects = plan.reassign(items, case_ref, leaver_id, successor, by=by, now=now, mentions=mentions)
    current = {i.number: i for i in items} | {i.number: i for i in changed}
    open_items = [i for i in sorted(current.values(), key=lambda i: i.number) if not i.closed]
    if successor is not None:
        effects.append(_notice(case_ref, "handover.notice", leaver=leaver, successor=successor, reason=reason,
                               passing=changed, open_items=open_items, last=last, due=due, by=by,
                               mentions=mentions, person=person))
    else:
        effects.append(Notify("team.update", case_ref, "team.removed",
                              {"user": leaver_id, "role": leaver.role.value, "by": by, "reason": reason}, (leaver_id,)))
    effects.extend(plan_effects)
    effects.append(Kick(case_ref, leaver_id))
    record = Handover(case_ref, HandoverKind.PROFESSIONAL, leaver_id, successor, reason,
                      tuple(i.number for i in changed), by, now)
    return Composed(record, ended, added, changed, effects)


def transfer(
    members: list[Member], items: Sequence[PlanItem], case_ref: str, referent: str, receiver: str, *,
    case_managers: tuple[str, ...], last: Evaluation | None, due: date, by: str, now: datetime, person: str = "",
) -> Composed:
    """`!transfer <case> @cm2`: the file passes to another configured case manager.

    The receiver is invited and takes the referent's team record, plan items and room power;
    the former referent is removed from the room once the notice is posted.
    """
    if receiver == referent:
        raise DomainError("error.transfer_same", user=receiver)
    if receiver not in case_managers:
        raise DomainError("error.transfer_not_case_manager", user=receiver)
    leaver = team.find(members, referent) or Member(referent, Role.CASE_MANAGER, now)
    ended = replace(leaver, until=now, end_reason="transfer")
    added = None if team.find(members, receiver) is not None else Member(receiver, Role.CASE_MANAGER, now)
    remaining = [m for m in team.active(members) if m.user_id != referent]
    mentions = tuple(dict.fromkeys([*team.mentions_for(remaining, receiver)]))
    changed, plan_effects = plan.reassign(items, case_ref, referent, receiver, by=by, now=now, mentions=mentions)
    current = {i.number: i for i in items} | {i.number: i for i in changed}
    open_items = [i for i in sorted(current.values(), key=lambda i: i.number) if not i.closed]
    effects: list[Effect] = []
    if added is not None:
        effects.append(Invite(case_ref, receiver))
    effects.append(_notice(case_ref, "handover.transfer", leaver=leaver, successor=receiver, reason=None,
                           passing=changed, open_items=open_items, last=last, due=due, by=by, mentions=mentions,
                           person=person))
    effects.extend(plan_effects)
    effects.append(MovePower(case_ref, referent, receiver))
    effects.append(Kick(case_ref, referent, "kick.transfer"))
    record = Handover(case_ref, HandoverKind.CASE_MANAGER, referent, receiver, None,
                      tuple(i.number for i in changed), by, now)
    return Composed(record, ended, added, changed, effects)


def acknowledge(handovers: Sequence[Handover], user: str, *, now: datetime) -> tuple[Handover, list[Effect]]:
    """`!ack`: the latest open handover addressed to `user` is closed."""
    mine = [h for h in handovers if h.open and h.successor == user]
    if not mine:
        raise DomainError("error.no_handover", user=user)
    latest = max(mine, key=lambda h: (h.created_at, h.id or 0))
    done = replace(latest, acked_at=now)
    return done, [Notify(KIND, latest.case_ref, "handover.acked",
                         {"user": user, "leaver": latest.leaver, "date": latest.created_at.isoformat()},
                         (latest.created_by,))]


def reminder_due(handover: Handover, now: datetime, days: int = DEFAULT_REMINDER_DAYS, tz: tzinfo = PARIS) -> bool:
    """Unacknowledged `days` local calendar days after it was made (same wall-clock time, in the
    territory's zone `tz`), and not reminded yet: one reminder only."""
    return (handover.open and handover.reminded_at is None
            and now >= local_days.later(handover.created_at, days, tz))


def reminder(handover: Handover, to: str, desk: bool, now: datetime, tz: tzinfo = PARIS) -> Notify:
    """To whoever must chase it: the referent (professional) or the former one (transfer)."""
    params = {"case": handover.case_ref, "successor": handover.successor, "leaver": handover.leaver,
              "date": handover.created_at.isoformat(), "days": local_days.elapsed(handover.created_at, now, tz)}
    return Notify(KIND, handover.case_ref, "handover.reminder", params, (to,), desk=to if desk else None)
