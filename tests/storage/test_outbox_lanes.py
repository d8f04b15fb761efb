"""The outbox's lanes on the selected backend: order per room, rooms independent, retry state
per entry, dead letters that keep no content."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

import hub
from hub.bots.content import ACTION_KINDS
from hub.bots.outbox import OutboxWorker
from hub.clock import FakeClock
from hub.domain.effects import CreateDesk, CreateRoom, Invite, Notify
from hub.domain.persons import Person
from hub.i18n.catalog import Catalog
from hub.services.outbox import ACTIONS, dead_letter, enqueue
from hub.storage.database import Database
from hub.storage.models import OutboxRow

pytestmark = pytest.mark.db
NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


async def _two_files(database: Database) -> None:
    async with database.unit() as uow:
        for ref, room in (("R-2026-0001", "!a:x"), ("R-2026-0002", None)):
            await uow.persons.add(Person(ref, "Jeanne Dupont", "@cm:x", NOW))
            if room:
                await uow.persons.set_room(ref, room)
        await uow.desks.ensure("@cm:x", "case_manager")
        await uow.desks.set_room("@cm:x", "!desk:x")
        await enqueue(uow, "open:1", [CreateRoom("R-2026-0002"), Invite("R-2026-0002", "@gp:x")], NOW)
        await enqueue(uow, "alert:1", [Notify("alert.admission", "R-2026-0001", "alert.admission",
                                              {"name": "Jeanne Dupont"}, mentions=("@cm:x",))], NOW)
        # A command reply names its room: it joins the lane of the file whose room that is.
        await enqueue(uow, "cmd:$e", [Notify("command.reply", "R-2026-0001", "reply.team", room_id="!a:x")], NOW)
        await enqueue(uow, "cmd:$d", [Notify("command.reply", "", "reply.done", room_id="!desk:x")], NOW)
        await enqueue(uow, "cmd:$o", [Notify("command.reply", "", "reply.done", room_id="!other:x")], NOW)


async def test_one_head_per_room_in_order(database: Database) -> None:
    await _two_files(database)
    async with database.unit() as uow:
        heads = await uow.outbox.due_heads(NOW)
        lanes = {h.lane: h.key for h in heads}
        first_of_a = await uow.outbox.head_of("case:R-2026-0001", NOW)
    assert lanes == {"case:R-2026-0002": "open:1:0", "case:R-2026-0001": "alert:1:0", "desk:@cm:x": "cmd:$d:0",
                     "room:!other:x": "cmd:$o:0"}
    assert first_of_a is not None and first_of_a.key == "alert:1:0"
    assert [h.id for h in heads] == sorted(h.id for h in heads)  # oldest first


async def test_a_room_waiting_for_a_retry_holds_only_its_own_lane(database: Database) -> None:
    await _two_files(database)
    async with database.unit() as uow:
        head = await uow.outbox.head_of("case:R-2026-0002", NOW)
        assert head is not None
        await uow.outbox.retry_later(head.id, NOW + timedelta(seconds=30), "TransientError 502")
    async with database.unit() as uow:
        heads = {h.lane for h in await uow.outbox.due_heads(NOW)}
        waiting = await uow.outbox.head_of("case:R-2026-0002", NOW)
        later = await uow.outbox.head_of("case:R-2026-0002", NOW + timedelta(seconds=31))
        retry_at = await uow.outbox.next_retry_at()
        busy = {h.lane for h in await uow.outbox.due_heads(NOW, busy={"case:R-2026-0001"})}
    assert "case:R-2026-0002" not in heads and "case:R-2026-0001" in heads
    assert waiting is None  # the invite behind it waits too: order within the room is kept
    assert later is not None and later.key == "open:1:0" and later.attempts == 1
    assert retry_at == NOW + timedelta(seconds=30)
    assert "case:R-2026-0001" not in busy and "desk:@cm:x" in busy
    # The homeserver answers again after an outage: what waited on a retry goes now.
    async with database.unit() as uow:
        assert await uow.outbox.retry_all_now() == 1
    async with database.unit() as uow:
        now_due = await uow.outbox.head_of("case:R-2026-0002", NOW)
        assert await uow.outbox.next_retry_at() is None
    assert now_due is not None and now_due.attempts == 1  # the try stays counted


async def test_a_dead_letter_keeps_no_content_and_tells_the_referent_in_their_desk(database: Database) -> None:
    await _two_files(database)
    async with database.unit() as uow:
        alert = await uow.outbox.head_of("case:R-2026-0001", NOW)
        assert alert is not None
        told = await dead_letter(uow, alert, "RoomGone M_ROOM_GONE", NOW + timedelta(hours=1))
    async with database.unit() as uow:
        next_in_room = await uow.outbox.head_of("case:R-2026-0001", NOW)
        report = await uow.outbox.head_of("desk:@cm:x", NOW + timedelta(hours=2))
        reports = [e for e in await uow.outbox.pending(NOW + timedelta(hours=2), 100) if e.key.startswith("dead:")]
        failed = await uow.outbox.count("failed")
    assert told == "@cm:x"
    assert failed == 1
    assert next_in_room is not None and next_in_room.key == "cmd:$e:0"  # the room's next entry is not held
    assert report is not None and report.key == "cmd:$d:0"  # the desk's own order is kept
    assert len(reports) == 1
    payload = reports[0].payload
    assert payload["kind"] == "delivery.failed" and payload["desk"] == "@cm:x"
    assert payload["mentions"] == ["@cm:x"]
    assert payload["params"]["what"] == {"key": "delivery.what.alert.admission"}
    assert payload["params"]["case"] == "R-2026-0001" and payload["params"]["since"] == "2026-11-23T11:00+01:00"
    assert "Jeanne" not in str(payload)


async def test_a_failed_report_is_not_reported_again(database: Database) -> None:
    await _two_files(database)
    async with database.unit() as uow:
        alert = await uow.outbox.head_of("case:R-2026-0001", NOW)
        assert alert is not None
        await dead_letter(uow, alert, "RoomGone", NOW)
    async with database.unit() as uow:
        report = next(e for e in await uow.outbox.pending(NOW, 100) if e.key.startswith("dead:"))
        assert await dead_letter(uow, report, "RoomGone", NOW) is None
    async with database.unit() as uow:
        assert not [e for e in await uow.outbox.pending(NOW, 100) if e.key.startswith("dead:dead")]
        assert await uow.outbox.count("failed") == 2


async def test_a_failed_triage_notice_sets_aside_without_mentioning_a_desk_name(database: Database) -> None:
    # The triage room is no person's desk: "triage" is no user to mention (issue 19).
    async with database.unit() as uow:
        await uow.desks.ensure("triage", "triage")
        await enqueue(uow, "referral-new:1", [Notify("referral.new", "", "referral.new", {}, desk="triage")], NOW)
    async with database.unit() as uow:
        entry = await uow.outbox.head_of("desk:triage", NOW)
        assert entry is not None
        assert await dead_letter(uow, entry, "RoomGone", NOW) is None
    async with database.unit() as uow:
        assert await uow.outbox.pending(NOW, 100) == [] and await uow.outbox.count("failed") == 1


async def test_oldest_pending_since(database: Database) -> None:
    async with database.unit() as uow:
        assert await uow.outbox.oldest_pending_since() is None
    await _two_files(database)
    async with database.unit() as uow:
        assert await uow.outbox.oldest_pending_since() == NOW


async def test_intake_dead_letters_keep_ids_and_an_error_class(database: Database) -> None:
    async with database.unit() as uow:
        assert await uow.intake_dead.add("$ev", "!r:x", "MatrixError", 3, NOW) is True
        assert await uow.intake_dead.add("$ev", "!r:x", "MatrixError", 3, NOW) is False
    async with database.unit() as uow:
        assert await uow.intake_dead.has("$ev") and not await uow.intake_dead.has("$other")
        assert await uow.intake_dead.entries() == [("$ev", "!r:x", "MatrixError", 3)]


async def test_one_cause_keeps_its_order_across_rooms(database: Database) -> None:
    """`!new` answers in the desk only once the file's room is made and the referent invited."""
    async with database.unit() as uow:
        await uow.persons.add(Person("R-2026-0003", "Jeanne Dupont", "@cm:x", NOW))
        await enqueue(uow, "cmd:$new", [CreateRoom("R-2026-0003"), Invite("R-2026-0003", "@cm:x"),
                                        Notify("command.reply", "R-2026-0003", "reply.new", desk="@cm:x")], NOW)
        await enqueue(uow, "cmd:$help", [Notify("command.reply", "", "reply.done", desk="@cm:x")], NOW)
    async with database.unit() as uow:
        heads = [h.key for h in await uow.outbox.due_heads(NOW)]
        desk = await uow.outbox.head_of("desk:@cm:x", NOW)
        create = await uow.outbox.head_of("case:R-2026-0003", NOW)
        assert create is not None
        await uow.outbox.done(create.id, "!r:x")
        invite = await uow.outbox.head_of("case:R-2026-0003", NOW)
        assert invite is not None
        await dead_letter(uow, invite, "MatrixError 403 M_FORBIDDEN", NOW)
    async with database.unit() as uow:
        released = await uow.outbox.head_of("desk:@cm:x", NOW)
    assert heads == ["cmd:$new:0"]  # the desk's reply waits for the room; the later !help waits behind it
    assert desk is None
    assert released is not None and released.key == "cmd:$new:2"  # done or set aside, the cause moves on


