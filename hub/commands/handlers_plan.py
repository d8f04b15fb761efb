"""Person-room commands about the care plan and evaluations: !plan…, !eval…"""

from __future__ import annotations

from datetime import date
from typing import Any

from hub.commands.context import Command, Ctx
from hub.commands.parser import Arg, CommandSpec, Invocation, Opt, Scope, UsageError, Who
from hub.domain.aggir import GridError
from hub.domain.effects import Effect
from hub.domain.errors import DomainError
from hub.domain.evaluations import Evaluation, Reason
from hub.domain.persons import Person
from hub.domain.plan import ItemStatus
from hub.services import plans, rights

STATUS_ALIASES = {
    "propose": "proposed", "proposé": "proposed", "proposée": "proposed",
    "en_place": "in_place", "en place": "in_place", "in place": "in_place",
    "refuse": "refused", "refusé": "refused", "refusée": "refused",
    "indisponible": "unavailable", "non_disponible": "unavailable",
    "fait": "done", "faite": "done", "termine": "done", "terminé": "done", "terminée": "done",
    "réalisé": "done", "réalisée": "done",
    # as the notices write them (typed back in several words: hub/commands/parser.py)
    "besoin non couvert": "unavailable", "unmet need": "unavailable",
}
REASON_ALIASES = {
    "initiale": "initial", "premiere": "initial", "première": "initial", "suivi": "routine",
    "changement": "change", "retour_hospitalisation": "hospital_return", "retour_hopital": "hospital_return",
    "retour_hôpital": "hospital_return",
    # as the notices write them (typed back in several words: hub/commands/parser.py)
    "évaluation initiale": "initial", "réévaluation périodique": "routine", "réévaluation": "routine",
    "changement de situation": "change", "retour d'hospitalisation": "hospital_return",
    "initial evaluation": "initial", "routine re-evaluation": "routine", "change in the situation": "change",
    "return from hospital": "hospital_return",
}
# `--provider none` / `--frequency aucune` / `--review none`: remove the value.
NONE_WORDS = frozenset({"none", "aucun", "aucune", "-"})


def _person(ctx: Ctx) -> Person:
    assert ctx.person is not None, "room commands run with a person"
    return ctx.person


# --- the plan -------------------------------------------------------------------------------

async def show(ctx: Ctx, inv: Invocation) -> list[Effect]:
    number: int | None = inv.args.get("n")
    if number is None:
        return [await _plan_reply(ctx, None)]
    view = await plans.view(ctx.uow, _person(ctx))
    item = next((i for i in (*view.open, *view.closed) if i.number == number), None)
    if item is None:
        raise DomainError("error.plan_no_item", item=number)
    return [ctx.reply("plan.one", case=ctx.case_ref, number=number, item=plans.item_lines([item])[0])]


async def as_of(ctx: Ctx, inv: Invocation) -> list[Effect]:
    when: date = inv.args["date"]
    if when > ctx.today:
        raise UsageError("error.plan_asof_future", inv.spec, date=when.isoformat())
    return [await _plan_reply(ctx, when)]


async def _plan_reply(ctx: Ctx, when: date | None) -> Effect:
    view = await plans.view(ctx.uow, _person(ctx), when, ctx.tz)
    params: dict[str, Any] = {"case": ctx.case_ref, "count": len(view.open), "items": plans.item_lines(view.open),
                              "date": when.isoformat() if when else None, "pointer": "!plan <n>"}
    params["closed"] = (
        {"key": "plan.closed_list", "params": {"numbers": ", ".join(str(i.number) for i in view.closed)}}
        if view.closed else None
    )
    if when is not None:
        return ctx.reply("plan.show_asof" if view.open or view.closed else "plan.empty_asof", **params)
    return ctx.reply("plan.show" if view.open or view.closed else "plan.empty", **params)


async def add(ctx: Ctx, inv: Invocation) -> list[Effect]:
    return await plans.add_item(
        ctx.uow, _person(ctx), inv.args["need"], inv.args["action"], provider=inv.opts["provider"],
        frequency=inv.opts["frequency"], start=inv.opts["start"], review=inv.opts["review"],
        by=ctx.sender, now=ctx.now, tz=ctx.tz,
    )


def _review(inv: Invocation, raw: str, today: date) -> date | None:
    if raw.strip().lower() in NONE_WORDS:
        return None
    try:
        return Arg("review", "date").convert(raw.strip(), today)  # type: ignore[no-any-return]
    except UsageError as exc:
        raise UsageError(exc.key, inv.spec, **exc.params) from None


async def set_(ctx: Ctx, inv: Invocation) -> list[Effect]:
    changes: dict[str, object] = {}
    if inv.opts["status"] is not None:
        changes["status"] = inv.opts["status"]
    for name in ("provider", "frequency"):
        value = inv.opts[name]
        if value is not None:
            changes[name] = None if value.strip().lower() in NONE_WORDS else value
    if inv.opts["review"] is not None:
        changes["review"] = _review(inv, inv.opts["review"], ctx.today)
    if not changes:
        raise UsageError("error.plan_set_nothing", inv.spec, item=inv.args["n"])
    return await plans.set_item(ctx.uow, _person(ctx), inv.args["n"], changes, by=ctx.sender, now=ctx.now,
                                 tz=ctx.tz)


