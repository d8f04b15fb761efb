"""Dispatcher: parse → where and who → handler → reply, one unit of work per command.

The event id is claimed in the same transaction as the command's effects, so a command seen
again after a restart is never answered twice. A crash in a handler is logged with a
reference the user is given, and never stops the other commands.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from hub.clock import Clock
from hub.commands.context import Ctx, Settings, UserDirectory
from hub.commands.normalise import Message, read_message
from hub.commands.parser import CommandSpec, Invocation, Scope, UsageError, Who, is_command, is_courtesy, parse
from hub.commands.registry import REFERRER_COMMANDS, Registry
from hub.commands.usage import explain, find_command, help_detail, help_groups
from hub.domain import team
from hub.domain.effects import Effect, Notify
from hub.domain.errors import DomainError
from hub.i18n.catalog import Catalog
from hub.services.outbox import enqueue
from hub.storage.database import Database, UnitOfWork

log = logging.getLogger(__name__)

#: An undecryptable message is reported to its sender at most this often per room.
UNDECRYPTABLE_REPEAT = timedelta(hours=1)
#: How much of a corrected command is quoted back when an edit is not run.
EDIT_EXCERPT = 300


def accepted_marker(event_id: str) -> str:
    """Claimed with the effects of an accepted command: its edits must not run it again. Event ids
    may take the claim column's 255 characters: a longer marker is a digest."""
    marker = f"accepted:{event_id}"
    return marker if len(marker) <= 255 else "accepted:#" + hashlib.sha256(event_id.encode()).hexdigest()


def origin_marker(room_id: str, sender: str, event_id: str) -> str:
    """Claimed with every command event (accepted or refused): an edit (`m.replace`) is one of
    this command only when it comes from the same sender in the same room. Matrix does not check
    an edit's sender: anyone can send an `m.replace` pointing at anyone's event (Matrix spec,
    "Event replacements": clients must ignore one whose sender differs), and event ids are global."""
    digest = hashlib.sha256(f"{room_id}\n{sender}\n{event_id}".encode()).hexdigest()
    return f"origin:{digest}"


def thread_key(room_id: str, sender: str, event_id: str) -> str:
    """kv key (64 characters at most) of the thread a command was typed in: an edit carries only
    its `m.replace` relation, and its answer must go to the original's thread."""
    digest = hashlib.sha256(f"{room_id}\n{sender}\n{event_id}".encode()).hexdigest()
    return f"thread:{digest[:56]}"


async def _remember(uow: UnitOfWork, room_id: str, sender: str, event_id: str, message: Message,
                    now: datetime, *, accepted: bool = False) -> None:
    """A command seen (accepted or refused): its author may edit it, here, in its thread;
    `accepted`: it ran, so an edit of it never runs (both markers in one statement)."""
    markers = [origin_marker(room_id, sender, event_id)] + ([accepted_marker(event_id)] if accepted else [])
    await uow.events.claim_all(markers, now)
    if message.thread_root:
        await uow.kv.set(thread_key(room_id, sender, event_id), message.thread_root)


def audit_detail(inv: Invocation) -> dict[str, Any]:
    """{"fields": [names of the arguments given]}: the audit keeps who, when, which command, which
    file and which fields (SPEC §4), never a value (a birth date, a name, a reason, a NIR)."""
    given = [arg.name for arg in (*inv.spec.args, *inv.spec.opts)
             if inv.args.get(arg.name, inv.opts.get(arg.name)) not in (None, [], False, "")]
    return {"fields": given} if given else {}


