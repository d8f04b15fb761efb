"""The dispatcher on a real database (each backend): edits run at most once, answers follow the thread,
an undecryptable message is reported once an hour (issue 16 §4, §5, §7)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hub.clock import FakeClock
from hub.commands.context import Settings
from hub.commands.dispatcher import Dispatcher
from hub.commands.registry import build_registry
from hub.domain.caseload import Limits
from hub.services.desks import adopt_desk
from hub.storage.database import Database

pytestmark = pytest.mark.db
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
CM, DESK = "@cm:x", "!desk:x"


class Directory:
    async def user_exists(self, user_id: str) -> bool:
        return True


def edit(original: str, text: str) -> dict[str, Any]:
    return {"msgtype": "m.text", "body": f"* {text}", "m.new_content": {"msgtype": "m.text", "body": text},
            "m.relates_to": {"rel_type": "m.replace", "event_id": original}}


async def _notices(database: Database) -> list[dict[str, Any]]:
    async with database.unit() as uow:
        entries = await uow.outbox.pending(T0 + timedelta(days=1))
    return [e.payload for e in entries if e.action == "notify"]


@pytest.fixture
async def dispatcher(database: Database) -> tuple[Dispatcher, FakeClock]:
    await adopt_desk(database, CM, "case_manager", DESK)
    clock = FakeClock(T0)
    settings = Settings(language="fr", bot_user="@bot:x", allowed_servers=("x",), limits=Limits(40, 60, 5),
                        case_managers=(CM,), pilots=())
    return Dispatcher(database, build_registry(), settings, clock, Directory()), clock


async def test_an_edit_runs_only_when_the_command_was_refused_and_never_twice(
        database: Database, dispatcher: tuple[Dispatcher, FakeClock]) -> None:
    d, _ = dispatcher
    assert await d.handle("$accepted", CM, DESK, {"msgtype": "m.text", "body": "!file-active"})
    assert await d.handle("$edit1", CM, DESK, edit("$accepted", "!aide"))
    assert await d.handle("$refused", CM, DESK, {"msgtype": "m.text", "body": "!nouveau"})
    assert await d.handle("$edit2", CM, DESK, edit("$refused", "!nouveau « Paulette Exemple »"))
    assert await d.handle("$edit3", CM, DESK, edit("$refused", "!nouveau « Paulette Autre »"))
    assert not await d.handle("$edit2", CM, DESK, edit("$refused", "!nouveau « Paulette Exemple »"))
    messages = [n["message"] for n in await _notices(database)]
    assert messages == ["reply.caseload", "command.edit_not_run", "error.missing_argument",
                        "team.opened", "reply.new", "command.edit_not_run"]
    async with database.unit() as uow:
        assert await uow.persons.next_sequence(2026) == 2  # one file opened, not two


async def test_answers_to_a_thread_command_go_to_the_thread(
        database: Database, dispatcher: tuple[Dispatcher, FakeClock]) -> None:
    d, _ = dispatcher
    thread = {"rel_type": "m.thread", "event_id": "$root", "is_falling_back": True,
              "m.in_reply_to": {"event_id": "$root"}}
    assert await d.handle("$t1", CM, DESK, {"msgtype": "m.text", "body": "!aide", "m.relates_to": thread})
    assert await d.handle("$t2", CM, DESK, {"msgtype": "m.text", "body": "!inconnue", "m.relates_to": thread})
    assert await d.handle("$main", CM, DESK, {"msgtype": "m.text", "body": "!aide"})
    placed = [(n["thread_root"], n["in_reply_to"]) for n in await _notices(database)]
    assert placed == [("$root", "$t1"), ("$root", "$t2"), (None, None)]


async def test_an_undecryptable_message_is_reported_once_an_hour_to_its_sender_only_in_our_rooms(
        database: Database, dispatcher: tuple[Dispatcher, FakeClock]) -> None:
    d, clock = dispatcher
    assert await d.undecryptable("$u1", CM, DESK, thread_root="$root")
    assert not await d.undecryptable("$u2", CM, DESK)  # a minute later: not again
    clock.advance(timedelta(hours=1))
    assert not await d.undecryptable("$u1", CM, DESK)  # the same event: claimed once
    assert await d.undecryptable("$u3", CM, DESK)
    assert not await d.undecryptable("$u4", "@other:x", DESK)  # not the desk's owner
    assert not await d.undecryptable("$u5", CM, "!unknown:x")
    notices = await _notices(database)
    assert [(n["message"], n["mentions"], n["thread_root"]) for n in notices] == [
        ("error.undecryptable", [CM], "$root"), ("error.undecryptable", [CM], None)]
    assert all(set(n["params"]) == {"sender"} for n in notices)  # nothing of the content


async def test_an_edit_of_a_command_with_the_longest_event_id(
        database: Database, dispatcher: tuple[Dispatcher, FakeClock]) -> None:
    d, _ = dispatcher
    original = "$" + "e" * 254  # event ids may take 255 bytes (Matrix spec, "Event IDs")
    assert await d.handle(original, CM, DESK, {"msgtype": "m.text", "body": "!file-active"})
    assert await d.handle("$edit", CM, DESK, edit(original, "!aide"))
    assert [n["message"] for n in await _notices(database)] == ["reply.caseload", "command.edit_not_run"]


CM2, DESK2, ROOM = "@cm2:x", "!desk2:x", "!person:x"


async def _two_rooms(database: Database, d: Dispatcher) -> str:
    """A second case manager's desk, and a person's room where CM manages the file."""
    await adopt_desk(database, CM2, "case_manager", DESK2)
    d.settings = replace(d.settings, case_managers=(CM, CM2))
    assert await d.handle("$open", CM, DESK, {"msgtype": "m.text", "body": "!nouveau « Paulette Exemple »"})
    async with database.unit() as uow:
        await uow.persons.set_room("R-2026-0001", ROOM)
    return "R-2026-0001"


async def test_an_edit_from_someone_else_or_from_another_room_never_runs_nor_blocks_the_author(
        database: Database, dispatcher: tuple[Dispatcher, FakeClock]) -> None:
    """Synapse accepts an m.replace from anyone, pointing at any event id (Matrix spec, "Event
    replacements": the receiver must check the sender). Review r16."""
    d, _ = dispatcher
    await _two_rooms(database, d)
    assert await d.handle("$refused", CM, DESK, {"msgtype": "m.text", "body": "!nouveau"})
    # Someone else's edit of CM's refused command: not run, and it must not mark it as accepted.
    assert await d.handle("$x1", CM2, DESK2, edit("$refused", "!nouveau « Autre Personne »"))
    # The author's own edit, but sent in another room: not run either.
    assert await d.handle("$x2", CM, ROOM, edit("$refused", "!nouveau « Autre Personne »"))
    # CM's accepted command edited by CM2: not run, and not told "already carried out".
    assert await d.handle("$x3", CM2, DESK2, edit("$open", "!file-active"))
    # The author corrects their own command where they typed it: it runs, once.
    assert await d.handle("$fix", CM, DESK, edit("$refused", "!nouveau « Paulette Seconde »"))
    messages = [n["message"] for n in await _notices(database)]
    assert messages == ["team.opened", "reply.new", "error.missing_argument", "command.edit_not_theirs",
                        "command.edit_not_theirs", "command.edit_not_theirs", "team.opened", "reply.new"]
    async with database.unit() as uow:
        assert await uow.persons.next_sequence(2026) == 3  # Paulette Exemple and Paulette Seconde only
        assert (await uow.persons.get("R-2026-0002")).display_name == "Paulette Seconde"  # type: ignore[union-attr]


async def test_an_edit_of_a_message_that_was_not_a_command_does_not_run(
        database: Database, dispatcher: tuple[Dispatcher, FakeClock]) -> None:
    d, _ = dispatcher
    assert not await d.handle("$chat", CM, DESK, {"msgtype": "m.text", "body": "bonjour"})
    assert await d.handle("$e", CM, DESK, edit("$chat", "!nouveau « Paulette Exemple »"))
    assert [n["message"] for n in await _notices(database)] == ["command.edit_not_theirs"]
    async with database.unit() as uow:
        assert await uow.persons.next_sequence(2026) == 1


async def test_an_edit_of_a_thread_command_is_answered_in_that_thread(
        database: Database, dispatcher: tuple[Dispatcher, FakeClock]) -> None:
    """The edit carries only its m.replace relation: the thread is the original's (review r16)."""
    d, _ = dispatcher
    thread = {"rel_type": "m.thread", "event_id": "$root", "is_falling_back": True,
              "m.in_reply_to": {"event_id": "$root"}}
    assert await d.handle("$t", CM, DESK, {"msgtype": "m.text", "body": "!nouveau", "m.relates_to": thread})
    assert await d.handle("$e1", CM, DESK, edit("$t", "!nouveau « Paulette Exemple »"))
    assert await d.handle("$e2", CM, DESK, edit("$t", "!nouveau « Paulette Autre »"))
    placed = [(n["message"], n["thread_root"], n["in_reply_to"]) for n in await _notices(database)]
    assert placed == [("error.missing_argument", "$root", "$t"), ("team.opened", None, None),
                      ("reply.new", "$root", "$e1"), ("command.edit_not_run", "$root", "$e2")]


@pytest.mark.parametrize(("text", "key"), [
    ("!nouveau ?", "error.missing_argument"), ("!nouveau .", "error.missing_argument"),
    ("!nouveau « … »", "error.bad_text"), ("!nouveau 123", "error.display_name"),
    ("!nouveau « 1938 » --naissance 1938-07-14", "error.display_name")])
async def test_a_name_without_a_letter_opens_no_file(
        database: Database, dispatcher: tuple[Dispatcher, FakeClock], text: str, key: str) -> None:
    d, _ = dispatcher
    assert await d.handle("$n", CM, DESK, {"msgtype": "m.text", "body": text})
    assert [n["message"] for n in await _notices(database)] == [key]
    async with database.unit() as uow:
        assert await uow.persons.next_sequence(2026) == 1


async def test_relative_dates_are_read_against_the_territory_s_date(
        database: Database, dispatcher: tuple[Dispatcher, FakeClock]) -> None:
    """23:30 UTC on 1 March is already 2 March in Paris: `demain` is 3 March (review r23)."""
    d, clock = dispatcher
    clock.set(datetime(2026, 3, 1, 23, 30, tzinfo=UTC))
    typed = "!nouveau « Paulette Exemple » --naissance demain"
    assert await d.handle("$born", CM, DESK, {"msgtype": "m.text", "body": typed})
    notice = (await _notices(database))[-1]
    assert notice["message"] == "error.birth_date" and notice["params"]["value"] == "2026-03-03"


async def test_an_exclamation_gets_no_answer_and_a_spaced_mark_runs(
        database: Database, dispatcher: tuple[Dispatcher, FakeClock]) -> None:
    """`!!! urgent` is a person exclaiming, not an unknown command; `! file-active` (a space some
    keyboards put after the mark) and `‼file-active` are the command (review r24)."""
    d, _ = dispatcher
    for n, text in enumerate(("!!! urgent", "! attention", "!?")):
        assert not await d.handle(f"$x{n}", CM, DESK, {"msgtype": "m.text", "body": text})
    assert await d.handle("$spaced", CM, DESK, {"msgtype": "m.text", "body": "! file-active"})
    assert await d.handle("$double", CM, DESK, {"msgtype": "m.text", "body": "‼file-active merci"})
    assert [n["message"] for n in await _notices(database)] == ["reply.caseload", "reply.caseload"]


async def test_help_with_courtesy_or_a_command_however_typed(
        database: Database, dispatcher: tuple[Dispatcher, FakeClock]) -> None:
    d, _ = dispatcher
    assert await d.handle("$h1", CM, DESK, {"msgtype": "m.text", "body": "!aide svp"})
    assert await d.handle("$h2", CM, DESK, {"msgtype": "m.text", "body": "!aide file active ?"})
    assert await d.handle("$h3", CM, DESK, {"msgtype": "m.text", "body": "!file active merci"})
    assert [n["message"] for n in await _notices(database)] == ["help.header", "help.detail", "reply.caseload"]
