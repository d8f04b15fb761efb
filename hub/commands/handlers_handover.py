"""Commands of handovers and the file's lifecycle: !team remove, !transfer, !ack, !break, !close, !report."""

from __future__ import annotations

from datetime import date
from typing import Any

from hub.commands.context import Command, Ctx
from hub.commands.parser import Arg, CommandSpec, Invocation, Opt, Scope, Who
from hub.domain import team
from hub.domain.closure import REASON_ALIASES, CloseReason
from hub.domain.continuity import CATEGORY_ALIASES, Category
from hub.domain.effects import Effect, Notify
from hub.domain.errors import DomainError
from hub.domain.persons import Person
from hub.domain.report import Section
from hub.i18n.catalog import Catalog
from hub.services import closure, continuity, handovers, report

# Sections whose keys are already readable (Matrix ids, months); the others' keys are words.
_RAW_KEYS = {"caseload", "intake"}
_KEY_GROUPS = {"transitions": "setting", "breaks": "category", "closures": "close_reason"}


def _person(ctx: Ctx) -> Person:
    assert ctx.person is not None, "room commands run with a person"
    return ctx.person


async def remove(ctx: Ctx, inv: Invocation) -> list[Effect]:
    successor = inv.opts["successor"]
    settings = ctx.settings
    # Looked up only once the pure rules pass, so a refused server is never even queried.
    if (successor is not None and team.server_of(successor) in settings.allowed_servers
            and successor not in (settings.bot_user, inv.args["user"])
            and not await ctx.directory.user_exists(successor)):
        raise DomainError("error.unknown_user", user=successor)
    leaver = team.find(await ctx.uow.team.members(ctx.case_ref), inv.args["user"])
    effects = await handovers.remove_member(
        ctx.uow, _person(ctx), inv.args["user"], successor, inv.opts["reason"], organisation=inv.opts["org"],
        by=ctx.sender, now=ctx.now, allowed_servers=settings.allowed_servers, bot_user=settings.bot_user,
        catalog=Catalog(settings.language, ctx.tz.key), tz=ctx.tz,
    )
    # After the handover's own rules (their refusals come first); raising here rolls the unit back.
    if successor is not None and leaver is not None:  # the successor takes the leaver's role
        team.check_eligible(successor, leaver.role, case_managers=settings.case_managers, pilots=settings.pilots)
    return effects


async def transfer(ctx: Ctx, inv: Invocation) -> list[Effect]:
    person, warnings, effects = await handovers.transfer(
        ctx.uow, inv.args["case"], inv.args["user"], by=ctx.sender, now=ctx.now,
        case_managers=ctx.settings.case_managers, limits=ctx.settings.limits, tz=ctx.tz,
        catalog=Catalog(ctx.settings.language, ctx.tz.key),
    )
    return [*effects, ctx.reply("reply.transfer", case=person.case_ref, user=inv.args["user"], warnings=warnings)]


async def ack(ctx: Ctx, inv: Invocation) -> list[Effect]:
    return await handovers.acknowledge(ctx.uow, _person(ctx), ctx.sender, ctx.now)


async def break_(ctx: Ctx, inv: Invocation) -> list[Effect]:
    return await continuity.report_break(ctx.uow, _person(ctx), inv.args["text"], inv.opts["category"],
                                         by=ctx.sender, now=ctx.now, pilots=ctx.settings.pilots)


async def close(ctx: Ctx, inv: Invocation) -> list[Effect]:
    return await closure.close_file(ctx.uow, _person(ctx), CloseReason(inv.args["reason"]), by=ctx.sender,
                                    now=ctx.now, catalog=Catalog(ctx.settings.language, ctx.tz.key), tz=ctx.tz)


def _section_lines(name: str, section: Section) -> list[dict[str, Any]]:
    group = _KEY_GROUPS.get(name, "report.label")
    lines = []
    for key, value in section.items():
        label: Any = key if name in _RAW_KEYS else {"key": f"{group}.{key}"}
        if group != "report.label" and key == "hospital_stays":
            label = {"key": "report.label.hospital_stays"}
        lines.append({"key": "report.line", "params": {"label": label, "value": value}})
    return lines


def _as_of(day: date | None) -> dict[str, Any] | str:
    return "" if day is None else {"key": "report.as_of", "params": {"date": day.isoformat()}}


async def report_(ctx: Ctx, inv: Invocation) -> list[Effect]:
    p, sections = await report.build(ctx.uow, inv.opts["from"], inv.opts["to"], today=ctx.today, tz=ctx.tz,
                                     case_managers=ctx.settings.case_managers, limits=ctx.settings.limits)
    today = ctx.today
    blocks = [{"key": "report.section", "params": {"title": {"key": f"report.title.{name}"},
                                                   "as_of": _as_of(report.as_of(name, p, today)),
                                                   "lines": _section_lines(name, section)}}
              for name, section in sections.items()]
    return [Notify("command.reply", "", "report.header",
                   {"start": p.start.isoformat(), "end": p.end.isoformat(), "sections": blocks},
                   room_id=ctx.room_id)]


# The handover and lifecycle commands, in the order `!help` lists them (`team remove`, whose
# handler is `remove` above, is listed with the team commands in handlers_team).
COMMANDS: tuple[Command, ...] = (
    Command(CommandSpec(
        "transfer", "transferer", Scope.DESK, Who.CASE_MANAGER, "help.transfer",
        args=(Arg("case", "case_ref"), Arg("user", "user")),
    ), transfer),
    Command(CommandSpec("report", "rapport", Scope.DESK, Who.PILOT, "help.report",
                        opts=(Opt("from", "date", alias="du"), Opt("to", "date", alias="au"))), report_),
    # What follows `!vu` is the person's word to the room (`!vu merci, je passe jeudi`), already
    # there in their message: an acknowledgement has nothing to mistype, so it is never refused for it.
    Command(CommandSpec("ack", "vu", Scope.ROOM, Who.MEMBER, "help.ack", args=(Arg("comment", optional=True),)), ack),
    Command(CommandSpec(
        "break", "rupture", Scope.ROOM, Who.CASE_MANAGER, "help.break",
        args=(Arg("text"),),
        opts=(Opt("category", "choice", choices=tuple(c.value for c in Category), aliases=CATEGORY_ALIASES,
                  alias="categorie"),),
    ), break_),
    Command(CommandSpec(
        "close", "cloturer", Scope.ROOM, Who.CASE_MANAGER, "help.close",
        args=(Arg("reason", "choice", choices=tuple(r.value for r in CloseReason), aliases=REASON_ALIASES),),
    ), close),
)
