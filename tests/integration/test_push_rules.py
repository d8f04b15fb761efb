"""Who each kind of notice notifies, as Synapse's own push-rule evaluation decides (issue 22).

The rooms are encrypted in production, where clients evaluate the same default rules on the
decrypted content; here the rendered content of every kind is sent in a clear test room so the
homeserver evaluates the rules and `/notifications` tells, for each person, whether it notified
them and whether it highlighted (a mention: sound and badge). People have display names that
the notices show, so the legacy "body contains my name" rules would fire if `m.mentions` did not
switch them off (MSC3952).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from hub.bots import content
from hub.bots.render import render
from hub.devserver import DevSynapse
from hub.i18n.catalog import Catalog
from tests.bots.notice_samples import CM, GP, NAMES, NOW, NURSE, NURSE2, samples

pytestmark = pytest.mark.matrix

_PEOPLE = {CM: "cm", GP: "gp", NURSE: "nurse", NURSE2: "nurse2", "@gc.bernard:relais.test": "cm2"}


class _User:
    def __init__(self, session: aiohttp.ClientSession, base: str, user_id: str, token: str) -> None:
        self.session, self.base, self.user_id, self.token = session, base, user_id, token

    async def call(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        async with self.session.request(method, f"{self.base}/_matrix/client/v3{path}", json=body,
                                        headers={"Authorization": f"Bearer {self.token}"}) as resp:
            data: dict[str, Any] = await resp.json()
            assert resp.status == 200, (path, resp.status, data)
            return data

    async def notifications(self) -> dict[str, bool]:
        """event id → highlighted, for every event that notified this user."""
        data = await self.call("GET", "/notifications?limit=1000")
        return {n["event"]["event_id"]: any(isinstance(a, dict) and a.get("set_tweak") == "highlight"
                                            and a.get("value", True) for a in n["actions"])
                for n in data["notifications"]}


async def _login(session: aiohttp.ClientSession, synapse: DevSynapse, localpart: str, name: str) -> _User:
    password = secrets.token_urlsafe(12)
    user_id = await synapse.register(localpart, password)
    async with session.post(f"{synapse.url}/_matrix/client/v3/login", json={
            "type": "m.login.password", "identifier": {"type": "m.id.user", "user": localpart},
            "password": password}) as resp:
        token = (await resp.json())["access_token"]
    user = _User(session, synapse.url, user_id, token)
    await user.call("PUT", f"/profile/{user_id}/displayname", {"displayname": name})
    return user


async def test_each_kind_notifies_exactly_who_must_act(synapse: DevSynapse, tmp_path: Path) -> None:
    tag = secrets.token_hex(3)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        bot = await _login(session, synapse, f"relaisbot{tag}", "Relais")
        people = {sample_id: await _login(session, synapse, f"{local}{tag}", NAMES[sample_id])
                  for sample_id, local in _PEOPLE.items()}
        real = {sample_id: user.user_id for sample_id, user in people.items()}
        room = (await bot.call("POST", "/createRoom", {"preset": "private_chat", "invite": list(real.values())}))
        room_id = room["room_id"]
        for user in people.values():
            await user.call("POST", f"/join/{room_id}", {})

        catalog = Catalog("fr")
        sent: list[tuple[str, str, set[str], str]] = []  # (event id, name, mentioned ids, msgtype)
        for n, sample in enumerate(samples("fr")):
            notice = sample.notice
            event = render(catalog, notice.kind, notice.case_ref, notice.message, notice.params, notice.mentions,
                           NAMES, NOW)
            if notice.replaces is not None:  # the hospital cancelled the admission sent first
                event = content.replacement(sent[0][0], event)
            text = json.dumps(event)
            for sample_id, user_id in real.items():
                text = text.replace(sample_id, user_id)
            event = json.loads(text)
            reply = await bot.call("PUT", f"/rooms/{room_id}/send/m.room.message/t{tag}{n}", event)
            mentioned = set(event.get("m.mentions", {}).get("user_ids", ())) & set(real.values())
            sent.append((reply["event_id"], sample.name, mentioned, event["msgtype"]))

        # A last message mentioning everyone: once each person has it, they have all the others.
        everyone = sorted(real.values())
        last = await bot.call("PUT", f"/rooms/{room_id}/send/m.room.message/t{tag}last", {
            "msgtype": "m.text", "body": "fin", "m.mentions": {"user_ids": everyone}})
        seen: dict[str, dict[str, bool]] = {}
        deadline = time.monotonic() + 30
        for user in people.values():
            while last["event_id"] not in (found := await user.notifications()):
                assert time.monotonic() < deadline, f"{user.user_id} never saw the last message"
                await asyncio.sleep(0.2)
            seen[user.user_id] = found

    action_kinds = 0
    for event_id, name, mentioned, msgtype in sent:
        for user_id, found in seen.items():
            highlighted = found.get(event_id)
            if user_id in mentioned and msgtype == "m.text":
                assert highlighted is True, f"{name}: {user_id} must be notified with a highlight"
            else:
                # Nobody else hears it: an m.notice notifies no one, an m.text highlights no one else
                # (they see it unread like any message of the room, without sound).
                assert not highlighted, f"{name}: {user_id} must not be alerted"
                if msgtype == "m.notice":
                    assert highlighted is None, f"{name}: an m.notice notified {user_id}"
        if msgtype == "m.text" and mentioned:
            action_kinds += 1
    assert action_kinds >= 10  # alerts, handovers, re-evaluations… each checked above
    # The case manager and the GP are alerted by an admission; the successor by the handover.
    by_name = {name: (event_id, mentioned) for event_id, name, mentioned, _ in sent}
    admission, _ = by_name["Admission"]
    assert seen[real[CM]][admission] and seen[real[GP]][admission] and not seen[real[NURSE]].get(admission)
    handover, _ = by_name["Professional handover"]
    assert seen[real[NURSE2]][handover] and not seen[real[NURSE]].get(handover)
    added, _ = by_name["Plan item passing to the successor"]
    assert added not in seen[real[NURSE2]]  # a plan update is an m.notice: no notification at all
