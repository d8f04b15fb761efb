"""The dispatcher's answer to commands as busy professionals type them (review r25), on a real
database: a wrong date is refused with nothing done; chat opened by an emphatic mark gets no answer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hub.clock import FakeClock
from hub.commands.context import Settings
from hub.commands.dispatcher import Dispatcher
from hub.commands.registry import build_registry
from hub.domain.caseload import Limits
from hub.i18n.catalog import Catalog
from hub.services.desks import adopt_desk
from hub.storage.database import Database

pytestmark = pytest.mark.db
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
CM, DESK = "@cm:x", "!desk:x"


class Directory:
    async def user_exists(self, user_id: str) -> bool:
        return True


async def _notices(database: Database) -> list[dict[str, Any]]:
    async with database.unit() as uow:
        entries = await uow.outbox.pending(T0 + timedelta(days=1))
    return [e.payload for e in entries if e.action == "notify"]


@pytest.fixture
async def dispatcher(database: Database) -> Dispatcher:
    await adopt_desk(database, CM, "case_manager", DESK)
    settings = Settings(language="fr", bot_user="@bot:x", allowed_servers=("x",), limits=Limits(40, 60, 5),
                        case_managers=(CM,), pilots=())
    return Dispatcher(database, build_registry(), settings, FakeClock(T0), Directory())


@pytest.mark.parametrize("typed", ["31 avril 1938", "30 février 1938", "31/04/1938", "29 février 1937"])
async def test_a_file_with_an_impossible_birth_date_is_not_opened(
        database: Database, dispatcher: Dispatcher, typed: str) -> None:
    assert await dispatcher.handle("$e", CM, DESK, {
        "msgtype": "m.text", "body": f"!nouveau « Paulette Exemple » --naissance {typed}"})
    [notice] = await _notices(database)
    assert (notice["kind"], notice["message"]) == ("command.error", "error.bad_date")
    text = Catalog("fr").text(notice["message"], **notice["params"])
    assert f"« {typed} » n'est pas une date valide : ce jour n'existe pas" in text
    assert notice["params"]["usage"].startswith("!nouveau ")
    async with database.unit() as uow:
        assert await uow.persons.next_sequence(2026) == 1  # no file opened


@pytest.mark.parametrize("typed", ["‼️ Plan B pour samedi", "❗️Attention", "!! Equipe au complet samedi"])
async def test_chat_opened_by_an_emphatic_mark_gets_no_answer(
        database: Database, dispatcher: Dispatcher, typed: str) -> None:
    assert not await dispatcher.handle("$e", CM, DESK, {"msgtype": "m.text", "body": typed})
    assert await _notices(database) == []


async def test_a_command_addressed_to_the_bot_by_its_mention_is_answered(
        database: Database, dispatcher: Dispatcher) -> None:
    content = {"msgtype": "m.text", "body": "Relais: !file-active", "format": "org.matrix.custom.html",
               "formatted_body": '<a href="https://matrix.to/#/@bot:x">Relais</a>: !file-active',
               "m.mentions": {"user_ids": ["@bot:x"]}}
    assert await dispatcher.handle("$e", CM, DESK, content)
    assert [n["message"] for n in await _notices(database)] == ["reply.caseload"]


async def test_an_identifier_taken_from_a_closed_file_by_id_add_is_said(
        database: Database, dispatcher: Dispatcher) -> None:
    # `!id ajouter` moved an identifier out of a closed file without a word: a mistyped identifier
    # that was another person's would have been taken silently (it used to be refused).
    from hub.domain.persons import Identifier
    from hub.services import cases

    async with database.unit() as uow:
        old, _w, _e = await cases.open_case(uow, referent=CM, name="Ancien Dossier", born=None,
                                            identifiers=[Identifier("CHU-X", "4455")], limits=Limits(40, 60, 5),
                                            now=T0 - timedelta(days=400), tz=FakeClock(T0).tz)
        await uow.persons.close_file(old.case_ref, T0 - timedelta(days=300), "stabilised")
        new, _w, _e = await cases.open_case(uow, referent=CM, name="Nouveau Dossier", born=None, identifiers=[],
                                            limits=Limits(40, 60, 5), now=T0, tz=FakeClock(T0).tz)
        await uow.persons.set_room(new.case_ref, "!room:x")
    assert await dispatcher.handle("$id", CM, "!room:x", {"msgtype": "m.text", "body": "!id ajouter CHU-X:4455"})
    replies = [n for n in await _notices(database) if n.get("room_id") == "!room:x"]
    assert [(n["message"], n["params"]["previous"]) for n in replies] == [("reply.id_moved", old.case_ref)]
    assert "clôturé" in Catalog("fr").text("reply.id_moved", **replies[0]["params"])
