"""Commands about the person's rights (SPEC §10): !rights, !rights done <n>.

`!eval done … --tool AGGIR --grid <10 letters>` (handlers_plan) opens the reviews.
"""

from __future__ import annotations

from hub.commands.context import Command, Ctx
from hub.commands.parser import Arg, CommandSpec, Invocation, Scope, Who
from hub.domain import rights as rules
from hub.domain.effects import Effect
from hub.services import rights


async def show(ctx: Ctx, inv: Invocation) -> list[Effect]:
    lines = await rights.open_lines(ctx.uow, ctx.person, ctx.sender, ctx.today, ctx.tz)
    if ctx.person is None:
        return [ctx.reply("rights.list_desk" if lines else "rights.none_desk", lines=lines)]
    return [ctx.reply("rights.list" if lines else "rights.none", case=ctx.case_ref, lines=lines)]


async def done(ctx: Ctx, inv: Invocation) -> list[Effect]:
    assert ctx.person is not None, "room commands run with a person"
    closed = await rights.close_review(ctx.uow, ctx.person, inv.args["n"], by=ctx.sender, now=ctx.now, tz=ctx.tz)
    still_open = len(await rights.open_lines(ctx.uow, ctx.person, ctx.sender, ctx.today, ctx.tz))
    params = rules.notice_params(closed, ctx.case_ref)
    return [ctx.reply("rights.closed", case=ctx.case_ref, number=closed.number, by=ctx.sender, old=params["old"],
                      new=closed.new_gir, open=still_open)]


# The rights commands, in the order `!help` lists them.
COMMANDS: tuple[Command, ...] = (
    Command(CommandSpec("rights", "droits", None, Who.CASE_MANAGER, "help.rights"), show),
    Command(CommandSpec("rights done", "droits fait", Scope.ROOM, Who.CASE_MANAGER, "help.rights_done",
                        args=(Arg("n", "int"),)), done),
)