async def _pilot(database: Database, user: str = "@pilot:x") -> None:
    async with database.unit() as uow:
        await uow.desks.ensure(user, "pilot")
        await uow.desks.set_room(user, f"!desk-{user[1:]}")


async def _dead_reports(database: Database) -> list[dict[str, object]]:
    async with database.unit() as uow:
        return [e.payload for e in await uow.outbox.pending(NOW + timedelta(days=1), 100) if e.key.startswith("dead:")]


async def test_when_the_referents_own_desk_fails_the_pilots_are_told(database: Database) -> None:
    await _two_files(database)
    await _pilot(database)
    async with database.unit() as uow:
        reply = await uow.outbox.head_of("desk:@cm:x", NOW)  # a reply posted in the referent's desk
        assert reply is not None and reply.key == "cmd:$d:0"
        told = await dead_letter(uow, reply, "RoomGone", NOW, ZoneInfo("Indian/Reunion"))
    assert told == "@pilot:x"
    (payload,) = await _dead_reports(database)
    assert payload["message"] == "delivery.failed_pilot" and payload["desk"] == "@pilot:x"
    assert payload["mentions"] == ["@pilot:x"]
    params = payload["params"]
    assert isinstance(params, dict)
    assert params["where"] == {"key": "delivery.where.desk", "params": {"owner": "@cm:x"}}
    assert params["what"] == {"key": "delivery.what.command.reply"}
    assert params["since"] == "2026-11-23T14:00+04:00"  # the territory's time (La Réunion, UTC+4)
    # The pilot's report failing in turn is the last resort: nobody else, no loop.
    async with database.unit() as uow:
        report = next(e for e in await uow.outbox.pending(NOW + timedelta(days=1), 100) if e.key.startswith("dead:"))
        assert await dead_letter(uow, report, "RoomGone", NOW) is None
    assert await _dead_reports(database) == []


