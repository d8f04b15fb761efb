"""Issue 18 on a real Synapse: the restart resumes from the stored token (no full state) and
loads a room's state when a send first needs it; the cross-signing verdicts are kept between
sends and dropped when sync's device_lists.changed names their owner."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from pathlib import Path

import nio
import pytest

from hub.bots import crosssigning as xs
from hub.domain.effects import Invite, Notify
from hub.services.outbox import enqueue
from tests.hub_harness import Hub, is_notice, kind_of
from tests.matrix_helpers import _SEEN, accept_invite, send_text, sync, wait_for_event

pytestmark = [pytest.mark.matrix, pytest.mark.db]


async def _until(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def _device(hub: Hub, user_id: str, password: str, tmp: Path) -> nio.AsyncClient:
    """Another logged-in device of an existing account, keys uploaded, not cross-signed."""
    store = tmp / f"nio-{secrets.token_hex(4)}"
    store.mkdir()
    client = nio.AsyncClient(hub.synapse.url, user_id, store_path=str(store),
                             config=nio.AsyncClientConfig(encryption_enabled=True, max_limit_exceeded=0))
    login = await client.login(password, device_name="second")
    assert isinstance(login, nio.LoginResponse), login
    await client.keys_upload()
    await sync(client, timeout_ms=0)
    hub.clients[f"device-{client.device_id}"] = client  # closed with the hub
    return client


async def _sign(client: nio.AsyncClient, keys: xs.CrossSigningKeys, first: bool) -> None:
    """Cross-sign this device with the account's keys, as Element does (uploading them first)."""
    user_id = client.user_id
    if first:
        status, body = await xs.matrix_request(client, "POST", "/_matrix/client/v3/keys/device_signing/upload",
                                               xs.device_signing_body(user_id, keys))
        assert status == 200, body
    device = (await xs.query_keys(client, [user_id]))["device_keys"][user_id][client.device_id]
    status, body = await xs.matrix_request(client, "POST", "/_matrix/client/v3/keys/signatures/upload",
                                           xs.signatures_body(user_id, device, keys.self_signing))
    assert status == 200 and not body.get("failures"), body


async def test_restart_syncs_from_the_token_and_loads_a_room_when_a_notice_needs_it(hub: Hub) -> None:
    await hub.setup()
    cm = await hub.client("cm")
    gp = await hub.client("gp")
    relais = await hub.start()
    desk = await hub.desk()
    case_a, room_a = await hub.open_case(desk=desk)
    case_b, room_b = await hub.open_case(desk=desk, text='!new "Paul Martin" --born 1940-02-03')
    case_c, room_c = await hub.open_case(desk=desk, text='!new "Anne Petit" --born 1941-03-04')
    nurse = await hub.client("nurse")  # a device nio of the bot has never met
    await send_text(cm, room_a, f"!team add {hub.user('gp')} gp")
    await wait_for_event(cm, room_a, is_notice("team.update", hub.bot))
    deadline = time.monotonic() + 30
    while room_a not in gp.invited_rooms:  # the invite may follow the notice
        assert time.monotonic() < deadline, "the GP was never invited"
        await sync(gp)
    while await relais.intake.stored_token() != relais.client.api.next_batch:  # room B's events handled
        assert time.monotonic() < deadline, "the sync token was never stored"
        await asyncio.sleep(0.05)
    await hub.stop()

    await accept_invite(gp, room_a)  # joins while the hub is down
    relais = await hub.start()
    assert room_b not in relais.client.api.rooms, "a restart must not read the state of every room"

    # A notice to a room no sync has shown since the start: loaded on demand, readable.
    async with relais.db.unit() as uow:
        await enqueue(uow, "test-restart-b", [Notify("encryption.unreachable", case_b, "encryption.unreachable",
                                                      {"user": "@nobody:example.org"})], relais.clock.now())
    relais.outbox.wake()
    notice = await wait_for_event(cm, room_b, is_notice("encryption.unreachable", hub.bot))
    assert isinstance(notice, nio.RoomMessageNotice), type(notice)

    # An invite then a notice to another room no sync has shown: the invitee, whose devices the
    # bot never queried, must still get the room key (load_room makes nio track them).
    async with relais.db.unit() as uow:
        await enqueue(uow, "test-restart-c", [
            Invite(case_c, hub.user("nurse")),
            Notify("encryption.unreachable", case_c, "encryption.unreachable", {"user": "@nobody:example.org"})],
            relais.clock.now())
    relais.outbox.wake()
    await accept_invite(nurse, await hub.invited_room(nurse))
    seen = await wait_for_event(nurse, room_c, is_notice("encryption.unreachable", hub.bot))
    assert isinstance(seen, nio.RoomMessageNotice), type(seen)

    # The member who joined while the hub was down gets the key of the next notice.
    async with relais.db.unit() as uow:
        await enqueue(uow, "test-restart-a", [Notify("encryption.unreachable", case_a, "encryption.unreachable",
                                                      {"user": "@nobody:example.org"})], relais.clock.now())
    relais.outbox.wake()
    read = await wait_for_event(gp, room_a, is_notice("encryption.unreachable", hub.bot))
    assert isinstance(read, nio.RoomMessageNotice), type(read)