class Dispatcher:
    def __init__(self, db: Database, registry: Registry, settings: Settings, clock: Clock,
                 directory: UserDirectory, on_enqueued: Any = None) -> None:
        self.db = db
        self.registry = registry
        self.settings = settings
        self.clock = clock
        self.directory = directory
        self.on_enqueued = on_enqueued or (lambda: None)
        self.catalog = Catalog(settings.language)
        self._told_undecryptable: dict[tuple[str, str], datetime] = {}

    def _command(self, sender: str, content: Mapping[str, Any] | str) -> Message | None:
        """The message, when it is a command from someone other than the bot (its event content,
        or a plain body); None otherwise."""
        if sender == self.settings.bot_user:
            return None
        message = read_message({"msgtype": "m.text", "body": content} if isinstance(content, str) else content,
                               bot=self.settings.bot_user)
        return message if is_command(message.text, self.registry.specs) else None

    async def handle(self, event_id: str, sender: str, room_id: str,
                     content: Mapping[str, Any] | str) -> bool:
        """Handle one message (its event content, or a plain body); True when it was a command for
        us that got an answer now. Edits (`m.replace`) run only when the command they correct
        was not accepted; a command typed in a thread is answered in that thread."""
        message = self._command(sender, content)
        if message is None:
            return False
        now = self.clock.now()
        error: DomainError | None = None
        spec: CommandSpec | None = None
        case_ref = ""
        try:
            async with self.db.unit() as uow:
                if not await uow.events.claim(event_id, now):
                    return False
                ctx = await self._context(uow, sender, room_id, event_id)
                if ctx is None:
                    return False  # not a room of ours: the claim alone is kept
                case_ref = ctx.case_ref
                command_id = message.replaces or event_id
                effects: list[Effect] = []
                if message.replaces and not await uow.events.seen(origin_marker(room_id, sender, command_id)):
                    # Someone else's command, one from another room, or no command at all: an
                    # edit of it never runs and never marks it (its author may still correct it).
                    effects = [ctx.reply("command.edit_not_theirs", command=_excerpt(message.text))]
                elif message.replaces:  # answered where the command it corrects was typed
                    root = await uow.kv.get(thread_key(room_id, sender, command_id))
                    message = replace(message, thread_root=root)
                if message.replaces and not effects and await uow.events.seen(accepted_marker(command_id)):
                    effects = [ctx.reply("command.edit_not_run", command=_excerpt(message.text))]
                elif not effects:
                    effects = await self._run(ctx, message.text)
                    if message.replaces:
                        await uow.events.claim_all([accepted_marker(command_id)], now)
                    else:
                        await _remember(uow, room_id, sender, event_id, message, now, accepted=True)
                await enqueue(uow, f"cmd:{event_id}", self._placed(effects, ctx, message, event_id), now,
                              lanes={room_id: ctx.lane})
            self.on_enqueued()
            return True
        except UsageError as exc:
            error, spec = exc, exc.spec
        except DomainError as exc:
            error = exc
        except Exception:
            ref = secrets.token_hex(4)
            log.exception("command failed in room %s (reference %s)", room_id, ref)
            error = DomainError("error.internal", ref=ref)
        return await self._reply_error(event_id, sender, room_id, case_ref, error, spec, message)

    async def undecryptable(self, event_id: str, sender: str, room_id: str, thread_root: str | None = None) -> bool:
        """Tell `sender` (no content: none could be read) that their message could not be read and
        what to do; at most once per UNDECRYPTABLE_REPEAT and room, only in rooms of ours."""
        if sender == self.settings.bot_user:
            return False
        now = self.clock.now()
        last = self._told_undecryptable.get((room_id, sender))
        async with self.db.unit() as uow:
            if not await uow.events.claim(event_id, now):
                return False
            try:
                ctx = await self._context(uow, sender, room_id)
            except DomainError:  # a desk whose owner is no longer configured: nothing to say
                return False
            if ctx is None or (last is not None and now - last < UNDECRYPTABLE_REPEAT):
                return False
            notice = Notify("command.error", ctx.case_ref, "error.undecryptable", {"sender": sender},
                            mentions=(sender,), room_id=room_id)
            if thread_root:
                notice = replace(notice, thread_root=thread_root, in_reply_to=event_id)
            await enqueue(uow, f"cmd:{event_id}", [notice], now)
        self._told_undecryptable[(room_id, sender)] = now
        self.on_enqueued()
        return True

    async def not_processed(self, event_id: str, sender: str, room_id: str,
                            content: Mapping[str, Any] | str) -> bool:
        """A command whose handling kept failing and that intake set aside (SPEC §7: never dropped
        silently): tell its sender, in the room (in its thread, if any), that it was not done and
        can be sent again. Nothing of the command is repeated. True when told."""
        message = self._command(sender, content)
        if message is None:
            return False
        now = self.clock.now()
        async with self.db.unit() as uow:
            if not await uow.events.claim(event_id, now):
                return False  # it ran after all
            try:
                ctx = await self._context(uow, sender, room_id)
            except DomainError:
                return False
            if ctx is None:
                return False
            notice = Notify("command.error", ctx.case_ref, "error.not_processed", {"sender": sender},
                            mentions=(sender,), room_id=room_id)
            if message.thread_root:
                notice = replace(notice, thread_root=message.thread_root, in_reply_to=event_id)
            await enqueue(uow, f"cmd:{event_id}", [notice], now)
        self.on_enqueued()
        return True

    def _placed(self, effects: list[Effect], ctx: Ctx, message: Message, event_id: str) -> list[Effect]:
        """The answers to a command typed in a thread go to that thread."""
        if not message.thread_root:
            return effects
        here = ctx.person.room_id == ctx.room_id if ctx.person else False
        return [
            replace(e, thread_root=message.thread_root, in_reply_to=event_id)
            if isinstance(e, Notify) and not e.desk and (
                e.room_id == ctx.room_id or (e.room_id is None and here and e.case_ref == ctx.case_ref))
            else e
            for e in effects
        ]

    async def _reply_error(self, event_id: str, sender: str, room_id: str, case_ref: str, error: DomainError,
                           spec: CommandSpec | None, message: Message) -> bool:
        now = self.clock.now()
        params = explain(dict(error.params), spec, self.catalog)
        notice = Notify("command.error", case_ref, error.key, params, room_id=room_id)
        if message.thread_root:
            notice = replace(notice, thread_root=message.thread_root, in_reply_to=event_id)
        async with self.db.unit() as uow:
            if not await uow.events.claim(event_id, now):
                return False
            if not message.replaces:  # a refused command: its author's edit may correct it
                await _remember(uow, room_id, sender, event_id, message, now)
            await enqueue(uow, f"cmd:{event_id}", [notice], now)
        self.on_enqueued()
        return True

    async def _context(self, uow: UnitOfWork, sender: str, room_id: str, event_id: str = "") -> Ctx | None:
        ctx = Ctx(uow=uow, sender=sender, room_id=room_id, now=self.clock.now(),
                  settings=self.settings, directory=self.directory, event_id=event_id, tz=self.clock.tz)
        owners = await uow.rooms.owners(room_id)
        ctx.lane = owners.lane
        desk = owners.desk
        if desk is not None and desk[1] == "triage":
            ctx.desk_role = "triage"  # the triage room: who may act is checked per command
            return ctx
        if desk is not None:
            if desk[0] != sender:
                return None  # only the owner talks to the bot in a desk
            # The configuration, not the row written when the desk opened, says what they may do.
            ctx.desk_role = self.settings.desk_role(sender)
            if ctx.desk_role is None:
                raise DomainError("error.not_configured")
            return ctx
        if owners.referrer == sender:
            ctx.desk_role = "referrer"  # a direct room opened to refer a person (SPEC §9)
            return ctx
        person = await uow.persons.get(owners.case_ref) if owners.case_ref is not None else None
        if person is None:
            return None
        ctx.person = person
        return ctx

    async def _run(self, ctx: Ctx, body: str) -> list[Effect]:
        scope = Scope.TRIAGE if ctx.desk_role == "triage" else Scope.DESK if ctx.desk_role else Scope.ROOM
        inv = parse(body, self.registry.specs, today=ctx.today)
        spec = inv.spec
        if spec.scope is not None and spec.scope is not scope:
            wrong = {Scope.DESK: "error.desk_only", Scope.ROOM: "error.room_only", Scope.TRIAGE: "error.triage_only"}
            raise UsageError(wrong[spec.scope], spec)
        if scope is Scope.TRIAGE and spec.scope is None and spec.name != "help":
            # A desk-or-room command (`!rights`) would show the sender's files to the whole triage team.
            raise UsageError("error.not_in_triage", spec)
        await self._authorise(ctx, spec)
        handler = self.registry.handler(spec)
        effects: list[Effect] = [await self._help(ctx, scope, inv)] if handler is None else await handler(ctx, inv)
        # SPEC §4: every accepted command is audited, reading ones included (who read a file).
        await ctx.uow.audit.record(ctx.now, ctx.sender, spec.name, ctx.case_ref or None, audit_detail(inv))
        return effects

    async def _managers(self, ctx: Ctx) -> set[str]:
        """The person's case managers: the referent and every active case manager of the team."""
        person = ctx.person
        assert person is not None
        return set(team.case_managers(await ctx.uow.team.members(person.case_ref), person.referent))

    async def _authorise(self, ctx: Ctx, spec: CommandSpec) -> None:
        if ctx.desk_role == "referrer" and spec.name not in REFERRER_COMMANDS:
            raise DomainError("error.referrer_only")
        if ctx.desk_role == "triage":
            if ctx.sender not in self.settings.triage_team:
                raise DomainError("error.not_allowed")
            return
        if spec.who in (Who.MEMBER, Who.ANYONE):
            return
        if spec.who is Who.PILOT:
            if ctx.desk_role != "pilot":
                raise DomainError("error.pilot_only")
            return
        if ctx.desk_role is not None:
            if ctx.desk_role != "case_manager":
                raise DomainError("error.not_allowed")
            return
        person = ctx.person
        assert person is not None
        if not person.is_open:
            raise DomainError("error.case_closed", case=person.case_ref)
        managers = await self._managers(ctx)
        # Rights follow [care] case_managers at every command: someone taken off the list keeps
        # their team row (history) but no longer changes the file.
        if ctx.sender not in managers or ctx.sender not in self.settings.case_managers:
            raise DomainError("error.not_allowed")

    async def _help(self, ctx: Ctx, scope: Scope, inv: Invocation) -> Notify:
        """`!help`: the commands this person may use here; `!help <command>`: one in detail."""
        manager = ctx.desk_role == "case_manager" or (
            ctx.person is not None and ctx.person.is_open and ctx.sender in self.settings.case_managers
            and ctx.sender in await self._managers(ctx))
        mine = self.registry.available(scope, ctx.desk_role, manager=manager)
        asked = " ".join(w for w in (inv.args.get("command"), inv.args.get("sub")) if w)
        if asked and all(is_courtesy(word) for word in asked.split()):
            asked = ""  # `!aide svp`, `!aide merci 🙏`: the list
        if asked:
            spec = find_command(asked, self.registry.specs)
            if spec is None:
                raise UsageError("error.unknown_command", inv.spec, command=asked)
            return ctx.reply("help.detail", **help_detail(spec, self.catalog, allowed=spec in mine))
        return ctx.reply("help.header", groups=help_groups(mine, self.catalog))


def _excerpt(text: str) -> str:
    return text if len(text) <= EDIT_EXCERPT else text[:EDIT_EXCERPT - 1] + "…"