async def test_a_failed_report_to_the_referent_goes_to_the_pilots(database: Database) -> None:
    await _two_files(database)
    await _pilot(database)
    await _pilot(database, "@pilot2:x")
    async with database.unit() as uow:
        alert = await uow.outbox.head_of("case:R-2026-0001", NOW)
        assert alert is not None
        assert await dead_letter(uow, alert, "RoomGone", NOW) == "@cm:x"
    async with database.unit() as uow:
        report = next(e for e in await uow.outbox.pending(NOW + timedelta(days=1), 100) if e.key.startswith("dead:"))
        told = await dead_letter(uow, report, "RoomGone", NOW)  # the referent's desk is gone too
    assert told is not None and set(told.split(", ")) == {"@pilot:x", "@pilot2:x"}
    reports = await _dead_reports(database)
    assert sorted(str(r["desk"]) for r in reports) == ["@pilot2:x", "@pilot:x"]
    assert all(r["params"]["where"] == {"key": "delivery.where.desk", "params": {"owner": "@cm:x"}}  # type: ignore[index]
               for r in reports)
    assert all(r["case_ref"] == "R-2026-0001" and "Jeanne" not in str(r) for r in reports)


async def test_a_failed_triage_notice_and_a_failed_desk_creation_are_told_to_the_pilots(database: Database) -> None:
    await _pilot(database)
    async with database.unit() as uow:
        await uow.desks.ensure("triage", "triage")
        await uow.desks.ensure("@cm3:x", "case_manager")
        await enqueue(uow, "referral-new:1", [Notify("referral.new", "", "referral.new", {}, desk="triage")], NOW)
        await enqueue(uow, "desk:@cm3:x", [CreateDesk("@cm3:x")], NOW)
    async with database.unit() as uow:
        triage = await uow.outbox.head_of("desk:triage", NOW)
        creation = await uow.outbox.head_of("desk:@cm3:x", NOW)
        assert triage is not None and creation is not None
        assert await dead_letter(uow, triage, "RoomGone", NOW) == "@pilot:x"
        assert await dead_letter(uow, creation, "MatrixError 403 M_FORBIDDEN", NOW) == "@pilot:x"
    places = [(r["params"]["where"], r["params"]["what"]) for r in await _dead_reports(database)]  # type: ignore[index]
    assert places == [({"key": "delivery.where.triage"}, {"key": "delivery.what.referral.new"}),
                      ({"key": "delivery.where.desk", "params": {"owner": "@cm3:x"}},
                       {"key": "delivery.what.create_desk"})]


