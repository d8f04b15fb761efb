"""One failure never stalls the rest, on the real Synapse and database: a room an administrator
deleted, an event whose handling always fails, a homeserver answering 502, a room key share
lost on a dropped connection."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

import aiohttp
import nio
import pytest
from aiohttp import web
from sqlalchemy import select, update

from hub.bots.client import SYNC_FILTER
from hub.storage.database import Database
from hub.storage.models import OutboxRow, PersonRow
from tests.faults.harness import until
from tests.faults.proxy import DROP, FaultProxy
from tests.hub_harness import Hub, content_of, is_notice, kind_of
from tests.inbound.mllp_client import MllpClient, msa
from tests.matrix_helpers import (
    accept_invite,
    admin,
    admin_token,
    delete_room,
    send_text,
    skip_seen,
    sync,
    wait_for_event,
)

pytestmark = [pytest.mark.matrix, pytest.mark.db]
BUSY = SYNC_FILTER["room"]["timeline"]["limit"] + 10


# --------------------------------------------------------------------------- helpers

def adt_a01(patient_id: str, control_id: str) -> bytes:
    ts = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    segments = [f"MSH|^~\\&|GAM|CHU-X|RELAIS|DAC|{ts}||ADT^A01^ADT_A01|{control_id}|P|2.5",
                f"EVN||{ts}||||{ts}",
                f"PID|1||{patient_id}^^^CHU-X^PI||DUPONT^JEANNE||19380514|F",
                "PV1|1|I|Gériatrie^^^CHU-X"]
    return ("\r".join(segments) + "\r").encode()


async def outbox_states(hub: Hub, key_prefix: str) -> list[str]:
    assert hub.relais is not None
    async with hub.relais.db.unit() as uow:
        rows = await uow.session.execute(select(OutboxRow.state).where(OutboxRow.key.like(f"{key_prefix}%"))
                                         .order_by(OutboxRow.id))
        return list(rows.scalars())


# --------------------------------------------------------------------------- outbox


async def test_a_room_deleted_by_an_administrator_is_reported_and_never_delays_another(hub: Hub) -> None:
    await hub.setup()
    await hub.start()
    desk = await hub.desk()
    gone_ref, gone_room = await hub.open_case(desk=desk, text='!new "Jeanne Dupont" --id CHU-X:ISO-GONE')
    kept_ref, kept_room = await hub.open_case(desk=desk, text='!new "Paul Martin" --id CHU-X:ISO-KEPT')
    cm = await hub.client("cm")
    await delete_room(hub.synapse, await admin_token(hub.synapse), gone_room)
    # As seen on a live system: the hub restarts after the deletion (the room is unknown to it now).
    await hub.stop()
    relais = await hub.start()
    assert relais.mllp_port is not None

    mllp = await MllpClient.connect(relais.mllp_port)
    try:  # the deleted room's alert is queued first
        assert msa(await mllp.send(adt_a01("ISO-GONE", "GONE-1")))[0] == "AA"
        assert msa(await mllp.send(adt_a01("ISO-KEPT", "KEPT-1")))[0] == "AA"
    finally:
        await mllp.close()

    alert = await wait_for_event(cm, kept_room, is_notice("alert.admission", hub.bot), timeout=60)
    assert content_of(alert)["fr.relais.case"] == kept_ref
    report = await wait_for_event(cm, desk, is_notice("delivery.failed", hub.bot), timeout=60)
    content = content_of(report)
    assert content["msgtype"] == "m.text"  # m.notice would be silenced by .m.rule.suppress_notices
    assert content["m.mentions"] == {"user_ids": [hub.user("cm")]}
    assert content["fr.relais.case"] == gone_ref and gone_ref in content["body"]
    assert "Jeanne" not in content["body"] and "DUPONT" not in content["body"].upper()
    # Every notice for the deleted room is set aside (never retried for ever), none left pending.
    async def settled() -> bool:
        return "pending" not in await outbox_states(hub, "alert:")

    await until(settled, "no alert notice pending", 60)
    states = await outbox_states(hub, "alert:")
    assert states == ["failed", "done"], states  # one message per hospital event (issue 15), each room
    # Commands in the other room are answered as usual.
    reply = await hub.command("cm", kept_room, "!team")
    assert kind_of(reply) == "command.reply"
    # (and a hospital message left unprocessed by a database hiccup is picked up within a minute)
    assert any(job.name == "alert-recovery" and job.interval_s <= 60 for job in relais.scheduler.jobs)


class SlowFirstSync(FaultProxy):
    """The first /sync after a start takes `slow_s` (a homeserver busy after an outage)."""

    slow_s = 0.0

    async def delay(self, request: web.Request) -> None:
        if self.slow_s and request.path.endswith("/sync"):
            slow, self.slow_s = self.slow_s, 0.0
            await asyncio.sleep(slow)


async def test_a_room_creation_cut_by_a_crash_never_makes_a_second_room(hub: Hub) -> None:
    proxy = SlowFirstSync(hub.synapse.url)
    await proxy.start()
    try:
        await _creation_cut_by_a_crash(hub, proxy)
    finally:
        await hub.stop()
        await proxy.stop()


async def _creation_cut_by_a_crash(hub: Hub, proxy: SlowFirstSync) -> None:
    await hub.setup(matrix={"homeserver": proxy.url})
    await hub.start()
    ref, room = await hub.open_case()
    await hub.stop()
    # What a SIGKILL between createRoom's answer and the commit leaves: the creation counted as
    # tried and still pending, no room recorded for the file.
    db = Database(hub.db_url)
    try:
        async with db.unit() as uow:
            await uow.session.execute(update(OutboxRow).where(OutboxRow.action == "create_room")
                                      .values(state="pending", event_id=None))
            await uow.session.execute(update(PersonRow).where(PersonRow.case_ref == ref).values(room_id=None))
    finally:
        await db.close()
    proxy.slow_s = 3.0  # the outbox is ready long before the first sync lists the bot's rooms
    relais = await hub.start()

    async def created() -> bool:
        async with relais.db.unit() as uow:
            rows = await uow.session.execute(select(OutboxRow.state).where(OutboxRow.action == "create_room"))
            return list(rows.scalars()) == ["done"]

    await until(created, "the room creation done again", 60)
    async with relais.db.unit() as uow:
        person = await uow.persons.get(ref)
    assert person is not None and person.room_id == room  # found by its marker, not made again


async def test_commands_typed_during_an_outage_in_a_busy_room_are_answered(hub: Hub) -> None:
    await hub.setup()
    await hub.start()
    desk = await hub.desk()
    await hub.stop()
    cm = await hub.client("cm")
    await skip_seen(cm, desk)
    await send_text(cm, desk, "!help")
    for i in range(BUSY):  # more than the sync filter's timeline: the next sync is `limited`
        await send_text(cm, desk, f"note {i}")
    relais = await hub.start()
    reply = await wait_for_event(cm, desk, is_notice("command.reply", hub.bot), timeout=60)
    assert kind_of(reply) == "command.reply"
    assert relais.intake.commands_handled == 1


# --------------------------------------------------------------------------- intake


async def test_a_poisoned_event_does_not_stop_the_next_command(hub: Hub) -> None:
    await hub.setup()
    relais = await hub.start()
    desk = await hub.desk()
    cm = await hub.client("cm")
    await relais.stop()
    hub.relais = None
    # While the hub is away: a desk invite it will never be able to join (the room blocked by the
    # administrator), then a command in the existing desk, in the same sync batch.
    created = await cm.room_create(is_direct=True, invite=[hub.bot])
    assert isinstance(created, nio.RoomCreateResponse), created
    await admin(hub.synapse, await admin_token(hub.synapse), "PUT",
                f"/_synapse/admin/v1/rooms/{created.room_id}/block", {"block": True})
    await skip_seen(cm, desk)
    await send_text(cm, desk, "!help")
    relais = await hub.start()

    first = await wait_for_event(cm, desk, is_notice("command.reply", hub.bot), timeout=60)
    assert kind_of(first) == "command.reply"

    async def set_aside() -> bool:
        async with relais.db.unit() as uow:
            return await uow.intake_dead.count() > 0

    await until(set_aside, "the invite set aside", 60)
    async with relais.db.unit() as uow:
        dead = await uow.intake_dead.entries()
    assert dead == [(f"invite:{created.room_id}", created.room_id, "MatrixError", 3)]
    # The sync moved on: the next command is answered, and the invite is not tried again.
    reply = await hub.command("cm", desk, "!caseload")
    assert kind_of(reply) == "command.reply"
    assert relais.intake.dead_letters == 1


async def test_a_command_that_keeps_failing_is_set_aside_and_its_sender_told(hub: Hub) -> None:
    await hub.setup()
    relais = await hub.start()
    desk = await hub.desk()
    real = relais.intake.dispatcher

    class HandlerBug:
        """The real dispatcher, but `!caseload` hits a bug every time (not a DomainError)."""

        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        async def handle(self, event_id: str, sender: str, room_id: str, content: Any) -> bool:
            if "!caseload" in str(content):
                raise RuntimeError("a bug in a handler")
            return await real.handle(event_id, sender, room_id, content)

    relais.intake.dispatcher = HandlerBug()  # type: ignore[assignment]
    cm = await hub.client("cm")
    await skip_seen(cm, desk)
    event_id = await send_text(cm, desk, "!caseload")
    told = await wait_for_event(cm, desk, is_notice("command.error", hub.bot), timeout=90)
    content = told.source["content"]
    assert content["m.mentions"] == {"user_ids": [hub.user("cm")]}
    assert "!caseload" not in told.body and ("traitée" in told.body or "processed" in told.body)
    async with relais.db.unit() as uow:
        assert [e[0] for e in await uow.intake_dead.entries()] == [event_id]
    reply = await hub.command("cm", desk, "!help")  # the sync moved on
    assert kind_of(reply) == "command.reply"


# --------------------------------------------------------------------------- readiness


class SendFailures(FaultProxy):
    """While `failing`, every room message gets a 502 from this 'load balancer'; /sync still works."""

    failing = False

    def fault(self, request: web.Request) -> web.Response | None:
        if self.failing and "/send/" in request.path:
            return web.json_response({"errcode": "M_UNKNOWN", "error": "Bad gateway"}, status=502)
        return None


async def readyz(port: int) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/readyz") as resp:
        return resp.status, await resp.json()


async def metric(port: int, name: str) -> float:
    """The sum of a Prometheus metric's samples whose line starts with `name` (labels included),
    read from the admin listener's /metrics."""
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/metrics") as resp:
        text = await resp.text()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


