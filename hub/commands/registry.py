"""The command table: each command declares its words, arguments, who may use it and its help.

Each handlers_* module exports its own `COMMANDS`; this module only assembles them, in the
order `!help` lists them. Built explicitly in app.py (no registration as a side effect of
imports); `!help` and every usage line are generated from it.
"""

from __future__ import annotations

from collections.abc import Iterable

from hub.commands import (
    handlers_alerts,
    handlers_concertation,
    handlers_consent,
    handlers_desk,
    handlers_handover,
    handlers_plan,
    handlers_referral,
    handlers_rights,
    handlers_team,
)
from hub.commands.context import Command, Handler
from hub.commands.parser import CommandSpec, Scope, Who

__all__ = ["REFERRER_COMMANDS", "Command", "Handler", "Registry", "build_registry"]

#: All a person not configured may do in their direct room with the bot (SPEC §9).
REFERRER_COMMANDS = frozenset({"help", "refer"})


class Registry:
    def __init__(self, commands: Iterable[Command] = ()) -> None:
        self._commands: list[Command] = list(commands)

    def register(self, spec: CommandSpec, handler: Handler | None) -> None:
        self._commands.append(Command(spec, handler))

    @property
    def specs(self) -> list[CommandSpec]:
        return [c.spec for c in self._commands]

    def handler(self, spec: CommandSpec) -> Handler | None:
        return next(c.handler for c in self._commands if c.spec is spec)

    def available(self, scope: Scope, desk_role: str | None, *, manager: bool = True) -> list[CommandSpec]:
        """The commands usable here; in a person's room, `manager` says whether the person is
        one of its case managers (the others may only read and acknowledge)."""
        out = []
        for spec in self.specs:
            if spec.scope not in (None, scope):
                continue
            if scope is Scope.TRIAGE and spec.scope is None and spec.name != "help":
                continue  # the dispatcher refuses them there (error.not_in_triage)
            if scope is Scope.ROOM and spec.who is not Who.MEMBER and not manager:
                continue
            if scope is Scope.DESK and spec.who is Who.PILOT and desk_role != "pilot":
                continue
            if scope is Scope.DESK and spec.who is Who.CASE_MANAGER and desk_role == "pilot":
                continue
            if desk_role == "referrer" and spec.name not in REFERRER_COMMANDS:
                continue
            out.append(spec)
        return out


def build_registry() -> Registry:
    return Registry((
        *handlers_desk.COMMANDS,
        *handlers_team.COMMANDS,
        *handlers_plan.COMMANDS,
        *handlers_alerts.COMMANDS,
        *handlers_handover.COMMANDS,
        *handlers_consent.COMMANDS,
        *handlers_concertation.COMMANDS,
        *handlers_referral.COMMANDS,
        *handlers_rights.COMMANDS,
    ))