def test_every_kind_and_action_has_a_word_in_the_failure_report() -> None:
    # A report must never show a raw catalog key: every notice kind the hub sends and every
    # outbox action has its `delivery.what.*` word, in French and in English.
    source = "\n".join(p.read_text(encoding="utf-8") for p in Path(hub.__file__).parent.rglob("*.py"))
    kinds = set(re.findall(r'Notify\(\s*"([a-z_]+\.[a-z_]+)"', source))
    kinds |= set(re.findall(r'^[A-Z_]*KIND = "([a-z_]+\.[a-z_]+)"', source, re.MULTILINE))
    kinds |= ACTION_KINDS
    assert {"alert.admission", "referral.new", "encryption.unreachable", "delivery.failed"} <= kinds
    whats = kinds | set(ACTIONS.values())
    for language in ("fr", "en"):
        catalog = Catalog(language)
        missing = sorted(w for w in whats if catalog.text(f"delivery.what.{w}") == f"delivery.what.{w}")
        assert missing == [], language


async def test_a_backlog_for_a_room_that_is_gone_is_one_report_and_holds_no_other_room(database: Database) -> None:
    """A thousand notices queued for a file whose room is gone (here: never made, its creation
    failed for good) are set aside together and told in ONE report — how many, of which kinds,
    since when — not a thousand mentions in the referent's desk; the other file's notice goes."""

    await _two_files(database)
    async with database.unit() as uow:
        head = await uow.outbox.head_of("case:R-2026-0002", NOW)
        assert head is not None and head.action == "create_room"
        await uow.outbox.failed(head.id, "MatrixError 400 M_UNKNOWN")  # its creation failed for good
        for i in range(1000):
            kind = "alert.admission" if i % 100 == 0 else "plan.update"
            await enqueue(uow, f"bulk:{i}", [Notify(kind, "R-2026-0002", "reply.done", {"n": i})], NOW)
    sent: list[str] = []
    bodies: dict[str, str] = {}

    class Client:
        connected = True

        async def display_names(self, room_id: str, user_ids: list[str]) -> dict[str, str]:
            return {}

        async def send(self, room_id: str, body: dict[str, object], txn: str) -> str:
            sent.append(room_id)
            bodies[room_id] = str(body["body"])
            return f"$e{len(sent)}"

        async def invite(self, room_id: str, user_id: str) -> None:
            raise AssertionError("the invite into a room that was never made is set aside, not tried")

    worker = OutboxWorker(database, Client(), Catalog("fr"), FakeClock(NOW))  # type: ignore[arg-type]
    await worker.drain()
    async with database.unit() as uow:
        reports = await uow.outbox.count("done")
        rows = await uow.session.execute(select(OutboxRow.payload).where(OutboxRow.key.like("dead:%")))
        payloads = list(rows.scalars())
        failed = await uow.outbox.count("failed")
    assert failed == 1 + 1 + 1000  # the creation, the invite behind it, the backlog
    assert len(payloads) == 1, len(payloads)  # one report (was one per entry: 1 001 mentions)
    assert payloads[0]["message"] == "delivery.failed_many" and payloads[0]["kind"] == "delivery.failed"
    assert "!a:x" in sent and "!desk:x" in sent and reports == len(sent)  # the other rooms went
    text = bodies["!desk:x"]
    assert "1001 messages du dossier R-2026-0002" in text
    assert "admission" in text and "plan" in text.lower() and "invit" in text.lower()


