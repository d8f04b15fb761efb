"""The outbox worker: the only place that changes anything on Matrix.

Entries are done in order within their lane — one room: a person's room from its creation on,
a desk, another room — and lanes proceed independently, several at once (up to a bound), the
way Synapse's federation sender keeps one queue per destination. The effects of one cause (a
command, a hospital message) also keep their order across lanes (hub/storage/repositories.py).
Each entry keeps its own retry state: a transient failure (429, 5xx, timeout, lost connection)
holds that entry, and the rest of its lane, until a next try chosen by exponential backoff with
jitter (all are tried at once when the homeserver answers again after an outage); a permanent
failure (any other 4xx, a room that is gone), or an entry still failing after its maximum age
while the homeserver answers, is dead-lettered and the file's referent is told
(`delivery.failed`). So one room that can never be reached delays only its own notices.

An attempt to create a room is counted (committed) before the request, so after a crash an
interrupted creation looks for the room it may have made — once the first sync has shown the
bot's rooms — instead of making a second one. Everything else is idempotent when repeated — a
notice is resent with the same transaction id, which Synapse deduplicates; inviting or removing
twice changes nothing — so it costs one commit, when it is done.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from hub.bots import attachments, content
from hub.bots.client import BotClient, is_transient
from hub.bots.render import NotRenderable, checked_render, people
from hub.clock import Clock
from hub.domain.effects import TRIAGE_DESK
from hub.errors import MatrixError, RoomGone, RoomNotSynced
from hub.i18n.catalog import Catalog
from hub.metrics import Metrics
from hub.services.desks import DeskGuard
from hub.services.outbox import dead_letter
from hub.storage.database import Database, UnitOfWork
from hub.storage.repositories import OutboxEntry

log = logging.getLogger(__name__)

#: Actions that must know, after a crash, that they were already tried (see the docstring).
_COUNTED = frozenset({"create_room", "create_desk", "create_triage"})


class RoomNotReady(RoomNotSynced):
    pass


class DeskMoving(RoomNotSynced):
    """The desk an entry is for is being opened anew (the bot lost the old one): the entry waits
    for it, tried again soon like one waiting on our sync, then goes to the new room."""


#: Answers by which the homeserver says the bot is not in a room (any more), or there is none.
_NOT_IN_ROOM = frozenset({"M_FORBIDDEN", "M_NOT_FOUND"})


#: Seconds between tries of an entry waiting on our own sync (RoomNotSynced): not backed off.
SYNC_WAIT_S = 1.0
#: At stop, how long the lanes may take to finish the entry in hand before they are cancelled.
LANE_GRACE_S = 10.0


@dataclass(frozen=True)
class RetryPolicy:
    """`concurrency`: lanes served at once. Backoff: `base_s` × 2^(attempts−1), capped at `cap_s`,
    the upper half jittered; a Retry-After from the homeserver is waited at least. `max_age_s`:
    an entry still failing this long after it was enqueued is dead-lettered, but only while the
    homeserver answers syncs — an outage delays notices, never drops them (SPEC §7)."""

    concurrency: int = 8
    base_s: float = 0.5
    cap_s: float = 60.0
    max_age_s: float = 3600.0

    def delay(self, attempts: int, retry_after_s: float | None = None,
              rand: Callable[[], float] = random.random) -> float:
        """Seconds before try number `attempts` + 1 (`attempts` ≥ 1 failures so far)."""
        ceiling = min(self.cap_s, self.base_s * 2.0 ** max(0, attempts - 1))
        wait = ceiling / 2 + rand() * ceiling / 2
        return float(max(wait, min(retry_after_s or 0.0, self.cap_s)))


def _wall() -> datetime:
    """Retries are timed by the wall clock, not the injected Clock: a test that freezes the
    domain's time must not freeze the outbox. (An entry's age is read on the Clock, like the time
    it was enqueued.)"""
    return datetime.now(UTC)


def error_label(exc: BaseException) -> str:
    """What went wrong, for the dead-letter record and logs: an errcode or class, no content."""
    if isinstance(exc, MatrixError):
        status = f" {exc.http_status}" if exc.http_status else ""
        return f"{type(exc).__name__}{status} {exc.errcode or ''}".strip()
    if isinstance(exc, NotRenderable):
        return f"NotRenderable {exc.what}"
    return type(exc).__name__


class OutboxWorker:
    def __init__(self, db: Database, client: BotClient, catalog: Catalog, clock: Clock,
                 policy: RetryPolicy | None = None, metrics: Metrics | None = None) -> None:
        self.db = db
        self.client = client
        self.catalog = catalog
        self.clock = clock
        self.policy = policy or RetryPolicy()
        self.metrics = metrics
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self.idle = asyncio.Event()
        self.sent = 0
        self.dead = 0
        # lane → the task serving it: one task per lane keeps the lane's order
        self._lanes: dict[str, asyncio.Task[None]] = {}
        # case_ref → room id: a person's room, once made, never changes
        self._rooms: dict[str, str] = {}
        #: Opens a desk anew when a send finds the bot out of it (app.py sets it); None: never.
        self.desk_guard: DeskGuard | None = None

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    async def finish(self, timeout: float = LANE_GRACE_S) -> None:  # noqa: ASYNC109
        """Stop, and let each lane finish the entry in hand (its send and its commit) before the
        database closes; a lane still busy after `timeout` seconds is cancelled and awaited, so
        that no orphaned lane keeps a connection — on SQLite, the write lock — after the stop."""
        self.stop()
        lanes = list(self._lanes.values())
        if not lanes:
            return
        _done, late = await asyncio.wait(lanes, timeout=timeout)
        for task in late:
            task.cancel()
        await asyncio.gather(*lanes, return_exceptions=True)

    async def run(self) -> None:
        # Before the first sync nio knows no room: every send would fail, and count as a try.
        waits = [asyncio.create_task(self.client.synced_once.wait(), name="outbox-first-sync"),
                 asyncio.create_task(self._stopping.wait(), name="outbox-stopping")]
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for waiting in waits:
            waiting.cancel()
        connected = True
        try:
            while not self._stopping.is_set():
                self._wake.clear()
                next_retry: float | None = 2.0
                try:
                    if self.client.connected and not connected:
                        await self._homeserver_back()
                    connected = self.client.connected
                    started = await self._start_lanes()
                    next_retry = await self._next_retry_in()
                except Exception as exc:  # the database away: try again shortly
                    log.warning("outbox paused (%s)", error_label(exc))
                    started = 0
                if not started and not self._lanes and next_retry is None:
                    self.idle.set()  # nothing pending at all
                try:
                    await asyncio.wait_for(self._wake.wait(), min(5.0, next_retry or 5.0))
                except TimeoutError:
                    pass
                self.idle.clear()
        finally:
            # Each lane finishes the entry in hand (its send and its commit: a send left
            # uncommitted would only be resent, deduplicated, but counted twice as pending).
            lanes = list(self._lanes.values())
            if lanes:
                _done, late = await asyncio.wait(lanes, timeout=LANE_GRACE_S)
                for task in late:
                    task.cancel()
                await asyncio.gather(*lanes, return_exceptions=True)

    async def _homeserver_back(self) -> None:
        """The homeserver answers again after an outage: every lane waiting on a retry goes now,
        instead of at the end of a backoff that grew while it was away."""
        async with self.db.unit() as uow:
            count = await uow.outbox.retry_all_now()
        if count:
            log.info("homeserver back: %d outbox entries retried now", count)

    async def _next_retry_in(self) -> float | None:
        """Seconds until the earliest lane waiting on a retry is due; None when none waits."""
        async with self.db.read() as uow:
            when = await uow.outbox.next_retry_at()
        if when is None:
            return None
        return max(0.05, (when - _wall()).total_seconds())

    async def _start_lanes(self) -> int:
        room = self.policy.concurrency - len(self._lanes)
        if room <= 0:
            return 0
        async with self.db.read() as uow:
            heads = await uow.outbox.due_heads(_wall(), busy=set(self._lanes), limit=room)
        for head in heads:
            task = asyncio.create_task(self._serve(head.lane, head), name=f"outbox-lane-{head.id}")
            self._lanes[head.lane] = task
        return len(heads)

    async def _serve(self, lane: str, head: OutboxEntry | None = None) -> None:
        """Do a lane's due entries in order, from `head` (just read as the lane's first due entry);
        stop when it is empty or waits for a retry."""
        entry = head
        try:
            while not self._stopping.is_set():
                if entry is None:
                    async with self.db.read() as uow:
                        entry = await uow.outbox.head_of(lane, _wall())
                if entry is None or not await self.attempt(entry):
                    break
                entry = None
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the database went away mid-way: this lane rests, the others go on
            log.warning("outbox lane paused (%s)", error_label(exc))
            try:
                await asyncio.wait_for(self._stopping.wait(), 2.0)
            except TimeoutError:
                pass
        finally:
            self._lanes.pop(lane, None)
            self._wake.set()

    async def drain(self) -> bool:
        """Every due entry of every lane, now, one lane after another (for tests and tools)."""
        progressed = False
        while True:
            async with self.db.read() as uow:
                heads = await uow.outbox.due_heads(_wall())
            if not heads:
                return progressed
            for head in heads:
                progressed |= await self.attempt(head)

    async def attempt(self, entry: OutboxEntry) -> bool:
        """One try; True when the entry is finished (done or dead-lettered), False when it waits."""
        if entry.action in _COUNTED:
            async with self.db.unit() as uow:
                await uow.outbox.mark_attempt(entry.id)
        try:
            event_id = await self._perform(entry)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            return await self._failed(entry, exc)
        async with self.db.unit() as uow:
            await uow.outbox.done(entry.id, event_id)
        self.sent += 1
        if self.metrics is not None:
            self.metrics.notices_sent.inc()
        return True

    async def _failed(self, entry: OutboxEntry, exc: Exception) -> bool:
        now = self.clock.now()
        label = error_label(exc)
        age = (now - entry.created_at).total_seconds()
        # An unexpected exception (not a Matrix answer) is retried like a transient one: it may be
        # the database; its maximum age still ends it.
        retry = (is_transient(exc) or not isinstance(exc, MatrixError)) and not isinstance(exc, NotRenderable)
        if retry and not (age > self.policy.max_age_s and self.client.connected):
            retry_after = exc.retry_after_ms / 1000 if isinstance(exc, MatrixError) and exc.retry_after_ms else None
            wait = SYNC_WAIT_S if isinstance(exc, RoomNotSynced) else self.policy.delay(entry.attempts + 1, retry_after)
            if isinstance(exc, MatrixError):
                log.info("outbox entry %s (%s) failed (%s); retry in %.1f s", entry.id, entry.action, label, wait)
            else:
                log.warning("outbox entry %s (%s) failed (%s); retry in %.1f s", entry.id, entry.action, label,
                            wait, exc_info=exc)
            async with self.db.unit() as uow:
                await uow.outbox.retry_later(entry.id, _wall() + timedelta(seconds=wait), label,
                                             count=entry.action not in _COUNTED)
            return False
        why = label if not retry else f"{label} (still failing after {age:.0f} s)"
        async with self.db.unit() as uow:
            behind = await self._failing_with(uow, entry, exc, retry)
            told = await dead_letter(uow, entry, why, now, self.clock.tz, behind)
        self.dead += 1 + len(behind)
        if self.metrics is not None:
            self.metrics.outbox_dead.inc(1 + len(behind))
        log.error("outbox entry %s (%s, %s) set aside for good: %s, with %d behind it; %s", entry.id, entry.action,
                  entry.case_ref or "-", why, len(behind), "told" if told else "nobody to tell")
        if told:
            self._wake.set()
        return True

    async def _failing_with(self, uow: UnitOfWork, entry: OutboxEntry, exc: Exception,
                            timed_out: bool) -> list[OutboxEntry]:
        """The entries behind `entry` in its lane that would fail the same way, set aside with it
        under one report: all of them when the room itself is gone for the bot (a person's room
        deleted, the bot removed or never in it: every later entry there fails too), or those
        already older than the maximum age when `entry` ran out of it. Otherwise none: the next
        entry gets its own try (an invite refused for one person says nothing of the next)."""
        if timed_out:
            oldest = self.clock.now() - timedelta(seconds=self.policy.max_age_s)
            return await uow.outbox.rest_of_lane(entry.lane, entry.id, created_before=oldest)
        room_gone = isinstance(exc, RoomGone) or (
            isinstance(exc, MatrixError) and exc.errcode in _NOT_IN_ROOM and entry.action in ("notify", "send_file"))
        if not room_gone or not entry.lane.startswith("case:"):
            return []  # desks are opened anew (DeskGuard); other rooms have few entries
        return await uow.outbox.rest_of_lane(entry.lane, entry.id)

    async def _room_of(self, entry: OutboxEntry) -> str:
        room_id = entry.payload.get("room_id")
        if room_id:
            return str(room_id)
        if entry.payload.get("desk"):
            async with self.db.read() as uow:
                desk_room = await uow.desks.room_of(entry.payload["desk"])
                open_desk = desk_room is not None or await uow.desks.exists(entry.payload["desk"])
                renewing = desk_room is None and open_desk and await uow.outbox.renewing_desk(entry.payload["desk"])
            if not open_desk:  # closed: its owner is no longer configured (never waits forever)
                raise MatrixError("the desk was closed", "M_DESK_CLOSED")
            if renewing:
                raise DeskMoving("the desk is being opened anew")
            if desk_room is None:
                # The desk's creation comes first in this lane: done, it would have set the room.
                raise RoomGone("no desk room (its creation failed)")
            return desk_room  # not cached: a person may adopt another room as their desk
        ref = entry.case_ref or ""
        known = self._rooms.get(ref)
        if known is not None:
            return known
        async with self.db.read() as uow:
            person = await uow.persons.get(ref)
        if person is None or person.room_id is None:
            # The room's creation comes first in this lane: done, it would have set the room.
            raise RoomGone(f"no room for {entry.case_ref} (its creation failed)")
        self._rooms[ref] = person.room_id
        return person.room_id

    async def _perform(self, entry: OutboxEntry) -> str | None:
        if entry.action == "create_room":
            return await self._create_case_room(entry)
        if entry.action == "create_desk":
            return await self._create_desk(entry)
        if entry.action == "create_triage":
            return await self._create_triage(entry)
        room_id = await self._room_of(entry)
        try:
            return await self._perform_in(entry, room_id)
        except MatrixError as exc:
            if await self._desk_lost(entry, room_id, exc):
                raise DeskMoving(f"the bot is no longer in the desk {room_id}; a new one is opened") from exc
            raise

    async def _desk_lost(self, entry: OutboxEntry, room_id: str, exc: MatrixError) -> bool:
        """The bot is out of the desk this entry is for (the owner removed it, the room is gone;
        a sync may not have shown it yet): True when the desk is opened anew and the entry waits
        for it, False when it is set aside as before (not a desk, opened anew too recently)."""
        if self.desk_guard is None or is_transient(exc) or exc.errcode not in _NOT_IN_ROOM:
            return False
        if not (entry.payload.get("desk") or entry.payload.get("room_id")):
            return False  # a person's room
        return await self.desk_guard.unreachable(room_id, entry.id)

    async def _perform_in(self, entry: OutboxEntry, room_id: str) -> str | None:
        payload = entry.payload
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

    async def _after_first_sync(self, entry: OutboxEntry) -> None:
        # Tried before (a crash in the middle?): the room it may have made is found among the
        # bot's rooms, which only the first sync lists.
        if entry.attempts and not self.client.synced_once.is_set():
            raise RoomNotReady("waiting for the first sync before looking for the room")

    async def _create_case_room(self, entry: OutboxEntry) -> str:
        ref = entry.payload["case_ref"]
        await self._after_first_sync(entry)
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
        await self._after_first_sync(entry)
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
        if room_id is not None and room_id == entry.payload.get("lost_room"):
            room_id = None  # the room lost (a sync had not shown it yet): never taken back
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
        params = payload.get("params") or {}
        names = await self.client.display_names(room_id, list(people(params)))
        wrap: Callable[[dict[str, Any]], dict[str, Any]] = lambda c: c  # noqa: E731
        if payload.get("replaces"):
            async with self.db.read() as uow:
                original = await uow.outbox.event_id_of(payload["replaces"])
            if original:
                wrap = partial(_replacing, original)
        elif payload.get("thread_root"):
            wrap = partial(_threaded, payload["thread_root"], payload.get("in_reply_to"))
        body = checked_render(self.catalog, payload["kind"], payload["case_ref"], payload["message"], params,
                              tuple(payload.get("mentions") or ()), names, self.clock.now(), room_id=room_id,
                              wrap=wrap)
        txn = "relais-" + entry.key.replace(":", "-").replace("$", "")
        return await self.client.send(room_id, body, txn)


def _replacing(original: str, body: dict[str, Any]) -> dict[str, Any]:
    return content.replacement(original, body)


def _threaded(root: str, reply_to: str | None, body: dict[str, Any]) -> dict[str, Any]:
    return content.in_thread(body, root, reply_to)