async def until_ready(port: int, ready: bool, deadline_s: float = 60.0) -> dict[str, Any]:
    end = time.monotonic() + deadline_s
    while True:
        status, body = await readyz(port)
        if (status == 200) == ready:
            assert body["ready"] is ready
            return body
        assert time.monotonic() < end, body
        await asyncio.sleep(0.2)


async def test_readiness_goes_red_while_notices_wait_then_green(hub: Hub) -> None:
    proxy = SendFailures(hub.synapse.url)
    await proxy.start()
    try:
        await hub.setup(matrix={"homeserver": proxy.url}, health={"stall_after_s": 2})
        relais = await hub.start()
        desk = await hub.desk()
        assert relais.http_port is not None and relais.admin_port is not None
        port, admin_port = relais.http_port, relais.admin_port
        assert await until_ready(port, True) == {"ready": True, "database": True, "homeserver": True,
                                                 "outbox": True, "intake": True}
        sent_before = await metric(admin_port, "relais_outbox_sent_total")
        answered_before = await metric(admin_port, 'relais_commands_total{outcome="answered"}')

        proxy.failing = True
        cm = await hub.client("cm")
        await skip_seen(cm, desk)
        await send_text(cm, desk, "!help")
        red = await until_ready(port, False)
        # Only the outbox is stuck: the homeserver answers syncs and intake moves on.
        assert red == {"ready": False, "database": True, "homeserver": True, "outbox": False, "intake": True}
        assert await metric(admin_port, "relais_outbox_oldest_pending_seconds") > 2
        assert await metric(admin_port, 'relais_commands_total{outcome="answered"}') == answered_before + 1
        assert proxy.faults["send"] >= 1

        proxy.failing = False
        await until_ready(port, True, deadline_s=120)
        await wait_for_event(cm, desk, is_notice("command.reply", hub.bot), timeout=60)
        assert await metric(admin_port, "relais_outbox_sent_total") > sent_before
        assert await metric(admin_port, "relais_outbox_oldest_pending_seconds") == 0
    finally:
        await hub.stop()
        await proxy.stop()