async def test_a_notice_this_version_cannot_write_is_set_aside_at_once_and_told_truthfully(
        database: Database) -> None:
    """A notice queued by an earlier version whose phrase an upgrade removed was posted as its
    bare key (`alert.old_wording` shown to the team); one whose parameters broke the text failed
    for an hour holding its room, then was reported as "server unreachable"."""
    async with database.unit() as uow:
        await uow.persons.add(Person("R-2026-0001", "Jeanne Dupont", "@cm:x", NOW))
        await uow.persons.set_room("R-2026-0001", "!a:x")
        await uow.desks.ensure("@cm:x", "case_manager")
        await uow.desks.set_room("@cm:x", "!desk:x")
        await enqueue(uow, "old:1", [Notify("alert.admission", "R-2026-0001", "alert.old_wording", {})], NOW)
        await enqueue(uow, "old:2", [Notify("alert.cancelled", "R-2026-0001", "alert.old_cancelled", {})], NOW)
        await enqueue(uow, "new:1", [Notify("command.reply", "R-2026-0001", "reply.done", room_id="!a:x")], NOW)
    bodies: list[tuple[str, str]] = []

    class Client:
        connected = True

        async def display_names(self, room_id: str, user_ids: list[str]) -> dict[str, str]:
            return {}

        async def send(self, room_id: str, body: dict[str, object], txn: str) -> str:
            bodies.append((room_id, str(body["body"])))
            return f"$e{len(bodies)}"

    worker = OutboxWorker(database, Client(), Catalog("fr"), FakeClock(NOW))  # type: ignore[arg-type]
    await worker.drain()
    async with database.unit() as uow:
        failed = await uow.outbox.count("failed")
        rows = await uow.session.execute(select(OutboxRow.attempts).where(OutboxRow.key.like("old:%")))
        attempts = list(rows.scalars())
    assert failed == 2 and attempts == [0, 0]  # set aside at the first try, never retried
    assert not any("old_wording" in text or "old_phrase" in text for _room, text in bodies)
    assert ("!a:x", "C'est fait.") in bodies  # the room's next notice went
    reports = [text for room, text in bodies if room == "!desk:x"]
    assert reports and all("composer ce message" in text for text in reports)
