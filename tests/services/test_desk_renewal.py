"""A desk the bot lost (its owner removed the bot, the room is gone) is opened anew, once per
loss and at most once a day per owner, only for someone still configured; what was waiting for
the old desk goes to the new one. On a real database, each backend."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from hub.clock import FakeClock
from hub.domain.effects import TRIAGE_DESK, Notify
from hub.services.desks import DeskGuard, adopt_desk
from hub.services.outbox import enqueue
from hub.storage.database import Database
from hub.storage.repositories import lane_of

pytestmark = pytest.mark.db
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
CM, DESK, OTHER = "@cm:x", "!desk:x", "!desk2:x"


async def _pending(database: Database) -> list[tuple[str, str, dict[str, object]]]:
    async with database.unit() as uow:
        entries = await uow.outbox.pending(T0 + timedelta(days=30))
    return [(e.action, e.lane, e.payload) for e in entries]


async def _waiting_notices(database: Database) -> None:
    """A notice for the desk and a reply naming its room, enqueued before the loss."""
    async with database.unit() as uow:
        await enqueue(uow, "rem:1", [Notify("reminder", "", "desk.welcome", {}, desk=CM)], T0)
        await enqueue(uow, "cmd:$c", [Notify("command.reply", "", "desk.welcome", {}, room_id=DESK)], T0)


def test_a_desk_made_anew_has_a_lane_of_its_own() -> None:
    assert lane_of("create_desk", None, {"user_id": CM}) == f"desk:{CM}"
    assert lane_of("create_desk", None, {"user_id": CM, "lost_room": DESK}) == f"desk-new:{CM}"


async def test_the_bot_removed_from_a_desk_opens_a_new_one_once(database: Database) -> None:
    await adopt_desk(database, CM, "case_manager", DESK)
    await _waiting_notices(database)
    woken: list[bool] = []
    guard = DeskGuard(database, FakeClock(T0), on_enqueued=lambda: woken.append(True), configured={CM})
    assert not await guard.bot_removed("!elsewhere:x", "$e", "kicked")  # not a desk
    assert not await guard.bot_removed(DESK, "$self", "left")  # the bot leaving on its own
    assert await guard.bot_removed(DESK, "$kick", "kicked")
    assert not await guard.bot_removed(DESK, "$kick", "kicked")  # replayed after a restart: once
    assert woken == [True]
    async with database.unit() as uow:
        assert await uow.desks.room_of(CM) is None  # the outbox sets the new room
        assert await uow.outbox.renewing_desk(CM)
    pending = await _pending(database)
    assert [(action, lane, payload.get("desk"), payload.get("room_id")) for action, lane, payload in pending] == [
        ("notify", f"desk:{CM}", CM, None),
        ("notify", f"desk:{CM}", CM, None),  # the reply to a command typed in the lost desk follows the desk
        ("create_desk", f"desk-new:{CM}", None, None),
        ("notify", f"desk:{CM}", CM, None),
    ]
    assert pending[2][2] == {"user_id": CM, "lost_room": DESK}
    assert pending[3][2]["message"] == "desk.welcome"
    # The send that finds the bot out of the old desk (its sync not read yet) makes no second one.
    async with database.unit() as uow:
        first = (await uow.outbox.pending(T0 + timedelta(days=1)))[0]
    assert await guard.unreachable(DESK, first.id)  # it waits for the new desk
    assert len(await _pending(database)) == 4


async def test_a_failed_send_opens_the_desk_anew_and_the_later_sync_adds_nothing(database: Database) -> None:
    await adopt_desk(database, CM, "case_manager", DESK)
    await _waiting_notices(database)
    guard = DeskGuard(database, FakeClock(T0), configured={CM})
    async with database.unit() as uow:
        first = (await uow.outbox.pending(T0 + timedelta(days=1)))[0]
    assert await guard.unreachable(DESK, first.id)
    assert not await guard.bot_removed(DESK, "$kick", "kicked")
    assert [a for a, _lane, _p in await _pending(database)] == ["notify", "notify", "create_desk", "notify"]


async def test_a_desk_lost_again_within_a_day_is_not_made_anew(database: Database) -> None:
    await adopt_desk(database, CM, "case_manager", DESK)
    clock = FakeClock(T0)
    guard = DeskGuard(database, clock, configured={CM})
    assert await guard.bot_removed(DESK, "$kick1", "kicked")
    await adopt_desk(database, CM, "case_manager", OTHER)  # the owner opens another desk themself
    clock.advance(timedelta(hours=23))
    before = await _pending(database)
    assert not await guard.bot_removed(OTHER, "$kick2", "banned")
    async with database.unit() as uow:
        assert await uow.desks.room_of(CM) == OTHER  # sends there fail and are reported as before
        entry = (await uow.outbox.pending(T0 + timedelta(days=1)))[0]
    assert not await guard.unreachable(OTHER, entry.id)
    assert await _pending(database) == before
    # A day after the last renewal, a loss (here seen by a failed send) is repaired again.
    clock.advance(timedelta(hours=2))
    assert await guard.unreachable(OTHER, entry.id)
    async with database.unit() as uow:
        assert await uow.desks.room_of(CM) is None
    assert [p.get("lost_room") for a, _l, p in await _pending(database) if a == "create_desk"] == [DESK, OTHER]


async def test_a_desk_is_not_made_anew_for_someone_no_longer_configured(database: Database) -> None:
    await adopt_desk(database, CM, "case_manager", DESK)
    await adopt_desk(database, TRIAGE_DESK, "triage", "!triage:x")
    guard = DeskGuard(database, FakeClock(T0), configured={"@someone-else:x"})
    assert not await guard.bot_removed(DESK, "$kick", "kicked")
    async with database.unit() as uow:
        assert await uow.desks.room_of(CM) == DESK
    assert await _pending(database) == []
    # The triage room is no one's desk: it is made anew (services/referrals.renew_triage).
    assert await guard.bot_removed("!triage:x", "$kick-t", "kicked")
    async with database.unit() as uow:
        assert await uow.desks.room_of(TRIAGE_DESK) is None and await uow.outbox.renewing_desk(TRIAGE_DESK)