# --------------------------------------------------------------------------- room keys


class DroppedKeyShares(FaultProxy):
    """Drops the connection of the next `drop` to-device requests carrying olm-encrypted room keys
    (as a load balancer restarting mid-request would). Each of nio's three tries of a request is
    sent twice by aiohttp (it retries an idempotent request once on a reused connection closed)."""

    drop = 0

    def fault(self, request: web.Request) -> web.Response | None:
        if self.drop and "/sendToDevice/m.room.encrypted/" in request.path:
            self.drop -= 1
            return DROP
        return None


async def test_a_room_key_share_lost_on_a_dropped_connection_is_made_again(hub: Hub) -> None:
    proxy = DroppedKeyShares(hub.synapse.url)
    await proxy.start()
    try:
        await hub.setup(matrix={"homeserver": proxy.url})
        await hub.start()
        _ref, room = await hub.open_case()
        cm, gp = await hub.client("cm"), await hub.client("gp")
        # The invite of a new member rotates the room key: the next notice shares a new one. Every
        # try nio makes of that share loses its connection.
        proxy.drop = 6
        await send_text(cm, room, f"!team add {hub.user('gp')} gp")
        await accept_invite(gp, room)
        for client in (cm, gp):
            update = await wait_for_event(client, room, is_notice("team.update", hub.bot), timeout=90)
            assert isinstance(update, nio.RoomMessage), update  # decrypted: the key reached this device
        assert proxy.drop == 0 and proxy.faults["send"] == 6
        # And the notices after it are readable too.
        reply = await hub.command("gp", room, "!team")
        assert kind_of(reply) == "command.reply"
    finally:
        await hub.stop()
        await proxy.stop()


