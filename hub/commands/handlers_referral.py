"""Referral commands (SPEC §9): `!refer` in a referrer's direct room (or a desk); `!referrals`,
`!referral criteria|accept|refuse` in the triage room."""

from __future__ import annotations

from hub.commands.context import Command, Ctx
from hub.commands.handlers_desk import identifiers_from
from hub.commands.parser import Arg, CommandSpec, Invocation, Opt, Scope, UsageError, Who
from hub.domain.effects import Effect, Notify
from hub.domain.errors import DomainError
from hub.domain.referral import Draft, Source
from hub.services import cases, referrals


async def refer(ctx: Ctx, inv: Invocation) -> list[Effect]:
    if not ctx.settings.coordinators:
        raise DomainError("error.referral_closed")
    born = None
    if inv.opts["born"] is not None:
        # Read as a date here, not by the option's kind: the audit keeps dates, and the birth
        # date of a person who may never be followed must go with the referral (SPEC §9).
        try:
            born = Arg("born", "date").convert(inv.opts["born"], ctx.today)
        except UsageError as exc:
            raise UsageError(exc.key, inv.spec, **exc.params) from None
    draft = Draft(source=Source.MATRIX, referrer=ctx.sender, name=inv.args["name"], born=born,
                  reason=inv.opts["reason"] or "", identifiers=tuple(identifiers_from(inv)), gp=inv.opts["gp"],
                  referrer_room=ctx.room_id)
    got = await referrals.receive(ctx.uow, draft, source_key=referrals.source_key("matrix", ctx.event_id), now=ctx.now,
                                  today=ctx.today,
                                  allowed_servers=ctx.settings.allowed_servers, bot_user=ctx.settings.bot_user)
    return [ctx.reply("reply.refer", ref=got.referral.ref)]


async def pending(ctx: Ctx, inv: Invocation) -> list[Effect]:
    lines = await referrals.pending_lines(ctx.uow, ctx.now)
    if not lines:
        return [ctx.reply("reply.referrals_none")]
    return [ctx.reply("reply.referrals", lines=lines)]


async def criteria(ctx: Ctx, inv: Invocation) -> list[Effect]:
    pairs = [inv.args[a.name] for a in _CRITERIA if inv.args.get(a.name)]
    r = await referrals.record_criteria(ctx.uow, inv.args["ref"], pairs)
    c = r.criteria
    return [ctx.reply("reply.referral_criteria", ref=r.ref,
                      autonomy={"key": f"referral.value.{c.autonomy}"}, care={"key": f"referral.value.{c.care}"},
                      coordination={"key": f"referral.value.{c.coordination}"},
                      verdict={"key": "referral.all_met" if c.all_met else "referral.not_all_met"})]


async def accept(ctx: Ctx, inv: Invocation) -> list[Effect]:
    done = await referrals.accept(
        ctx.uow, inv.args["ref"], by=ctx.sender, requested=inv.opts["to"], case_managers=ctx.settings.case_managers,
        limits=ctx.settings.limits, allowed_servers=ctx.settings.allowed_servers, bot_user=ctx.settings.bot_user,
        now=ctx.now, tz=ctx.tz)
    limits = ctx.settings.limits
    load = await cases.load_caseload(ctx.uow, done.referent, ctx.now, ctx.tz)
    figures = {"target": limits.target, "active": load.active, "intake": limits.intake_per_month,
               "count": load.intake_this_month}
    reply = Notify("command.reply", done.case_ref, "reply.referral_accepted",
                   {"ref": done.referral.ref, "case": done.case_ref, "cm": done.referent,
                    "warnings": [{"key": w, "params": figures} for w in done.warnings]}, room_id=ctx.room_id)
    return [*done.effects, reply]


async def refuse(ctx: Ctx, inv: Invocation) -> list[Effect]:
    r = await referrals.refuse(ctx.uow, inv.args["ref"], why=inv.args["reason"], refer_to=inv.opts["to"],
                               by=ctx.sender, now=ctx.now)
    return [ctx.reply("reply.referral_refused", ref=r.ref)]


_REF = Arg("ref")
# Named by what they hold; any order: `autonomie=oui aides=oui coordination=non`.
_CRITERIA = (Arg("autonomy=yes|no"), Arg("care=yes|no", optional=True), Arg("coordination=yes|no", optional=True))
COMMANDS: tuple[Command, ...] = (
    Command(CommandSpec(
        "refer", "orienter", Scope.DESK, Who.ANYONE, "help.refer",
        args=(Arg("name"),),
        opts=(Opt("born", alias="naissance"), Opt("ins"), Opt("id", repeat=True),
              Opt("gp", "user", alias="medecin"), Opt("reason", alias="motif")),
    ), refer),
    Command(CommandSpec("referrals", "orientations", Scope.TRIAGE, Who.MEMBER, "help.referrals"), pending),
    Command(CommandSpec(
        "referral criteria", "orientation criteres", Scope.TRIAGE, Who.TRIAGE, "help.referral_criteria",
        args=(_REF, *_CRITERIA),
    ), criteria),
    Command(CommandSpec(
        "referral accept", "orientation accepter", Scope.TRIAGE, Who.TRIAGE, "help.referral_accept",
        args=(_REF,), opts=(Opt("to", "user", alias="gestionnaire"),),
    ), accept),
    Command(CommandSpec(
        "referral refuse", "orientation refuser", Scope.TRIAGE, Who.TRIAGE, "help.referral_refuse",
        args=(_REF, Arg("reason")), opts=(Opt("to", alias="vers"),),
    ), refuse),
)
