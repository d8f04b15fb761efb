"""Homeserver answers the outbox must read right, on the real Synapse behind a real proxy: an
answer lost after the homeserver did the work, a rate limit with a huge wait."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web

from hub.bots import content
from tests.faults.harness import until
from tests.faults.proxy import FaultProxy
from tests.hub_harness import Hub, is_notice, kind_of
from tests.matrix_helpers import admin, admin_token, send_text, skip_seen, wait_for_event

pytestmark = [pytest.mark.matrix, pytest.mark.db]


class LostAnswers(FaultProxy):
    """Forwards the next `lose` requests whose path ends with `suffix` to Synapse — which does the
    work — then drops the connection instead of answering (a load balancer restarting, a reset
    mid-response)."""

    suffix = "/createRoom"
    lose = 0

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        if not (self.lose and request.path.endswith(self.suffix)):
            return await super()._forward(request)
        self.lose -= 1
        assert self._http is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        async with self._http.request(request.method, self.upstream + request.rel_url.raw_path_qs,
                                      headers=headers, data=await request.read()) as upstream:
            await upstream.read()
        self.faults["lost"] += 1
        assert request.transport is not None
        request.transport.abort()
        return web.Response(status=599)


async def rooms_marked(hub: Hub, marker: dict[str, str]) -> list[str]:
    """The rooms the bot is in whose Relais marker is `marker` (Synapse admin API)."""
    token = await admin_token(hub.synapse)
    joined = await admin(hub.synapse, token, "GET", f"/_synapse/admin/v1/users/{hub.bot}/joined_rooms")
    found = []
    for room_id in joined["joined_rooms"]:
        state: list[dict[str, Any]] = (await admin(hub.synapse, token, "GET",
                                                   f"/_synapse/admin/v1/rooms/{room_id}/state"))["state"]
        if any(e["type"] == content.ROOM_STATE_TYPE and e.get("content") == marker for e in state):
            found.append(room_id)
    return found


async def test_a_room_creation_whose_answer_is_lost_makes_one_room(hub: Hub) -> None:
    proxy = LostAnswers(hub.synapse.url)
    await proxy.start()
    try:
        await hub.setup(matrix={"homeserver": proxy.url}, outbox={"retry_cap_s": 2})
        await hub.start()
        desk = await hub.desk()
        proxy.lose = 1  # the file's room is made by Synapse, its answer never arrives
        ref, room = await hub.open_case(desk=desk)
        assert proxy.faults["lost"] == 1
        assert await rooms_marked(hub, {"case": ref}) == [room]  # was two: nio sent createRoom again
        cm = await hub.client("cm")
        assert [r for r, v in cm.invited_rooms.items() if v.inviter == hub.bot] == []  # no second invite
    finally:
        await hub.stop()
        await proxy.stop()


class RateLimitedRoom(FaultProxy):
    """While `room` is set, every message sent there gets Synapse's 429 answer with a huge
    `retry_after_ms` (a rate limiter configured low, a proxy's); other rooms are untouched."""

    room = ""
    retry_after_ms = 10**9  # eleven days

    def fault(self, request: web.Request) -> web.Response | None:
        if self.room and f"/rooms/{self.room}/send/" in request.path:
            return web.json_response({"errcode": "M_LIMIT_EXCEEDED", "error": "Too Many Requests",
                                      "retry_after_ms": self.retry_after_ms}, status=429)
        return None


async def test_a_huge_rate_limit_holds_only_its_notice_and_not_past_its_end(hub: Hub) -> None:
    proxy = RateLimitedRoom(hub.synapse.url)
    await proxy.start()
    try:
        # One lane at a time: a lane that holds its slot while it waits stalls every other room.
        await hub.setup(matrix={"homeserver": proxy.url}, outbox={"retry_cap_s": 2, "concurrency": 1})
        relais = await hub.start()
        desk = await hub.desk()
        _ref, room = await hub.open_case(desk=desk)
        cm = await hub.client("cm")
        proxy.room = desk
        await skip_seen(cm, desk)
        await send_text(cm, desk, "!help")

        async def refused() -> bool:
            return proxy.faults["send"] >= 1

        await until(refused, "the desk's reply rate limited", 30)
        # Another room flows meanwhile (it waited behind the transport's 30 s sleeps).
        reply = await hub.command("cm", room, "!team", wait_s=15)
        assert kind_of(reply) == "command.reply"
        # The limit ends: the held reply goes at the next try (at most retry_cap_s later), not at the
        # end of a 30 s sleep at the transport — nor, had the limit lasted 20 of them, after the
        # eleven days nio then slept, uncapped.
        proxy.room = ""
        answer = await wait_for_event(cm, desk, is_notice("command.reply", hub.bot), timeout=10)
        assert kind_of(answer) == "command.reply"
        assert relais.outbox.dead == 0
    finally:
        await hub.stop()
        await proxy.stop()