async def close(ctx: Ctx, inv: Invocation) -> list[Effect]:
    return await plans.close_item(ctx.uow, _person(ctx), inv.args["n"], by=ctx.sender, now=ctx.now)


# --- evaluations ----------------------------------------------------------------------------

def _evaluation_params(evaluation: Evaluation) -> dict[str, Any]:
    return {
        "date": evaluation.date.isoformat(), "tool": evaluation.tool.value,
        "gir": ({"key": "eval.gir_grid", "params": {"gir": evaluation.gir, "grid": evaluation.grid}} if evaluation.grid
                else {"key": "eval.gir", "params": {"gir": evaluation.gir}} if evaluation.gir is not None else ""),
        "reason_code": evaluation.reason.value, "evaluator": evaluation.evaluator,
    }


def _due_line(due: date, today: date) -> dict[str, Any]:
    days = (due - today).days
    key = "eval.due_future" if days > 0 else "eval.due_today" if days == 0 else "eval.due_past"
    return {"key": key, "params": {"due": due.isoformat(), "days": abs(days)}}


async def eval_show(ctx: Ctx, inv: Invocation) -> list[Effect]:
    status = await plans.evaluation_status(ctx.uow, _person(ctx))
    due = _due_line(status.due, ctx.today)
    if status.last is None:
        return [ctx.reply("eval.none", case=ctx.case_ref, due_line=due)]
    return [ctx.reply("eval.show", case=ctx.case_ref, due_line=due, **_evaluation_params(status.last))]


async def eval_done(ctx: Ctx, inv: Invocation) -> list[Effect]:
    grid = " ".join(inv.opts["grid"]) if inv.opts["grid"] else None
    try:
        evaluation, status, effects = await rights.record_evaluation(
            ctx.uow, _person(ctx), inv.args["date"], tool=inv.opts["tool"], reason=inv.opts["reason"],
            gir=inv.opts["gir"], grid=grid, by=ctx.sender, now=ctx.now, interval_days=ctx.settings.reevaluation_days,
            tz=ctx.tz,
        )
    except GridError as exc:  # with the usage line: the grid is an argument typed wrong
        raise UsageError(exc.key, inv.spec, **exc.params) from None
    reply = ctx.reply("eval.recorded", case=ctx.case_ref, due_line=_due_line(status.due, ctx.today),
                      **_evaluation_params(evaluation))
    return [reply, *effects]


_NUMBER = Arg("n", "int")

# The plan and evaluation commands, in the order `!help` lists them.
COMMANDS: tuple[Command, ...] = (
    Command(CommandSpec("plan", "plan", Scope.ROOM, Who.MEMBER, "help.plan",
                        args=(Arg("n", "int", optional=True),)), show),
    Command(CommandSpec(
        "plan add", "plan ajouter", Scope.ROOM, Who.CASE_MANAGER, "help.plan_add",
        args=(Arg("need"), Arg("action")),
        opts=(Opt("provider", alias="intervenant"), Opt("frequency", alias="frequence"),
              Opt("start", "date", alias="debut"), Opt("review", "date", alias="revision")),
    ), add),
    Command(CommandSpec(
        "plan set", "plan modifier", Scope.ROOM, Who.CASE_MANAGER, "help.plan_set",
        args=(_NUMBER,),
        opts=(Opt("status", "choice", choices=tuple(s.value for s in ItemStatus), aliases=STATUS_ALIASES,
                  alias="statut"),
              Opt("provider", alias="intervenant", none_words=NONE_WORDS),
              Opt("frequency", alias="frequence", none_words=NONE_WORDS),
              Opt("review", alias="revision", none_words=NONE_WORDS)),
    ), set_),
    Command(CommandSpec("plan close", "plan clore", Scope.ROOM, Who.CASE_MANAGER, "help.plan_close",
                        args=(_NUMBER,)), close),
    Command(CommandSpec("plan asof", "plan au", Scope.ROOM, Who.MEMBER, "help.plan_asof",
                        args=(Arg("date", "date"),)), as_of),
    Command(CommandSpec("eval", "eval", Scope.ROOM, Who.MEMBER, "help.eval"), eval_show),
    Command(CommandSpec(
        "eval done", "eval faite", Scope.ROOM, Who.CASE_MANAGER, "help.eval_done",
        args=(Arg("date", "date", optional=True),),
        opts=(Opt("tool", alias="outil"),
              Opt("reason", "choice", choices=tuple(r.value for r in Reason), aliases=REASON_ALIASES,
                  alias="motif"),
              # `many`: "--grille ABC ABC AAAB" typed without quotes is one grid.
              Opt("gir", "int"), Opt("grid", alias="grille", many=True)),
    ), eval_done),
)
