"""Desk commands: !help, !new, !caseload."""

from __future__ import annotations

from hub.commands.context import Command, Ctx
from hub.commands.parser import Arg, CommandSpec, Invocation, Opt, Scope, UsageError, Who
from hub.domain.effects import Effect, Notify
from hub.domain.errors import DomainError
from hub.domain.persons import INS, Identifier, parse_identifier, parse_nir
from hub.services import cases


def identifier(inv: Invocation, text: str) -> Identifier:
    """An identifier no message could match is a usage error: answered with the usage line."""
    try:
        return parse_identifier(text)
    except UsageError:
        raise
    except DomainError as exc:
        raise UsageError(exc.key, inv.spec, **exc.params) from None


def identifiers_from(inv: Invocation) -> list[Identifier]:
    idents = [identifier(inv, text) for text in inv.opts.get("id", [])]
    if inv.opts.get("ins"):
        idents.insert(0, Identifier(INS, parse_nir(inv.opts["ins"])))
    return idents


async def new(ctx: Ctx, inv: Invocation) -> list[Effect]:
    person, warnings, effects = await cases.open_case(
        ctx.uow, referent=ctx.sender, name=inv.args["name"], born=inv.opts["born"],
        identifiers=identifiers_from(inv), limits=ctx.settings.limits, now=ctx.now, tz=ctx.tz,
    )
    load = await cases.load_caseload(ctx.uow, ctx.sender, ctx.now, ctx.tz)
    limits = ctx.settings.limits
    figures = {"target": limits.target, "active": load.active, "intake": limits.intake_per_month,
               "count": load.intake_this_month}
    # The reply carries the new file's reference so other programs can follow it.
    reply = Notify("command.reply", person.case_ref, "reply.new",
                   {"case": person.case_ref, "name": person.display_name,
                    "warnings": [{"key": w, "params": figures} for w in warnings]}, room_id=ctx.room_id)
    return [*effects, reply]


async def caseload(ctx: Ctx, inv: Invocation) -> list[Effect]:
    load = await cases.load_caseload(ctx.uow, ctx.sender, ctx.now, ctx.tz)
    limits = ctx.settings.limits
    refs = await ctx.uow.persons.active_refs(ctx.sender)
    return [ctx.reply(
        "reply.caseload", active=load.active, target=limits.target, maximum=limits.maximum,
        intake=load.intake_this_month, intake_max=limits.intake_per_month,
        overdue=load.overdue_reevaluations, without_gp=load.without_gp,
        without_provider=load.items_without_provider, files=refs, rights=load.rights_reviews,
    )]


# The desk commands, in the order `!help` lists them. `!help` has no handler: the dispatcher
# answers it from the whole table.
COMMANDS: tuple[Command, ...] = (
    # `!aide` alone, or `!aide plan ajouter` for one command in detail.
    Command(CommandSpec("help", "aide", None, Who.MEMBER, "help.help",
                        args=(Arg("command", optional=True), Arg("sub", optional=True))), None),
    Command(CommandSpec(
        "new", "nouveau", Scope.DESK, Who.CASE_MANAGER, "help.new",
        args=(Arg("name"),),
        opts=(Opt("ins"), Opt("id", repeat=True), Opt("born", "date", alias="naissance")),
    ), new),
    Command(CommandSpec("caseload", "file-active", Scope.DESK, Who.CASE_MANAGER, "help.caseload"), caseload),
)
