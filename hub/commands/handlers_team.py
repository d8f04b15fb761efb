"""Person-room commands about the care team and identifiers: !team, !team add, !id.

`!team remove` is a handover: see handlers_handover.
"""

from __future__ import annotations

from hub.clock import local_date
from hub.commands import handlers_handover
from hub.commands.context import Command, Ctx
from hub.commands.handlers_desk import identifier, identifiers_from
from hub.commands.parser import Arg, CommandSpec, Invocation, Opt, Scope, Who
from hub.domain import persons, team
from hub.domain.effects import Effect
from hub.domain.errors import DomainError
from hub.domain.team import Role
from hub.services import cases, consent

# French words a case manager types for each role (accents and case are ignored).
ROLE_WORDS = {
    "medecin": "gp", "mg": "gp", "medecin_traitant": "gp",
    "infirmier": "nurse", "infirmiere": "nurse", "ide": "nurse", "idel": "nurse",
    "ssiad": "home_nursing", "saad": "home_help", "sad": "home_help", "aide_a_domicile": "home_help",
    "assistant_social": "social_worker", "assistante_sociale": "social_worker", "as": "social_worker",
    "kine": "physio", "kinesitherapeute": "physio", "pharmacien": "pharmacist", "pharmacienne": "pharmacist",
    "tuteur": "guardian", "curateur": "guardian", "mandataire": "guardian",
    "aidant": "carer", "aidante": "carer", "gestionnaire": "case_manager", "autre": "other",
    # as the notices write them (typed back in several words: hub/commands/parser.py)
    "mandataire judiciaire": "guardian", "mjpm": "guardian", "gestionnaire de cas": "case_manager",
    "physiotherapist": "physio", "hospital at home": "had", "legal guardian": "guardian",
}
ROLE_ARG = Arg("role", "choice", choices=tuple(r.value for r in Role), aliases=ROLE_WORDS)


def _person(ctx: Ctx) -> persons.Person:
    assert ctx.person is not None, "room commands run with a person"
    return ctx.person


async def show(ctx: Ctx, inv: Invocation) -> list[Effect]:
    members = team.active(await ctx.uow.team.members(ctx.case_ref))
    if not members:
        return [ctx.reply("reply.team_empty", case=ctx.case_ref)]
    lines = [
        {"key": "reply.team_line", "params": {"user": m.user_id, "role": m.role.value, "org": m.organisation,
                                              "since": local_date(m.since, ctx.tz).isoformat()}}
        for m in members
    ]
    return [ctx.reply("reply.team", case=ctx.case_ref, members=lines)]


async def add(ctx: Ctx, inv: Invocation) -> list[Effect]:
    user = inv.args["user"]
    members = await ctx.uow.team.members(ctx.case_ref)
    member, effects = team.add_member(
        members, ctx.case_ref, user, Role(inv.args["role"]), inv.opts["org"], by=ctx.sender, now=ctx.now,
        allowed_servers=ctx.settings.allowed_servers, bot_user=ctx.settings.bot_user,
    )
    team.check_eligible(user, member.role, case_managers=ctx.settings.case_managers, pilots=ctx.settings.pilots)
    # Outside the care team (carer, other), only with the person's extended consent (L1110-4).
    await consent.check_can_join(ctx.uow, ctx.case_ref, user, member.role)
    # Checked after the pure rules so a refused server is never even looked up.
    if not await ctx.directory.user_exists(user):
        raise DomainError("error.unknown_user", user=user)
    await ctx.uow.team.add(ctx.case_ref, member)
    return effects


async def ids(ctx: Ctx, inv: Invocation) -> list[Effect]:
    labels = [i.label() for i in _person(ctx).identifiers]
    return [ctx.reply("reply.id_list", case=ctx.case_ref, ids=labels or ["—"])]


async def id_add(ctx: Ctx, inv: Invocation) -> list[Effect]:
    positional = inv.args.get("identifier")
    new = identifiers_from(inv)
    if positional:
        new.append(identifier(inv, positional))
    if not new:
        raise DomainError("error.missing_argument", arg="authority:id")
    persons.check_new_identifiers(_person(ctx).identifiers, tuple(new))
    await cases.check_identifiers_free(ctx.uow, new)
    previous = await cases.take_from_closed(ctx.uow, new, to=ctx.case_ref, by=ctx.sender, now=ctx.now)
    await ctx.uow.persons.add_identifiers(ctx.case_ref, new)
    added = ", ".join(i.label() for i in new)
    if previous:  # said, so that a mistyped identifier that was another person's is caught
        return [ctx.reply("reply.id_moved", case=ctx.case_ref, id=added, previous=", ".join(previous))]
    return [ctx.reply("reply.id_added", case=ctx.case_ref, id=added)]


# The team and identifier commands, in the order `!help` lists them.
COMMANDS: tuple[Command, ...] = (
    Command(CommandSpec("team", "equipe", Scope.ROOM, Who.MEMBER, "help.team"), show),
    Command(CommandSpec(
        "team add", "equipe ajouter", Scope.ROOM, Who.CASE_MANAGER, "help.team_add",
        args=(Arg("user", "user"), ROLE_ARG), opts=(Opt("org", alias="organisation"),),
    ), add),
    Command(CommandSpec(
        "team remove", "equipe retirer", Scope.ROOM, Who.CASE_MANAGER, "help.team_remove",
        args=(Arg("user", "user"),),
        opts=(Opt("successor", "user", alias="successeur"), Opt("reason", alias="raison"),
              Opt("org", alias="organisation")),
    ), handlers_handover.remove),
    Command(CommandSpec("id", "id", Scope.ROOM, Who.MEMBER, "help.id"), ids),
    Command(CommandSpec(
        "id add", "id ajouter", Scope.ROOM, Who.CASE_MANAGER, "help.id_add",
        args=(Arg("identifier", optional=True),), opts=(Opt("ins"),),
    ), id_add),
)