async def test_a_desk_its_owner_left_is_not_posted_into_unread(hub: Hub) -> None:
    """A case manager leaves their desk (Element's "Leave room"): Synapse accepts every later post
    there, read by nobody. The bot invites them back into the same desk, where what it posted
    meanwhile is readable and their commands are answered."""
    await hub.setup()
    await hub.start()
    desk = await hub.desk()
    cm = await hub.client("cm")
    assert isinstance(await cm.room_leave(desk), nio.RoomLeaveResponse)

    async def invited_back() -> bool:
        await sync(cm)
        return desk in cm.invited_rooms

    await until(invited_back, "the desk's owner invited back into it", 60)
    await accept_invite(cm, desk)
    reply = await hub.command("cm", desk, "!file-active")
    assert kind_of(reply) == "command.reply"


ENCRYPTED = {"type": "m.room.encryption", "state_key": "", "content": {"algorithm": "m.megolm.v1.aes-sha2"}}


def member_is(user: str, membership: str) -> Any:
    return lambda e: isinstance(e, nio.RoomMemberEvent) and e.state_key == user and e.membership == membership


async def _own_desk(hub: Hub, relais: Any) -> str:
    """The case manager opens a desk of their own (they administer it: they can remove the bot)."""
    cm = await hub.client("cm")
    made = await cm.room_create(is_direct=True, invite=[hub.bot], initial_state=[ENCRYPTED],
                                preset=nio.RoomPreset.private_chat)
    assert isinstance(made, nio.RoomCreateResponse), made
    await wait_for_event(cm, made.room_id, member_is(hub.bot, "join"), timeout=60)

    async def adopted() -> bool:
        async with relais.db.read() as uow:
            return bool(await uow.desks.room_of(hub.user("cm")) == made.room_id)

    await until(adopted, "the room adopted as the desk", 60)
    return str(made.room_id)


