"""The outbox worker: the only place that changes anything on Matrix.

Entries are taken in order. An attempt to create a room is counted (committed) before the
request, so after a crash an interrupted creation looks for the room it may have made instead
of making a second one. Everything else is idempotent when repeated — a notice is resent with
the same transaction id, which Synapse deduplicates; inviting or removing twice changes
nothing — so it costs one commit, when it is done.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from functools import partial
from typing import Any

from aiohttp import ClientConnectionError

from hub.bots import attachments, content
from hub.bots.client import BotClient
from hub.bots.render import render
from hub.clock import Clock
from hub.domain.effects import TRIAGE_DESK
from hub.errors import MatrixError, TransientError
from hub.i18n.catalog import Catalog
from hub.storage.database import Database
from hub.storage.repositories import OutboxEntry

log = logging.getLogger(__name__)

#: Actions that must know, after a crash, that they were already tried (see the docstring).
_COUNTED = frozenset({"create_room", "create_desk", "create_triage"})


class RoomNotReady(TransientError):
    pass


class OutboxWorker:
    def __init__(self, db: Database, client: BotClient, catalog: Catalog, clock: Clock) -> None:
        self.db = db
        self.client = client
        self.catalog = catalog
        self.clock = clock
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self.idle = asyncio.Event()
        self.sent = 0
        # case_ref → room id: a person's room, once made, never changes
        self._rooms: dict[str, str] = {}

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    async def run(self) -> None:
        backoff = 0.5
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                progressed = await self.drain()
                backoff = 0.5
            except (TransientError, ClientConnectionError, TimeoutError, OSError) as exc:
                log.warning("outbox paused (%s); retrying in %.1f s", exc, backoff)
                progressed = False
                await self._sleep(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            except Exception:
                log.exception("outbox pass failed; retrying")
                await self._sleep(5)
                continue
            if not progressed:
                self.idle.set()
                try:
                    await asyncio.wait_for(self._wake.wait(), 5.0)
                except TimeoutError:
                    pass
                self.idle.clear()

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except TimeoutError:
            pass

    async def drain(self) -> bool:
        """Perform every due entry in order; stop at the first transient failure."""
        async with self.db.read() as uow:
            entries = await uow.outbox.pending(self.clock.now())
        for entry in entries:
            if self._stopping.is_set():
                break
            if entry.action in _COUNTED:
                async with self.db.unit() as uow:
                    await uow.outbox.mark_attempt(entry.id)
            try:
                event_id = await self._perform(entry)
            except (TransientError, ClientConnectionError, TimeoutError):
                raise
            except MatrixError as exc:
                log.error("outbox entry %s (%s) failed for good: %s", entry.id, entry.action, exc)
                async with self.db.unit() as uow:
                    await uow.outbox.failed(entry.id, str(exc))
                continue
            async with self.db.unit() as uow:
                await uow.outbox.done(entry.id, event_id)
            self.sent += 1
        return bool(entries)

    async def _room_of(self, entry: OutboxEntry) -> str:
        room_id = entry.payload.get("room_id")
        if room_id:
            return str(room_id)
        if entry.payload.get("desk"):
            async with self.db.read() as uow:
                desk_room = await uow.desks.room_of(entry.payload["desk"])
                open_desk = desk_room is not None or await uow.desks.exists(entry.payload["desk"])
            if not open_desk:  # closed: its owner is no longer configured (never waits forever)
                raise MatrixError("the desk was closed", "M_DESK_CLOSED")
            if desk_room is None:
                raise RoomNotReady("desk not created yet")
            return desk_room  # not cached: a person may adopt another room as their desk
        ref = entry.case_ref or ""
        known = self._rooms.get(ref)
        if known is not None:
            return known
        async with self.db.read() as uow:
            person = await uow.persons.get(ref)
        if person is None or person.room_id is None:
            raise RoomNotReady(f"no room yet for {entry.case_ref}")
        self._rooms[ref] = person.room_id
        return person.room_id

    async def _perform(self, entry: OutboxEntry) -> str | None:
        payload = entry.payload
        if entry.action == "create_room":
            return await self._create_case_room(entry)
        if entry.action == "create_desk":
            return await self._create_desk(entry)
        if entry.action == "create_triage":
            return await self._create_triage(entry)
        room_id = await self._room_of(entry)
        if entry.action in ("invite", "invite_desk"):
            await self.client.invite(room_id, payload["user_id"])
            return None
        if entry.action in ("kick", "kick_desk"):
            await self.client.kick(room_id, payload["user_id"], self.catalog.text(payload["reason_key"]))
            return None
        if entry.action == "notify":
            return await self._notify(entry, room_id)
        if entry.action == "send_file":
            txn = "relais-" + entry.key.replace(":", "-").replace("$", "")
            return await attachments.send_file(self.db, self.client, entry, room_id, txn)
        if entry.action == "redact":
            async with self.db.unit() as uow:
                sent = await uow.outbox.event_id_of(payload["notice_key"])
            if sent is not None:
                txn = "relais-" + entry.key.replace(":", "-").replace("$", "")
                await self.client.redact(room_id, sent, self.catalog.text(payload["reason_key"]), txn)
            return None
        if entry.action == "leave":
            await self.client.leave(room_id)
            return None
        if entry.action == "move_power":
            await self._move_power(room_id, payload["from_user"], payload["to_user"])
            return None
        raise MatrixError(f"unknown outbox action {entry.action}", "M_UNKNOWN_ACTION")

    async def _create_case_room(self, entry: OutboxEntry) -> str:
        ref = entry.payload["case_ref"]
        marker = {"case": ref}
        room_id = await self.client.find_room(content.ROOM_STATE_TYPE, marker) if entry.attempts else None
        if room_id is None:
            spec = content.case_room(ref, self.catalog.text("room.name", case=ref), self.client.user_id,
                                     await self.client.default_room_version())
            room_id = await self.client.create_room(spec)
        async with self.db.unit() as uow:
            await uow.persons.set_room(ref, room_id)
        log.info("room ready for %s", ref)
        return room_id

    async def _create_desk(self, entry: OutboxEntry) -> str:
        owner = entry.payload["user_id"]
        async with self.db.read() as uow:
            existing = await uow.desks.room_of(owner)
            still_open = existing is not None or await uow.desks.exists(owner)
        if existing:
            return existing
        if not still_open:
            raise MatrixError("the desk was closed before it was created", "M_DESK_CLOSED")
        room_id = await self.client.find_room(content.ROOM_STATE_TYPE, {"desk": owner}) if entry.attempts else None
        if room_id is None:
            spec = content.desk_room(owner, self.catalog.text("desk.name"), self.client.user_id,
                                     await self.client.default_room_version())
            room_id = await self.client.create_room(spec)
        async with self.db.unit() as uow:
            await uow.desks.set_room(owner, room_id)
        return room_id

    async def _create_triage(self, entry: OutboxEntry) -> str:
        async with self.db.unit() as uow:
            existing = await uow.desks.room_of(TRIAGE_DESK)
        if existing:
            return existing
        marker = {"triage": "referrals"}
        room_id = await self.client.find_room(content.ROOM_STATE_TYPE, marker) if entry.attempts else None
        if room_id is None:
            spec = content.triage_room(self.catalog.text("triage.name"), self.client.user_id,
                                       await self.client.default_room_version(), list(entry.payload["members"]))
            room_id = await self.client.create_room(spec)
        async with self.db.unit() as uow:
            await uow.desks.set_room(TRIAGE_DESK, room_id)
        log.info("triage room ready")
        return room_id

    async def _move_power(self, room_id: str, from_user: str, to_user: str) -> None:
        # Read just before writing: a retry after a crash finds the move done and changes nothing.
        levels = await self.client.get_state(room_id, "m.room.power_levels")
        moved = content.power_moved(levels, from_user, to_user)
        if moved is not None:
            await self.client.put_state(room_id, "m.room.power_levels", moved)

    async def _notify(self, entry: OutboxEntry, room_id: str) -> str:
        payload: dict[str, Any] = entry.payload
        wrap: Callable[[dict[str, Any]], dict[str, Any]] = lambda c: c  # noqa: E731
        if payload.get("replaces"):
            async with self.db.read() as uow:
                original = await uow.outbox.event_id_of(payload["replaces"])
            if original:
                wrap = partial(_replacing, original)
        elif payload.get("thread_root"):
            wrap = partial(_threaded, payload["thread_root"], payload.get("in_reply_to"))
        body = render(self.catalog, payload["kind"], payload["case_ref"], payload["message"],
                      payload.get("params") or {}, tuple(payload.get("mentions") or ()), room_id=room_id, wrap=wrap)
        txn = "relais-" + entry.key.replace(":", "-").replace("$", "")
        return await self.client.send(room_id, body, txn)


def _replacing(original: str, body: dict[str, Any]) -> dict[str, Any]:
    return content.replacement(original, body)


def _threaded(root: str, reply_to: str | None, body: dict[str, Any]) -> dict[str, Any]:
    return content.in_thread(body, root, reply_to)