async def test_kept_verdicts_never_share_with_a_new_unsigned_device_and_follow_its_signature(
        hub: Hub, tmp_path: Path) -> None:
    await hub.setup(encryption={"trust": "cross_signed"})
    await hub.client("cm")
    password = secrets.token_urlsafe(12)
    gp_id = await hub.synapse.register(f"gp{hub.tag}", password)
    gp = await _device(hub, gp_id, password, tmp_path)
    keys = xs.CrossSigningKeys.generate()
    await _sign(gp, keys, first=True)
    relais = await hub.start()
    trust = relais.client.trust
    assert trust is not None
    _case, room = await hub.open_case()
    await send_text(await hub.client("cm"), room, f"!team add {gp_id} gp")
    await wait_for_event(await hub.client("cm"), room, is_notice("team.update", hub.bot))
    await accept_invite(gp, room)
    first = await hub.command("cm", room, "!team")
    assert isinstance(await wait_for_event(gp, room, lambda e: getattr(e, "event_id", None) == first.event_id),
                      nio.RoomMessageNotice)
    queries = trust.queries
    again = await hub.command("cm", room, "!team")
    assert kind_of(again) == "command.reply"
    assert trust.queries == queries, "the verdicts are kept between sends: no /keys/query"

    # The GP adds an unsigned device; the bot's sync names them in device_lists.changed.
    second = await _device(hub, gp_id, password, tmp_path)
    olm = relais.client.api.olm
    assert olm is not None
    await _until(lambda: second.device_id in {d.id for d in olm.device_store.active_user_devices(gp_id)},
                 "the bot to learn the new device")
    reply = await hub.command("cm", room, "!team")
    locked = await wait_for_event(second, room, lambda e: getattr(e, "event_id", None) == reply.event_id)
    assert isinstance(locked, nio.MegolmEvent), "a device its owner did not sign got the room key"
    readable = await wait_for_event(gp, room, lambda e: getattr(e, "event_id", None) == reply.event_id)
    assert isinstance(readable, nio.RoomMessageNotice)

    # Once its owner signs it, the changed device list drops the verdict and the device is let in.
    await _sign(second, keys, first=False)
    await _until(lambda: gp_id not in trust._verdicts, "the bot to drop the GP's verdict")
    later = await hub.command("cm", room, "!team")
    opened = await wait_for_event(second, room, lambda e: getattr(e, "event_id", None) == later.event_id)
    assert isinstance(opened, nio.RoomMessageNotice), type(opened)


def _replies_to(client: nio.AsyncClient, room_id: str, bot: str, since: int) -> list[str]:
    """Bodies of the bot's command replies in the room, among the events this client has seen
    from position `since` on."""
    events = _SEEN[client][room_id][since:]
    return [e.body for e in events if is_notice("command.reply", bot)(e)]


async def test_the_sync_token_is_written_after_the_reply_and_a_lost_write_answers_nothing_twice(
        hub: Hub, monkeypatch: pytest.MonkeyPatch) -> None:
    """The token of a sync that carried a command is written TOKEN_DELAY_S later, off the
    reply's path (here: never before the stop), and a graceful stop writes it. When that write
    is lost (a crash), the next start reads the command again and answers nothing twice."""
    from hub.bots import intake

    monkeypatch.setattr(intake, "TOKEN_DELAY_S", 3600.0)
    await hub.setup()
    relais = await hub.start()
    desk = await hub.desk()
    cm = await hub.client("cm")
    start = len(_SEEN[cm][desk])
    written = await relais.intake.stored_token()
    assert kind_of(await hub.command("cm", desk, "!aide")) == "command.reply"
    assert relais.intake.commands_handled == 1
    assert await relais.intake.stored_token() == written  # written later, not on the reply's path
    await hub.stop()
    relais = await hub.start()
    assert await relais.intake.stored_token() != written  # the graceful stop wrote it

    # A crash between the reply and the write: the next start goes on from the older token.
    assert len(_replies_to(cm, desk, hub.bot, start)) == 1
    assert kind_of(await hub.command("cm", desk, "!aide")) == "command.reply"
    relais.intake.store_token = _lost  # type: ignore[method-assign]
    await hub.stop()  # as a crash would leave it: the second command's token not written
    relais = await hub.start()  # its first sync starts before the second command: read again
    assert kind_of(await hub.command("cm", desk, "!aide")) == "command.reply"  # a third, after the replay
    assert len(_replies_to(cm, desk, hub.bot, start)) == 3  # one per command, none twice


async def _lost() -> None:
    return None
