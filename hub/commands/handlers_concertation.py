"""Person-room commands of the clinical concertation: !concertation, its move and cancel, !decision."""

from __future__ import annotations

from hub.commands.context import Command, Ctx
from hub.commands.parser import Arg, CommandSpec, Invocation, Opt, Scope, Who
from hub.domain.effects import Effect
from hub.domain.persons import Person
from hub.i18n.catalog import Catalog
from hub.services import concertations


def _person(ctx: Ctx) -> Person:
    assert ctx.person is not None, "room commands run with a person"
    return ctx.person


def _catalog(ctx: Ctx) -> Catalog:
    """The calendar file's texts, in the territory's language and time zone."""
    return Catalog(ctx.settings.language, ctx.tz.key)


async def plan(ctx: Ctx, inv: Invocation) -> list[Effect]:
    return await concertations.plan(
        ctx.uow, _person(ctx), inv.args["date"], inv.args["time"], minutes=inv.opts["minutes"], place=inv.opts["place"],
        visio=inv.opts["visio"], with_=inv.opts["with"], by=ctx.sender, now=ctx.now,
        catalog=_catalog(ctx), bot_user=ctx.settings.bot_user, tz=ctx.tz)


async def move(ctx: Ctx, inv: Invocation) -> list[Effect]:
    return await concertations.move(ctx.uow, _person(ctx), inv.args["date"], inv.args["time"], by=ctx.sender,
                                    now=ctx.now, catalog=_catalog(ctx), tz=ctx.tz)


async def cancel(ctx: Ctx, inv: Invocation) -> list[Effect]:
    return await concertations.cancel(ctx.uow, _person(ctx), by=ctx.sender, now=ctx.now,
                                      catalog=_catalog(ctx), tz=ctx.tz)


async def decide(ctx: Ctx, inv: Invocation) -> list[Effect]:
    d = await concertations.decide(ctx.uow, _person(ctx), inv.args["text"], inv.opts["item"], by=ctx.sender,
                                   now=ctx.now, tz=ctx.tz)
    item = {"key": "concertation.decision_item", "params": {"item": d.item}} if d.item else ""
    return [ctx.reply("concertation.decision_recorded", number=d.number, text=d.text, item=item)]


# The time is read by the parser as French people write it (`14h`, `14 h 30`) and given as HH:MM.
_WHEN = (Arg("date", "date"), Arg("time", "time"))

# The concertation commands, in the order `!help` lists them.
COMMANDS: tuple[Command, ...] = (
    Command(CommandSpec(
        "concertation", "concertation", Scope.ROOM, Who.CASE_MANAGER, "help.concertation", args=_WHEN,
        opts=(Opt("minutes", "int", alias="duree"), Opt("place", alias="lieu"), Opt("visio"),
              Opt("with", "user", alias="avec", many=True)),
    ), plan),
    Command(CommandSpec("concertation move", "concertation deplacer", Scope.ROOM, Who.CASE_MANAGER,
                        "help.concertation_move", args=_WHEN), move),
    Command(CommandSpec("concertation cancel", "concertation annuler", Scope.ROOM, Who.CASE_MANAGER,
                        "help.concertation_cancel"), cancel),
    Command(CommandSpec("decision", "decision", Scope.ROOM, Who.CASE_MANAGER, "help.decision",
                        args=(Arg("text"),), opts=(Opt("item", "int", alias="action"),)), decide),
)