async def _notice_for_the_desk(hub: Hub, relais: Any, key: str) -> None:
    from hub.domain.effects import Notify
    from hub.services.outbox import enqueue

    async with relais.db.unit() as uow:
        await enqueue(uow, key, [Notify("test.after_kick", "", "desk.closed", {}, desk=hub.user("cm"))],
                      relais.clock.now())
    relais.outbox.wake()


async def test_a_desk_its_owner_removed_the_bot_from_is_opened_anew_once(hub: Hub) -> None:
    """The owner of a desk they opened themself kicks the bot out of it: every later post there
    would fail. A new desk is opened, the owner invited, and what was meant for the desk arrives
    there, readable. Kicked again the same day, the bot reports to the pilots, not a new desk."""
    await hub.setup(case_managers=("cm",), pilots=("pilot",))
    relais = await hub.start()
    pilot_desk = await hub.desk("pilot")
    first = await hub.desk("cm")
    own = await _own_desk(hub, relais)
    cm = await hub.client("cm")

    kicked = await cm.room_kick(own, hub.bot, "no bot here")
    assert isinstance(kicked, nio.RoomKickResponse), kicked
    await _notice_for_the_desk(hub, relais, "test-after-kick:1")  # sent or seen first: either way

    new_desk = await hub.invited_room(cm)
    assert new_desk not in (first, own)
    await accept_invite(cm, new_desk)
    notice = await wait_for_event(cm, new_desk, is_notice("test.after_kick", hub.bot), timeout=60)
    assert isinstance(notice, nio.RoomMessage), notice  # decrypted (not a MegolmEvent): its key reached the owner
    async def delivered() -> bool:  # the members' sync may show it before the send's `done` is committed
        return await outbox_states(hub, "test-after-kick:") == ["done"]

    await until(delivered, "the notice's entry done", 15)
    async with relais.db.read() as uow:
        assert await uow.desks.room_of(hub.user("cm")) == new_desk
    reply = await hub.command("cm", new_desk, "!file-active")
    assert kind_of(reply) == "command.reply"

    # The owner opens another desk of their own and kicks the bot again, the same day.
    again = await _own_desk(hub, relais)
    kicked = await cm.room_kick(again, hub.bot, "still no bot")
    assert isinstance(kicked, nio.RoomKickResponse), kicked
    await wait_for_event(cm, again, member_is(hub.bot, "leave"), timeout=60)
    await _notice_for_the_desk(hub, relais, "test-after-kick:2")
    report = await wait_for_event(await hub.client("pilot"), pilot_desk, is_notice("delivery.failed", hub.bot),
                                  timeout=90)
    assert "test.after_kick" in report.body, report.body  # what failed, no content
    assert await outbox_states(hub, "test-after-kick:") == ["done", "failed"]
    async with relais.db.read() as uow:
        assert await uow.desks.room_of(hub.user("cm")) == again  # not made anew in a loop
        assert not await uow.outbox.renewing_desk(hub.user("cm"))
    await sync(cm)
    assert not [r for r, room in cm.invited_rooms.items() if room.inviter == hub.bot]
