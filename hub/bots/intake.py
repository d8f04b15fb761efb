"""Event intake: what sync brings in → desk invites, commands, membership changes.

The sync token is stored only after the events it covers were handled, and held back while a
command could not yet be decrypted (its key may arrive a moment later), so a restart replays
rather than loses; replays are harmless because every command event is claimed once.

Each event is handled on its own (mautrix's syncer does the same): one that fails does not stop
the others of its batch. The batch is then replayed after a pause, and an event that failed
MAX_TRIES times (the database being reachable) is recorded as a dead letter — its id, room and
error class, no content — so the token moves on and no single event stalls the sync. A
timeline the homeserver cut short (`limited`, after an outage in a busy room) is back-filled
from `prev_batch` to where the last sync ended, so commands typed meanwhile are answered.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from nio import (
    InviteMemberEvent,
    MegolmEvent,
    MessageDirection,
    RoomEncryptedMedia,
    RoomMemberEvent,
    RoomMessageMedia,
    RoomMessagesResponse,
    RoomMessageText,
    SyncResponse,
)

from hub.bots.client import BotClient, http_status_of, is_transient, transient_answer
from hub.domain.team import server_of
from hub.errors import TransientError
from hub.metrics import Metrics
from hub.services.desks import adopt_desk
from hub.services.referrals import adopt_referrer_room
from hub.storage.database import Database

log = logging.getLogger(__name__)

SYNC_TOKEN_KEY = "sync_token"
UNDECRYPTABLE_PATIENCE_S = 120.0
#: Tries of one event before it is set aside; a transient cause (homeserver busy) gets more.
MAX_TRIES = 3
MAX_TRIES_TRANSIENT = 8
#: Back-fill of a limited timeline: pages of BACKFILL_PAGE events, at most BACKFILL_PAGES of them.
BACKFILL_PAGE = 100
BACKFILL_PAGES = 20
#: The sync token of a handled sync is written this long after it (one write for all the syncs
#: of that time), off the path of the replies it enqueued: on SQLite a unit of work holds the
#: only write lock, and a token write right after a command held the reply's outbox read back.
#: A crash in between replays those syncs, which is harmless (every event is claimed once).
TOKEN_DELAY_S = 1.0


class EventsFailed(Exception):
    """Some events of a sync failed and will be tried again: the batch is replayed."""

MembershipHandler = Callable[[str, str, str, str], Awaitable[None]]
#: Called with (room_id, event_id, change) when someone else removed the bot (kicked | banned).
RemovalHandler = Callable[[str, str, str], Awaitable[object]]


class Commands(Protocol):
    """What intake hands each text message to (the command dispatcher, built in app.py)."""

    async def handle(self, event_id: str, sender: str, room_id: str, content: Mapping[str, Any] | str) -> bool:
        """True when the message (its whole event content) was a command for us that got an answer now."""
        ...

    async def undecryptable(self, event_id: str, sender: str, room_id: str, thread_root: str | None = None) -> bool:
        """Tell the sender, without content, that a message of theirs could not be read."""
        ...

    async def not_processed(self, event_id: str, sender: str, room_id: str,
                            content: Mapping[str, Any] | str) -> bool:
        """Tell the sender of a command that was set aside (it kept failing) that it was not done."""
        ...


def membership_change(sender: str, user: str, membership: str, prev: str | None) -> str:
    """What happened to `user`: left | declined (on their own), kicked | banned (by someone else,
    the bot's own removals included), or the new membership (join, invite)."""
    if membership == "leave" and sender == user:
        return "declined" if prev == "invite" else "left"
    if membership == "leave":
        return "kicked"
    if membership == "ban":
        return "banned"
    return membership


#: Messages a person may type a command in: text, and a file's caption (Matrix spec v1.10, "Media
#: captions": hub/commands/normalise.py tells a caption from a file's name).
TYPED = (RoomMessageText, RoomMessageMedia, RoomEncryptedMedia)


def message_content(event: RoomMessageText | RoomMessageMedia | RoomEncryptedMedia) -> dict[str, Any]:
    """The event's whole content (formatted_body, m.mentions, m.relates_to, m.new_content,
    filename): nio's event classes keep only some fields; its `source` keeps them all."""
    content = (event.source or {}).get("content")
    if isinstance(content, dict) and isinstance(content.get("body"), str):
        return content
    if not isinstance(event, RoomMessageText):
        return {"msgtype": "m.file", "body": event.body}  # no filename: a file's name, never a command
    return {"msgtype": "m.text", "body": event.body, "format": event.format,
            "formatted_body": event.formatted_body}


def thread_of(event: MegolmEvent) -> str | None:
    """The thread an encrypted event belongs to: its relation travels in clear (Matrix spec)."""
    content = (event.source or {}).get("content")
    relation = content.get("m.relates_to") if isinstance(content, dict) else None
    if not isinstance(relation, dict):  # sent by any client, in clear: a string or a list says nothing
        return None
    root = relation.get("event_id") if relation.get("rel_type") == "m.thread" else None
    return root if isinstance(root, str) else None


class Intake:
    def __init__(self, db: Database, client: BotClient, dispatcher: Commands,
                 desk_people: dict[str, str], metrics: Metrics | None = None,
                 referrer_servers: tuple[str, ...] = (), on_enqueued: Callable[[], None] = lambda: None) -> None:
        self.db = db
        self.on_enqueued = on_enqueued  # wakes the outbox
        # Servers whose users may open a direct room to refer a person; () keeps them out.
        self.referrer_servers = referrer_servers
        self.client = client
        self.dispatcher = dispatcher
        self.desk_people = desk_people
        self.metrics = metrics
        self._undecrypted: dict[str, tuple[str, MegolmEvent, float]] = {}
        self.commands_handled = 0
        self.dead_letters = 0
        # Called with (room_id, event_id, user_id, change): see membership_change().
        self.membership_handlers: list[MembershipHandler] = []
        self.removal_handlers: list[RemovalHandler] = []
        self._failures: dict[str, int] = {}  # event id → failed tries so far
        self._since: str | None = None  # where the last handled sync ended
        self._unstored: str | None = None  # a handled sync's token not written yet
        self._storing: asyncio.Task[None] | None = None
        self._stored_once = False
        #: time.monotonic() of the last sync handled to its end (readiness: is intake moving?)
        self.advanced_at = time.monotonic()

    async def stored_token(self) -> str | None:
        """The token written last (where a start goes on from); it may lag the syncs handled
        by up to TOKEN_DELAY_S."""
        async with self.db.read() as uow:
            token = await uow.kv.get(SYNC_TOKEN_KEY)
        if self._since is None:
            self._since = token
        return token

    async def on_sync(self, resp: SyncResponse) -> None:
        failed = 0
        for room_id, info in resp.rooms.invite.items():
            key = f"invite:{room_id}"
            async with self.db.read() as uow:
                # A pending invite comes again with every full-state sync (each start).
                if await uow.intake_dead.has(key):
                    continue
            failed += not await self._one(room_id, key, self._on_invite(room_id, info.invite_state))
        for room_id, info in resp.rooms.join.items():
            events = list(info.timeline.events)
            if info.timeline.limited and info.timeline.prev_batch and self._since:
                events = await self._backfill(room_id, info.timeline.prev_batch, self._since) + events
            for event in events:
                if isinstance(event, MegolmEvent):
                    event = self._decrypted(room_id, event)
                event_id = getattr(event, "event_id", None) or f"{room_id}:{type(event).__name__}"
                failed += not await self._one(room_id, event_id, self._on_event(room_id, event), event)
        for room_id, left in resp.rooms.leave.items():
            # Rooms the bot is no longer in: only its own removal matters there (nothing typed
            # there can be answered). Its leaving on its own comes back here too, and is ignored.
            for event in [*left.state, *left.timeline.events]:
                if isinstance(event, RoomMemberEvent) and event.state_key == self.client.user_id:
                    failed += not await self._one(room_id, event.event_id, self._on_own_membership(room_id, event))
        if failed:
            raise EventsFailed(f"{failed} event(s) failed; the batch will be replayed")
        await self._retry_undecrypted()
        if not self._undecrypted:
            self._unstored = resp.next_batch
            if not self._stored_once:  # the first sync (a catch-up): written at once, before "ready"
                await self.store_token()
            elif self._storing is None:
                self._storing = asyncio.ensure_future(self._store_later())
        self._since = resp.next_batch
        self.advanced_at = time.monotonic()

    async def _store_later(self) -> None:
        try:
            while self._unstored is not None:
                await asyncio.sleep(TOKEN_DELAY_S)
                await self.store_token()
        except Exception as exc:  # the database is away: the next sync (or the stop) writes it
            log.warning("sync token not stored (%s); kept for the next try", type(exc).__name__)
        finally:
            if self._storing is asyncio.current_task():
                self._storing = None

    async def store_token(self) -> None:
        """Write the last handled sync's token now if it is not written yet (a graceful stop
        calls this, so the next start goes on from there). Database errors propagate."""
        if self._storing is not None and self._storing is not asyncio.current_task():
            self._storing.cancel()
            self._storing = None
        token = self._unstored
        if token is None:
            return
        async with self.db.unit() as uow:
            await uow.kv.set(SYNC_TOKEN_KEY, token)
        if self._unstored == token:
            self._unstored = None
        self._stored_once = True

    def _decrypted(self, room_id: str, event: MegolmEvent) -> object:
        """An encrypted event nio left encrypted, decrypted if its key is here. nio decrypts the
        timeline as it reads a sync, but it skips a sync answer it has already read — the one a
        failed batch is replayed from — so a replayed command would otherwise stay encrypted and
        be taken for an undecryptable one."""
        event.room_id = room_id  # nio's decryption looks the key up by room
        try:
            decrypted = self.client.api.decrypt_event(event)
        except Exception:  # no key yet: handled as undecrypted (a key request, then patience)
            return event
        return decrypted if decrypted is not None else event

    async def _one(self, room_id: str, event_id: str, handling: Awaitable[None], event: object = None) -> bool:
        """Handle one event; False when it failed and must be tried again (the batch replayed)."""
        try:
            await handling
        except Exception as exc:
            tries = self._failures.get(event_id, 0) + 1
            limit = MAX_TRIES_TRANSIENT if is_transient(exc) else MAX_TRIES
            if tries < limit or not await self.db.ping():
                self._failures[event_id] = tries
                log.warning("event in %s failed (%s), try %d of %d", room_id, type(exc).__name__, tries, limit,
                            exc_info=exc)
                return False
            await self._dead_letter(room_id, event_id, exc, tries)
            if isinstance(event, TYPED):
                try:  # a command set aside is told to its sender, never dropped silently
                    await self.dispatcher.not_processed(event.event_id, event.sender, room_id, message_content(event))
                except Exception as told:
                    log.error("could not tell the sender of a set-aside event in %s (%s)", room_id,
                              type(told).__name__)
        self._failures.pop(event_id, None)
        return True

    async def _dead_letter(self, room_id: str, event_id: str, exc: Exception, tries: int) -> None:
        async with self.db.unit() as uow:
            await uow.intake_dead.add(event_id, room_id, type(exc).__name__, tries, datetime.now(UTC))
        self.dead_letters += 1
        if self.metrics is not None:
            self.metrics.intake_dead.inc()
        log.error("event %s in %s set aside after %d failed tries (%s)", event_id, room_id, tries,
                  type(exc).__name__)

    async def _backfill(self, room_id: str, prev_batch: str, since: str) -> list[object]:
        """The events a limited timeline left out: from `prev_batch` back to `since`, oldest first."""
        chunks: list[object] = []
        start: str | None = prev_batch
        for _ in range(BACKFILL_PAGES):
            if start is None:
                break
            resp = await self.client.api.room_messages(room_id, start=start, end=since,
                                                       direction=MessageDirection.back, limit=BACKFILL_PAGE)
            if not isinstance(resp, RoomMessagesResponse):
                code, status = getattr(resp, "status_code", None), http_status_of(resp)
                if transient_answer(status, code):  # the batch is replayed, the gap filled then
                    raise TransientError("back-fill", code, getattr(resp, "retry_after_ms", None), status)
                log.warning("back-fill of %s refused (%s %s): events may be missed", room_id, status, code)
                break
            chunks.extend(resp.chunk)
            if not resp.chunk or resp.end in (None, start):
                break
            start = resp.end
        else:
            log.warning("back-fill of %s stopped after %d events", room_id, len(chunks))
        if chunks:
            log.info("back-filled %d events in %s after a limited sync", len(chunks), room_id)
        return list(reversed(chunks))

    async def _on_event(self, room_id: str, event: object) -> None:
        if isinstance(event, TYPED):
            if await self.dispatcher.handle(event.event_id, event.sender, room_id, message_content(event)):
                self.commands_handled += 1
                if self.metrics is not None:
                    self.metrics.commands.labels(outcome="answered").inc()
        elif isinstance(event, RoomMemberEvent) and event.state_key == self.client.user_id:
            await self._on_own_membership(room_id, event)
        elif isinstance(event, RoomMemberEvent):
            change = membership_change(event.sender, event.state_key, event.membership, event.prev_membership)
            for handler in self.membership_handlers:
                try:
                    await handler(room_id, event.event_id, event.state_key, change)
                except Exception:  # one failing feature never stops the sync loop
                    log.exception("membership handler failed in %s", room_id)
        elif isinstance(event, MegolmEvent) and event.sender != self.client.user_id:
            self._undecrypted[event.event_id] = (room_id, event, time.monotonic())
            try:
                await self.client.api.request_room_key(event)
            except Exception:
                log.debug("room key request failed for an event in %s", room_id)

    async def _on_own_membership(self, room_id: str, event: RoomMemberEvent) -> None:
        """The bot's own membership changed: someone else removing it (kicked, banned — an
        administrator deleting the room does so too) is handed to the removal handlers, whose
        failure is retried with the event (one desk lost must not be forgotten)."""
        change = membership_change(event.sender, event.state_key, event.membership, event.prev_membership)
        if change in ("kicked", "banned"):
            for handler in self.removal_handlers:
                await handler(room_id, event.event_id, change)

    async def _retry_undecrypted(self) -> None:
        for event_id, (room_id, event, since) in list(self._undecrypted.items()):
            event.room_id = room_id  # nio's decryption looks the key up by room
            try:
                decrypted = self.client.api.decrypt_event(event)
            except Exception:
                decrypted = None
            if decrypted is not None:
                event.room_id = room_id
                del self._undecrypted[event_id]
                if not await self._one(room_id, event_id, self._on_event(room_id, decrypted), decrypted):
                    self._undecrypted[event_id] = (room_id, event, since)
            elif time.monotonic() - since > UNDECRYPTABLE_PATIENCE_S:
                log.warning("giving up on an undecryptable event in %s", room_id)
                del self._undecrypted[event_id]
                await self.dispatcher.undecryptable(event_id, event.sender, room_id, thread_of(event))

    async def _referrer_invite(self, room_id: str, sender: str, state: list[object]) -> None:
        """Anyone on an allowed server may open a direct encrypted room with the bot to refer a
        person (SPEC §9): accepted only when it holds exactly the bot and that person and is
        encrypted; there only `!help` and `!refer` work for people not configured."""
        others = {e.state_key for e in state if isinstance(e, InviteMemberEvent)} - {sender, self.client.user_id}
        if server_of(sender) not in self.referrer_servers or others:
            log.info("ignoring a direct invite to %s (server not allowed or more members)", room_id)
            return
        await self.client.join(room_id)  # a room's state is readable by its members only
        # The same rule as a desk's (the invite's stripped state shows only the inviter).
        refusal = desk_refusal(await self.client.room_state(room_id), self.client.user_id, sender)
        if refusal is not None:
            log.info("left %s instead of taking it as a referrer's room: %s", room_id, refusal)
            await self.client.leave(room_id)
            return
        if await adopt_referrer_room(self.db, room_id, sender, datetime.now(UTC)):
            self.on_enqueued()  # a decision they had not been told yet
        log.info("joined a direct room opened to refer a person")

    async def _on_invite(self, room_id: str, state: list[object]) -> None:
        for event in state:
            if not isinstance(event, InviteMemberEvent) or event.state_key != self.client.user_id:
                continue
            if event.membership != "invite":
                continue
            role = self.desk_people.get(event.sender)
            if role is None and event.content.get("is_direct"):
                await self._referrer_invite(room_id, event.sender, state)
                return
            if role is None or not event.content.get("is_direct"):
                log.info("ignoring an invite to %s", room_id)
                return
            await self.client.join(room_id)  # a room's state is readable by its members only
            refusal = desk_refusal(await self.client.room_state(room_id), self.client.user_id, event.sender)
            if refusal is not None:
                log.warning("left %s instead of adopting it as a desk: %s", room_id, refusal)
                await self.client.leave(room_id)  # the person keeps the desk they have
                return
            await adopt_desk(self.db, event.sender, role, room_id)
            log.info("joined a desk opened by a configured %s", role)
            return


#: Join rules under which nobody enters without an invite.
_CLOSED_JOIN_RULES = ("invite", "knock")


def desk_refusal(state: list[dict[str, Any]], bot: str, owner: str) -> str | None:
    """Why this room cannot become `owner`'s desk, or None when it can (SPEC §3, issue 17): it
    must be end-to-end encrypted (megolm), invite-only, and hold exactly the bot and its owner
    (joined, invited or knocking counts)."""
    by_type: dict[str, dict[str, Any]] = {}
    members: dict[str, str] = {}
    for event in state:
        content = event.get("content") or {}
        if event.get("type") == "m.room.member":
            members[str(event.get("state_key"))] = str(content.get("membership"))
        elif event.get("state_key") == "":
            by_type[str(event.get("type"))] = content
    if by_type.get("m.room.encryption", {}).get("algorithm") != "m.megolm.v1.aes-sha2":
        return "not end-to-end encrypted"
    if by_type.get("m.room.join_rules", {}).get("join_rule", "invite") not in _CLOSED_JOIN_RULES:
        return "not invite-only"
    present = {user for user, membership in members.items() if membership in ("join", "invite", "knock")}
    if present != {bot, owner} or members.get(owner) != "join":
        return f"{len(present)} members instead of the bot and its owner"
    return None
