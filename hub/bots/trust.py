"""Which devices get the room keys of the bot's messages.

`cross_signed` (the default) shares only with devices signed by their owner's self-signing
key, itself signed by the owner's master key — what Element calls "exclude insecure devices"
(MSC4153). The signatures are checked here from /keys/query, not taken from nio, which has no
cross-signing. Devices that fail are blacklisted in nio's store before each send (and taken off
the list again once they pass), so nio's own key sharing leaves them out; nio rotates the
room's megolm session whenever that list changes. `all` shares with every device, as before.

A team member left with no device to share with cannot read the room any more: the case
manager is told once per (room, member) through the outbox, and the member is kept until they
have a readable device (bots/readable.py then catches them up).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from nio import AsyncClient

from hub.bots.crosssigning import cross_signed_devices, query_keys
from hub.clock import Clock
from hub.domain.effects import Notify
from hub.domain.team import case_managers
from hub.services.outbox import enqueue
from hub.services.readability import note_unreadable
from hub.storage.database import Database

log = logging.getLogger(__name__)

TrustMode = Literal["cross_signed", "all"]
UNREACHABLE_KIND = "encryption.unreachable"


@dataclass(frozen=True)
class Decision:
    blocked: frozenset[tuple[str, str]]  # (user, device) never to receive our room keys
    unreachable: tuple[str, ...]  # members with no device that may receive them


def decide(response: Mapping[str, Any], members: Iterable[str], bot: str,
           known: Mapping[str, Mapping[str, str]]) -> Decision:
    """Pure: the /keys/query response for `members`, and the devices nio knows
    (user → device → Ed25519 key), give the devices to block and the members left out."""
    members = list(members)
    return decide_signed({u: cross_signed_devices(response, u) for u in members}, members, bot, known)


def decide_signed(verdicts: Mapping[str, Mapping[str, str]], members: Iterable[str], bot: str,
                  known: Mapping[str, Mapping[str, str]]) -> Decision:
    """Pure: each member's cross-signed devices (user → device → Ed25519 key, as
    `cross_signed_devices` gives them) against the devices nio knows. A device nio knows that the
    verdict does not list — a new one, or one whose key changed — is blocked."""
    blocked: set[tuple[str, str]] = set()
    unreachable: list[str] = []
    for user in members:
        signed = verdicts.get(user, {})
        for device_id, ed25519 in known.get(user, {}).items():
            # Same device id with another key is another device: it is not the one verified.
            if signed.get(device_id) != ed25519:
                blocked.add((user, device_id))
        if user != bot and not signed:
            unreachable.append(user)
    return Decision(frozenset(blocked), tuple(unreachable))


Unreachable = Callable[[str, tuple[str, ...]], Awaitable[None]]


class DeviceTrust:
    """Applied by BotClient.send before nio shares the room key.

    Each member's verdict (their cross-signed devices) is kept until the homeserver says their
    keys changed: Synapse lists a user in sync's `device_lists.changed` when they add or remove
    a device, or upload cross-signing keys or signatures (client-server API, "Tracking the
    device list for a user"); BotClient calls `forget` for them before anything else sees that
    sync. A stale verdict can only block: a device it does not list is never shared with.
    """

    def __init__(self, mode: TrustMode, on_unreachable: Unreachable | None = None) -> None:
        self.mode = mode
        self.on_unreachable = on_unreachable
        self._verdicts: dict[str, dict[str, str]] = {}
        # Bumped by forget(): a /keys/query answer older than the news is not kept.
        self._generation: dict[str, int] = {}
        self.queries = 0  # /keys/query requests made (for tests and bench)

    def forget(self, users: Iterable[str]) -> None:
        """Drop the kept verdicts of these users (their device list or signatures changed)."""
        for user in users:
            self._verdicts.pop(user, None)
            self._generation[user] = self._generation.get(user, 0) + 1

    async def _verdicts_for(self, api: AsyncClient, members: list[str]) -> dict[str, dict[str, str]]:
        missing = [u for u in members if u not in self._verdicts]
        if missing:
            before = {u: self._generation.get(u, 0) for u in missing}
            self.queries += 1
            response = await query_keys(api, missing)
            fresh = {u: cross_signed_devices(response, u) for u in missing}
            for user, signed in fresh.items():
                if self._generation.get(user, 0) == before[user]:
                    self._verdicts[user] = signed
            return {**{u: self._verdicts[u] for u in members if u in self._verdicts}, **fresh}
        return {u: self._verdicts[u] for u in members}

    async def apply(self, api: AsyncClient, room_id: str) -> Decision:
        olm = api.olm
        room = api.rooms.get(room_id)
        if olm is None or room is None:
            return Decision(frozenset(), ())
        members = sorted(room.users)
        known = {user: {d.id: d.ed25519 for d in olm.device_store.active_user_devices(user)} for user in members}
        if self.mode == "all":
            decision = Decision(frozenset(), ())
        else:
            decision = decide_signed(await self._verdicts_for(api, members), members, api.user_id, known)
        for user in members:
            for device in olm.device_store.active_user_devices(user):
                if device.id == api.device_id and user == api.user_id:
                    continue
                # nio invalidates the room's outbound session itself when a flag changes. Its
                # trust files append a key even when present (and then report a change), so
                # only flag a device once, and unflag until no entry is left.
                blacklisted = olm.is_device_blacklisted(device)
                if (user, device.id) in decision.blocked:
                    if not blacklisted:
                        api.blacklist_device(device)
                        log.info("room keys withheld from a device that is not cross-signed")
                elif blacklisted:
                    while olm.is_device_blacklisted(device):
                        api.unblacklist_device(device)
                    log.info("room keys shared again with a device now cross-signed (or trust = all)")
        if decision.unreachable and self.on_unreachable is not None:
            # Every send asks; UnreachableNotices records and tells once per room and member.
            await self.on_unreachable(room_id, decision.unreachable)
        return decision


class UnreachableNotices:
    """Tell the case manager, in the room, that a member cannot read it (once per room and member)."""

    def __init__(self, db: Database, clock: Clock, on_enqueued: Callable[[], None] | None = None) -> None:
        self.db = db
        self.clock = clock
        self.on_enqueued = on_enqueued
        # (room, member) pairs already recorded and told: both are once per room and member for
        # good (never deleted), so later sends skip the unit of work — a write, on the path of
        # every notice to a room with a member who has no cross-signed device (5 ms a notice).
        self._noted: set[tuple[str, str]] = set()

    async def __call__(self, room_id: str, users: tuple[str, ...]) -> None:
        users = tuple(user for user in users if (room_id, user) not in self._noted)
        if not users:
            return
        added = 0
        async with self.db.unit() as uow:
            person = await uow.persons.by_room(room_id)
            if person is not None:
                case_ref = person.case_ref
                team = await uow.team.members(case_ref)
                managers = list(case_managers(team, person.referent))
            else:
                desk = await uow.desks.owner(room_id)
                if desk is None:
                    return  # not a room of ours
                case_ref, managers = "", [desk[0]]
            mentions = tuple(dict.fromkeys(managers))
            await note_unreadable(uow, room_id, users, self.clock.now())  # followed up once readable
            for user in users:
                notice = Notify(UNREACHABLE_KIND, case_ref, UNREACHABLE_KIND, {"user": user},
                                mentions=mentions, room_id=room_id)
                added += await enqueue(uow, f"unreachable:{room_id}:{user}", [notice], self.clock.now())
        self._noted.update((room_id, user) for user in users)
        if added:
            if case_ref:
                log.warning("%d member(s) of %s have no cross-signed device; case manager told", added, case_ref)
            else:
                log.warning("%d member(s) of a desk have no cross-signed device; the desk's owner told", added)
            if self.on_enqueued is not None:
                self.on_enqueued()
