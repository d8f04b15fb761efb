"""A desk adopted as private stays private: someone else entering it closes it and opens a new
one (review r16 of issue 17 §3). On a real database, each backend."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from hub.clock import FakeClock
from hub.commands.context import Settings
from hub.commands.dispatcher import Dispatcher
from hub.commands.registry import build_registry
from hub.domain.caseload import Limits
from hub.services.desks import DeskGuard, adopt_desk
from hub.storage.database import Database

pytestmark = pytest.mark.db
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
CM, DESK = "@cm:x", "!desk:x"


class Directory:
    async def user_exists(self, user_id: str) -> bool:
        return True


@pytest.mark.parametrize("change", ["invite", "join", "knock"])
async def test_someone_else_entering_a_desk_closes_it_and_opens_a_new_one(database: Database, change: str) -> None:
    await adopt_desk(database, CM, "case_manager", DESK)
    clock = FakeClock(T0)
    woken: list[bool] = []
    guard = DeskGuard(database, clock, on_enqueued=lambda: woken.append(True))
    await guard.on_membership(DESK, "$own", CM, "join")  # the owner themself: nothing
    await guard.on_membership(DESK, "$leave", "@other:x", "leave")
    await guard.on_membership("!elsewhere:x", "$e", "@other:x", change)  # not a desk
    assert woken == []
    await guard.on_membership(DESK, "$in", "@other:x", change)
    await guard.on_membership(DESK, "$in", "@other:x", change)  # replayed after a restart: once
    assert woken == [True]
    async with database.unit() as uow:
        assert await uow.desks.owner(DESK) is None
        assert await uow.desks.room_of(CM) is None
        entries = await uow.outbox.pending(T0 + timedelta(days=1))
    assert [(e.action, e.payload.get("message")) for e in entries] == [
        ("notify", "desk.not_private"), ("leave", None), ("create_desk", None), ("notify", "desk.welcome")]
    assert entries[0].payload["params"] == {}  # nothing of the desk's content in the room left
    # A command typed in the old room afterwards is not answered there.
    settings = Settings(language="fr", bot_user="@bot:x", allowed_servers=("x",), limits=Limits(40, 60, 5),
                        case_managers=(CM,), pilots=())
    dispatcher = Dispatcher(database, build_registry(), settings, clock, Directory())
    assert not await dispatcher.handle("$cmd", CM, DESK, {"msgtype": "m.text", "body": "!file-active"})


@pytest.mark.parametrize("change", ["left", "declined"])
async def test_a_desk_its_owner_left_invites_them_back(database: Database, change: str) -> None:
    """Matrix accepts every post in a room its only reader left: nothing would ever fail, and
    reminders, replies and `delivery.failed` reports would be lost without anyone told."""
    await adopt_desk(database, CM, "case_manager", DESK)
    guard = DeskGuard(database, FakeClock(T0))
    await guard.on_membership(DESK, "$other", "@other:x", change)  # not its owner: nothing
    await guard.on_membership(DESK, "$gone", CM, change)
    await guard.on_membership(DESK, "$gone", CM, change)  # replayed after a restart: once
    async with database.unit() as uow:
        assert await uow.desks.room_of(CM) == DESK  # the same desk: what was posted stays readable
        entries = await uow.outbox.pending(T0 + timedelta(days=1))
    assert [(e.action, e.payload, e.lane) for e in entries] == [
        ("invite_desk", {"desk": CM, "user_id": CM}, f"desk:{CM}")]


async def test_a_referrer_room_its_referrer_left_is_given_up(database: Database) -> None:
    from hub.services.referrals import adopt_referrer_room

    referrer, room = "@dr.x:x", "!ref:x"
    await adopt_referrer_room(database, room, referrer, T0)
    guard = DeskGuard(database, FakeClock(T0))
    await guard.on_membership(room, "$gone", referrer, "left")
    async with database.unit() as uow:
        assert await uow.referrals.referrer_of(room) is None  # decisions wait for their next room
        entries = await uow.outbox.pending(T0 + timedelta(days=1))
    assert [(e.action, e.payload) for e in entries] == [("leave", {"room_id": room})]
