"""Watch the members who could not read a room until they can, then have them caught up.

A device list change in /sync (someone logged in, cross-signed a device, joined) wakes the
watcher; it also looks every few minutes, in case a change came while Relais was stopped. One
/keys/query covers every member still waiting. "Readable" follows `[encryption] trust`: a
device signed by its owner's cross-signing keys, or any device with `all`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from aiohttp import ClientConnectionError
from nio import SyncResponse

from hub.bots.client import BotClient
from hub.bots.crosssigning import cross_signed_devices, query_keys
from hub.bots.trust import TrustMode
from hub.clock import Clock
from hub.errors import TransientError
from hub.services.readability import now_readable, waiting
from hub.storage.database import Database

log = logging.getLogger(__name__)

FALLBACK_INTERVAL_S = 300.0


def readable_users(response: dict[str, Any], users: list[str], mode: TrustMode) -> set[str]:
    """Pure: who, in a /keys/query response, has a device the bot shares room keys with."""
    if mode == "all":
        return {u for u in users if (response.get("device_keys") or {}).get(u)}
    return {u for u in users if cross_signed_devices(response, u)}


class ReadableWatcher:
    def __init__(self, db: Database, client: BotClient, mode: TrustMode, clock: Clock,
                 on_enqueued: Callable[[], None] | None = None) -> None:
        self.db = db
        self.client = client
        self.mode = mode
        self.clock = clock
        self.on_enqueued = on_enqueued
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()

    def on_sync(self, response: SyncResponse) -> None:
        if response.device_list.changed:  # Synapse lists new joiners there too
            self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    async def run(self) -> None:
        while not self._stopping.is_set():
            try:
                await asyncio.wait_for(self._wake.wait(), FALLBACK_INTERVAL_S)
            except TimeoutError:
                pass
            self._wake.clear()
            if self._stopping.is_set():
                break
            try:
                await self.check()
            except (TransientError, ClientConnectionError, TimeoutError) as exc:
                log.warning("readability check postponed (%s)", type(exc).__name__)
            except Exception:
                log.exception("readability check failed; next try at the next device change")

    async def check(self) -> int:
        """Catch up every waiting member who can read now; returns the notices enqueued."""
        pairs = await waiting(self.db)
        if not pairs:
            return 0
        users = sorted({user for _, user in pairs})
        readable = readable_users(await query_keys(self.client.api, users), users, self.mode)
        added = 0
        for scope, user in pairs:
            if user in readable:
                added += await now_readable(self.db, scope, user, self.clock.now())
        if added:
            log.info("%d member(s) can now read their room: catch-up posted", added)
            if self.on_enqueued is not None:
                self.on_enqueued()
        return added
