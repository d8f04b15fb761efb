"""Person-room commands about the person's information and consent: !consent, !consent informed|given|refused."""

from __future__ import annotations

from hub.commands.context import Command, Ctx, Handler
from hub.commands.parser import Arg, CommandSpec, Invocation, Opt, Scope, Who
from hub.domain.consent import SCOPE_ALIASES, Status
from hub.domain.consent import Scope as ConsentScope
from hub.domain.effects import Effect
from hub.domain.persons import Person
from hub.i18n.catalog import Catalog
from hub.services import consent


def _person(ctx: Ctx) -> Person:
    assert ctx.person is not None, "room commands run with a person"
    return ctx.person


async def show(ctx: Ctx, inv: Invocation) -> list[Effect]:
    return [ctx.reply("consent.show", **await consent.show_params(ctx.uow, _person(ctx)))]


def _recorder(status: Status) -> Handler:
    async def handler(ctx: Ctx, inv: Invocation) -> list[Effect]:
        scope = inv.opts["scope"]
        return await consent.record(
            ctx.uow, _person(ctx), status, ConsentScope(scope) if scope else None, inv.args["date"],
            inv.opts["note"], by=ctx.sender, now=ctx.now, tz=ctx.tz,
            catalog=Catalog(ctx.settings.language, ctx.tz.key))
    return handler


_OPTIONS = (Opt("scope", "choice", choices=tuple(s.value for s in ConsentScope), aliases=SCOPE_ALIASES,
                alias="portee"),
            Opt("note"))

# The consent commands, in the order `!help` lists them.
COMMANDS: tuple[Command, ...] = (
    Command(CommandSpec("consent", "consentement", Scope.ROOM, Who.MEMBER, "help.consent"), show),
    *(Command(CommandSpec(
        f"consent {status.value}", f"consentement {french}", Scope.ROOM, Who.CASE_MANAGER,
        f"help.consent_{status.value}", args=(Arg("date", "date", optional=True),), opts=_OPTIONS,
    ), _recorder(status))
      for status, french in ((Status.INFORMED, "informe"), (Status.GIVEN, "donne"), (Status.REFUSED, "refuse"))),
)
