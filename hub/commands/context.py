"""What a handler knows about the command it runs: who, where, when, with which settings."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from hub.clock import DEFAULT_TIMEZONE, local_date
from hub.commands.parser import CommandSpec, Invocation
from hub.domain.caseload import Limits
from hub.domain.effects import Effect, Notify
from hub.domain.persons import Person
from hub.storage.database import UnitOfWork


class UserDirectory(Protocol):
    async def user_exists(self, user_id: str) -> bool: ...


@dataclass(frozen=True)
class Settings:
    language: str
    bot_user: str
    allowed_servers: tuple[str, ...]
    limits: Limits
    case_managers: tuple[str, ...]
    pilots: tuple[str, ...]
    reevaluation_days: int = 182
    coordinators: tuple[str, ...] = ()  # the triage team with the case managers (SPEC §9)

    @property
    def triage_team(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((*self.coordinators, *self.case_managers)))

    def desk_role(self, user_id: str) -> str | None:
        """"pilot", "case_manager" or None (no longer configured): read at every command."""
        if user_id in self.pilots:
            return "pilot"
        if user_id in self.case_managers:
            return "case_manager"
        return None


@dataclass
class Ctx:
    uow: UnitOfWork
    sender: str
    room_id: str
    now: datetime
    settings: Settings
    directory: UserDirectory
    tz: ZoneInfo = field(default_factory=lambda: ZoneInfo(DEFAULT_TIMEZONE))  # the territory's
    person: Person | None = None  # set in a person's room
    event_id: str = ""  # the command's Matrix event: what a referral made by it is keyed by
    desk_role: str | None = None  # set in a desk: "case_manager" | "pilot" | "referrer" | "triage"
    lane: str | None = None  # the outbox lane of this room (RoomOwners.lane), None: looked up when enqueued

    @property
    def today(self) -> date:
        """The territory's date now: what "today" means in every rule (SPEC §5)."""
        return local_date(self.now, self.tz)

    @property
    def case_ref(self) -> str:
        return self.person.case_ref if self.person else ""

    def reply(self, message: str, **params: Any) -> Notify:
        return Notify("command.reply", self.case_ref, message, params, room_id=self.room_id)


Handler = Callable[[Ctx, Invocation], Awaitable[list[Effect]]]


@dataclass(frozen=True)
class Command:
    """One entry of the command table: what the user types (`spec`) and what runs it.

    `handler` is None for `!help` alone: the dispatcher answers it from the table it holds."""

    spec: CommandSpec
    handler: Handler | None
