"""Person-room commands about settings and alerts: !move."""

from __future__ import annotations

from hub.commands.context import Command, Ctx
from hub.commands.parser import Arg, CommandSpec, Invocation, Opt, Scope, Who
from hub.domain.effects import Effect
from hub.domain.settings import Setting
from hub.services import alerts

# French words accepted for <setting>, beside the canonical English ones.
SETTING_ALIASES = {
    "domicile": "home", "urgences": "emergency", "hopital": "hospital", "hôpital": "hospital",
    "mco": "hospital", "smr": "rehab", "ssr": "rehab", "hebergement_temporaire": "temporary_stay",
    "hébergement_temporaire": "temporary_stay", "accueil_de_jour": "day_care", "ehpad": "nursing_home",
    "autre": "other",
    # as the notices write them (typed back in several words: hub/commands/parser.py)
    "soins médicaux et de réadaptation": "rehab", "hospitalisation à domicile": "had", "autre lieu": "other",
    "emergency department": "emergency", "acute care": "hospital", "rehabilitation": "rehab",
    "hospital at home": "had", "temporary accommodation": "temporary_stay", "another setting": "other",
}


async def move(ctx: Ctx, inv: Invocation) -> list[Effect]:
    assert ctx.person is not None, "room commands run with a person"
    return await alerts.move_by_hand(ctx.uow, ctx.person, Setting(inv.args["setting"]), inv.args["establishment"],
                                     inv.opts["date"], by=ctx.sender, now=ctx.now, tz=ctx.tz)


# The setting commands, in the order `!help` lists them.
COMMANDS: tuple[Command, ...] = (
    Command(CommandSpec(
        "move", "lieu", Scope.ROOM, Who.CASE_MANAGER, "help.move",
        args=(Arg("setting", "choice", choices=tuple(s.value for s in Setting), aliases=SETTING_ALIASES),
              Arg("establishment", optional=True)),
        opts=(Opt("date", "date"),),
    ), move),
)
