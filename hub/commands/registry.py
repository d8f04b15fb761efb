"""The command table: each command declares its words, arguments, who may use it and its help.

Built explicitly in app.py (no registration as a side effect of imports); `!help` and every
usage line are generated from it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from hub.commands import (
    handlers_alerts,
    handlers_concertation,
    handlers_consent,
    handlers_desk,
    handlers_handover,
    handlers_plan,
    handlers_team,
)
from hub.commands.context import Ctx
from hub.commands.parser import Arg, CommandSpec, Invocation, Opt, Scope, Who
from hub.domain.effects import Effect
from hub.domain.team import Role

Handler = Callable[[Ctx, Invocation], Awaitable[list[Effect]]]

# French words a case manager types for each role (accents and case are ignored).
ROLE_WORDS = {
    "medecin": "gp", "mg": "gp", "medecin_traitant": "gp",
    "infirmier": "nurse", "infirmiere": "nurse", "ide": "nurse", "idel": "nurse",
    "ssiad": "home_nursing", "saad": "home_help", "sad": "home_help", "aide_a_domicile": "home_help",
    "assistant_social": "social_worker", "assistante_sociale": "social_worker", "as": "social_worker",
    "kine": "physio", "kinesitherapeute": "physio", "pharmacien": "pharmacist", "pharmacienne": "pharmacist",
    "tuteur": "guardian", "curateur": "guardian", "mandataire": "guardian",
    "aidant": "carer", "aidante": "carer", "gestionnaire": "case_manager", "autre": "other",
}
ROLE_ARG = Arg("role", "choice", choices=tuple(r.value for r in Role), aliases=ROLE_WORDS)


@dataclass(frozen=True)
class Command:
    spec: CommandSpec
    handler: Handler | None  # None: answered by the dispatcher itself (!help)


class Registry:
    def __init__(self) -> None:
        self._commands: list[Command] = []

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
            if scope is Scope.ROOM and spec.who is not Who.MEMBER and not manager:
                continue
            if scope is Scope.DESK and spec.who is Who.PILOT and desk_role != "pilot":
                continue
            if scope is Scope.DESK and spec.who is Who.CASE_MANAGER and desk_role == "pilot":
                continue
            out.append(spec)
        return out


def build_registry() -> Registry:
    reg = Registry()
    reg.register(CommandSpec("help", "aide", None, Who.MEMBER, "help.help",
                             args=(Arg("command", optional=True), Arg("sub", optional=True))), None)
    reg.register(CommandSpec(
        "new", "nouveau", Scope.DESK, Who.CASE_MANAGER, "help.new",
        args=(Arg("name"),),
        opts=(Opt("ins"), Opt("id", repeat=True), Opt("born", "date", alias="naissance")),
    ), handlers_desk.new)
    reg.register(CommandSpec("caseload", "file-active", Scope.DESK, Who.CASE_MANAGER, "help.caseload"),
                 handlers_desk.caseload)
    reg.register(CommandSpec("team", "equipe", Scope.ROOM, Who.MEMBER, "help.team"), handlers_team.show)
    reg.register(CommandSpec(
        "team add", "equipe ajouter", Scope.ROOM, Who.CASE_MANAGER, "help.team_add",
        args=(Arg("user", "user"), ROLE_ARG), opts=(Opt("org", alias="organisation"),),
    ), handlers_team.add)
    reg.register(CommandSpec(
        "team remove", "equipe retirer", Scope.ROOM, Who.CASE_MANAGER, "help.team_remove",
        args=(Arg("user", "user"),),
        opts=(Opt("successor", "user", alias="successeur"), Opt("reason", alias="raison"),
              Opt("org", alias="organisation")),
    ), handlers_handover.remove)
    reg.register(CommandSpec("id", "id", Scope.ROOM, Who.MEMBER, "help.id"), handlers_team.ids)
    reg.register(CommandSpec(
        "id add", "id ajouter", Scope.ROOM, Who.CASE_MANAGER, "help.id_add",
        args=(Arg("identifier", optional=True),), opts=(Opt("ins"),),
    ), handlers_team.id_add)
    handlers_plan.register(reg)
    handlers_alerts.register(reg)
    handlers_handover.register(reg)
    handlers_consent.register(reg)
    handlers_concertation.register(reg)
    return reg
