"""The care team: who works with the person, in which role, since when."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from hub.domain import limits
from hub.domain.effects import Effect, Invite, Kick, Notify
from hub.domain.errors import DomainError


class Role(StrEnum):
    GP = "gp"
    NURSE = "nurse"
    HOME_NURSING = "home_nursing"
    HOME_HELP = "home_help"
    SOCIAL_WORKER = "social_worker"
    PHYSIO = "physio"
    PHARMACIST = "pharmacist"
    HAD = "had"
    GUARDIAN = "guardian"
    CARER = "carer"
    CASE_MANAGER = "case_manager"
    OTHER = "other"


@dataclass(frozen=True)
class Member:
    user_id: str
    role: Role
    since: datetime
    organisation: str | None = None
    until: datetime | None = None
    end_reason: str | None = None

    @property
    def active(self) -> bool:
        return self.until is None


def server_of(user_id: str) -> str:
    return user_id.split(":", 1)[1] if ":" in user_id else ""


def active(team: tuple[Member, ...] | list[Member]) -> list[Member]:
    return [m for m in team if m.active]


def find(team: tuple[Member, ...] | list[Member], user_id: str) -> Member | None:
    return next((m for m in active(team) if m.user_id == user_id), None)


def case_managers(team: tuple[Member, ...] | list[Member], referent: str) -> tuple[str, ...]:
    """Who manages this file: its referent first, then the active members in the case-manager
    role, each once. They alone run the case-manager commands in the person's room (SPEC §4) and
    are the ones told when a member cannot read the room."""
    managers = [m.user_id for m in active(team) if m.role is Role.CASE_MANAGER]
    return tuple(dict.fromkeys([referent, *managers]))


def mentions_for(team: tuple[Member, ...] | list[Member], referent: str) -> tuple[str, ...]:
    """Alerts and handovers mention the case manager and the GP (SPEC §5)."""
    gps = [m.user_id for m in active(team) if m.role is Role.GP]
    return tuple(dict.fromkeys([referent, *gps]))


def check_eligible(user_id: str, role: Role, *, case_managers: tuple[str, ...] | frozenset[str],
                   pilots: tuple[str, ...] | frozenset[str]) -> None:
    """Who may hold a place in a team (SPEC §2, issue 17): the role `case_manager` gives every
    mutating right on the file, so only people listed in `[care] case_managers` take it; a pilot
    sees the territory's counts only and is never a member. Raises DomainError."""
    if user_id in pilots:
        raise DomainError("error.member_is_pilot", user=user_id)
    if role is Role.CASE_MANAGER and user_id not in case_managers:
        raise DomainError("error.case_manager_not_configured", user=user_id)


def add_member(
    team: tuple[Member, ...] | list[Member],
    case_ref: str,
    user_id: str,
    role: Role,
    organisation: str | None,
    *,
    by: str,
    now: datetime,
    allowed_servers: tuple[str, ...],
    bot_user: str,
) -> tuple[Member, list[Effect]]:
    if server_of(user_id) not in allowed_servers:
        raise DomainError("error.server_not_allowed", user=user_id, servers=", ".join(allowed_servers))
    if user_id == bot_user:
        raise DomainError("error.member_is_bot", user=user_id)
    if find(team, user_id) is not None:
        raise DomainError("error.already_member", user=user_id)
    limits.check("org", organisation)
    member = Member(user_id=user_id, role=role, since=now, organisation=organisation)
    effects: list[Effect] = [
        Invite(case_ref, user_id),
        Notify("team.update", case_ref, "team.added",
               {"user": user_id, "role": role.value, "org": organisation, "by": by}, (user_id,)),
    ]
    return member, effects


def remove_member(
    team: tuple[Member, ...] | list[Member],
    case_ref: str,
    user_id: str,
    *,
    by: str,
    now: datetime,
    reason: str | None,
) -> tuple[Member, list[Effect]]:
    member = find(team, user_id)
    if member is None:
        raise DomainError("error.not_member", user=user_id)
    limits.check("reason", reason)
    ended = replace(member, until=now, end_reason=reason)
    effects: list[Effect] = [
        Notify("team.update", case_ref, "team.removed",
               {"user": user_id, "role": member.role.value, "by": by, "reason": reason}, (user_id,)),
        Kick(case_ref, user_id),
    ]
    return ended, effects
