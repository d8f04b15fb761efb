"""Handovers, unplanned leaves, transfers and closure on a real Synapse, read by the team's own clients."""

from __future__ import annotations

import asyncio
import json
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import nio
import pytest
from sqlalchemy import select

from hub.__main__ import main
from hub.clock import FakeClock
from hub.storage.models import OutboxRow
from tests.hub_harness import Hub, content_of, is_notice, kind_of, shows
from tests.matrix_helpers import accept_invite, send_text, sync, wait_for_event

pytestmark = [pytest.mark.matrix, pytest.mark.db]

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


async def _join_team(hub: Hub, room_id: str, who: str, role: str) -> nio.AsyncClient:
    cm, client = await hub.client("cm"), await hub.client(who)
    await send_text(cm, room_id, f"!team add {hub.user(who)} {role}")
    await wait_for_event(cm, room_id, lambda e: kind_of(e) == "team.update" and shows(e, hub.user(who)))
    await accept_invite(client, room_id)
    return client


async def _gone(client: nio.AsyncClient, room_id: str) -> None:
    """Until the homeserver no longer counts `client` in the room."""
    for _ in range(60):
        joined = await client.joined_rooms()
        if isinstance(joined, nio.JoinedRoomsResponse) and room_id not in joined.rooms:
            return
        await sync(client)
    raise AssertionError(f"{client.user_id} is still in {room_id}")


async def _deactivate(hub: Hub, user_id: str) -> None:
    """What an operator does when a professional's account is closed (Synapse admin API)."""
    password = secrets.token_urlsafe(12)
    admin = await hub.synapse.register(f"admin{hub.tag}", password, admin=True)
    async with aiohttp.ClientSession() as http:
        login = await http.post(f"{hub.synapse.url}/_matrix/client/v3/login", json={
            "type": "m.login.password", "identifier": {"type": "m.id.user", "user": admin}, "password": password})
        token = (await login.json())["access_token"]
        done = await http.post(f"{hub.synapse.url}/_synapse/admin/v1/deactivate/{user_id}", json={"erase": False},
                               headers={"Authorization": f"Bearer {token}"})
        assert done.status == 200, await done.text()


async def _notices(hub: Hub, who: str, room_id: str, kind: str) -> list[Any]:
    client = await hub.client(who)
    response = await client.room_messages(room_id, start="", limit=200)
    return [e for e in response.chunk if getattr(e, "sender", None) == hub.bot and kind_of(e) == kind]


async def test_handover_to_a_successor_reassigns_removes_is_acknowledged_and_reminded(hub: Hub) -> None:
    await hub.setup()
    clock = FakeClock(T0)
    relais = await hub.start(clock=clock)
    desk = await hub.desk()
    case_ref, room_id = await hub.open_case(desk=desk)
    cm = await hub.client("cm")
    await _join_team(hub, room_id, "gp", "gp")
    nurse = await _join_team(hub, room_id, "nurse", "nurse --org \"Cabinet Les Tilleuls\"")
    await send_text(cm, room_id, f'!plan add "Soins" "Pansements" --provider {hub.user("nurse")}')
    await send_text(cm, room_id, '!plan add "Repas" "Portage de repas" --provider "Mairie"')
    await hub.command("cm", room_id, "!eval faite 2026-03-01 --gir 3")

    refused = [
        (f"!equipe retirer {hub.user('nurse')} --successeur {hub.user('nurse')}", "son propre successeur"),
        (f"!equipe retirer {hub.user('nurse')} --successeur @x:elsewhere.org", "serveur autorisé"),
        (f"!equipe retirer {hub.user('nurse')} --successeur nurse2", "identifiant Matrix"),
        (f"!equipe retirer {hub.user('nurse')} --successeur @ghost{hub.tag}:{hub.synapse.server_name}",
         "n'existe pas"),
        (f"!equipe retirer {hub.user('cm')} --successeur {hub.user('nurse2')}", "référent"),
    ]
    await hub.client("nurse2")  # registered: the successor exists on the homeserver
    for text, expected in refused:
        reply = await hub.command("cm", room_id, text)
        assert kind_of(reply) == "command.error" and expected in reply.body, (text, reply.body)

    await send_text(cm, room_id, f'!equipe retirer {hub.user("nurse")} --successeur {hub.user("nurse2")} '
                                 '--raison "changement de poste"')
    nurse2 = await hub.client("nurse2")
    await accept_invite(nurse2, room_id)
    notice = await wait_for_event(nurse2, room_id, is_notice("handover.professional", hub.bot))  # read by the successor
    lines = notice.body.split("\n")
    assert f"({case_ref}) — passation : " in lines[0] and lines[0].endswith(", infirmier·e")
    assert "tapez !vu" in lines[1]  # the successor's action comes first
    for text in ("Motif du départ : changement de poste", "n° 1 : Soins → Pansements",
                 "Autres actions en cours : n° 2", "Dernière évaluation : dim. 01/03/2026",
                 "Prochaine : dim. 30/08/2026"):
        assert text in notice.body, text
    assert len(lines) < 10 and "Repas" not in notice.body  # item 2 by number only; each item once
    assert shows(notice, hub.user("nurse")) and shows(notice, hub.user("nurse2"))
    assert content_of(notice)["msgtype"] == "m.text"
    assert content_of(notice)["fr.relais.case"] == case_ref
    assert {hub.user("cm"), hub.user("gp"), hub.user("nurse2")} <= set(content_of(notice)["m.mentions"]["user_ids"])

    await _gone(nurse, room_id)
    after = await send_text(cm, room_id, "Message après le départ")
    seen = await nurse.room_messages(room_id, start="", limit=100)
    assert after not in [getattr(e, "event_id", None) for e in seen.chunk]  # the leaver reads nothing new
    async with relais.db.unit() as uow:
        items = await uow.plans.items(case_ref)
        members = {m.user_id: m for m in await uow.team.members(case_ref)}
    assert items[0].provider_user == hub.user("nurse2") and items[1].provider_org == "Mairie"
    assert members[hub.user("nurse")].until is not None and members[hub.user("nurse")].end_reason
    assert members[hub.user("nurse2")].active and members[hub.user("nurse2")].organisation == "Cabinet Les Tilleuls"

    await send_text(nurse2, room_id, "!vu")
    acked = await wait_for_event(cm, room_id, lambda e: kind_of(e) == "handover.professional"
                                 and "accuse réception" in e.body)
    assert shows(acked, hub.user("nurse2"))
    again = await hub.command("nurse2", room_id, "!ack")
    assert kind_of(again) == "command.error" and "aucune passation" in again.body

    # A handover nobody acknowledges: one reminder to the case manager's desk after 3 days.
    await hub.client("gp2")
    await send_text(cm, room_id, f"!team remove {hub.user('gp')} --successor {hub.user('gp2')} --reason retraite")
    await wait_for_event(cm, room_id, lambda e: kind_of(e) == "handover.professional" and "retraite" in e.body)
    clock.set(T0 + timedelta(days=3) - timedelta(minutes=1))
    assert await relais.handover_reminders.sweep(clock.now()) == 0
    clock.set(T0 + timedelta(days=3, hours=1))
    assert await relais.handover_reminders.sweep(clock.now()) == 1
    reminder = await wait_for_event(cm, desk, is_notice("handover.professional", hub.bot))
    assert f"Rappel, dossier {case_ref}" in reminder.body and shows(reminder, hub.user("gp2"))
    assert await relais.handover_reminders.sweep(clock.now() + timedelta(days=5)) == 0
    assert not await _notices(hub, "cm", room_id, "continuity.break")  # removals by the bot are no breaks
    async with relais.db.unit() as uow:
        audit = [a[2] for a in await uow.audit.entries(case_ref)]
    assert audit.count("team remove") == 2 and audit.count("ack") == 1


async def test_a_member_leaving_on_their_own_is_one_continuity_break_even_across_restarts(hub: Hub) -> None:
    await hub.setup()
    clock = FakeClock(T0)
    relais = await hub.start(clock=clock)
    desk = await hub.desk()
    case_ref, room_id = await hub.open_case(desk=desk)
    cm = await hub.client("cm")
    nurse = await _join_team(hub, room_id, "nurse", "nurse")
    await send_text(cm, room_id, f'!plan add "Soins" "Pansements" --provider {hub.user("nurse")}')
    await wait_for_event(cm, room_id, is_notice("plan.update", hub.bot))

    await hub.stop()  # the leave happens while the hub is down: seen on the next start
    assert isinstance(await nurse.room_leave(room_id), nio.RoomLeaveResponse)
    relais = await hub.start(clock=clock)
    notice = await wait_for_event(cm, room_id, is_notice("continuity.break", hub.bot))
    assert ", infirmier·e, a quitté le salon" in notice.body and shows(notice, hub.user("nurse"))
    assert "1. Soins → Pansements" in notice.body and hub.user("cm") in content_of(notice)["m.mentions"]["user_ids"]
    await hub.stop()
    relais = await hub.start(clock=clock)
    await relais.outbox.idle.wait()
    assert len(await _notices(hub, "cm", room_id, "continuity.break")) == 1
    async with relais.db.unit() as uow:
        breaks = await uow.handovers.breaks(case_ref)
        member = next(m for m in await uow.team.members(case_ref) if m.user_id == hub.user("nurse"))
        items = await uow.plans.items(case_ref)
    assert [(b.category.value, b.source.value) for b in breaks] == [("relational", "left")]
    assert member.end_reason == "left" and items[0].provider_user is None
    load = await hub.command("cm", desk, "!caseload")
    assert "Actions du plan sans intervenant : 1." in load.body

    # A closed account: Synapse makes it leave every room, which is a leave like any other.
    await _join_team(hub, room_id, "physio", "physio")
    await _deactivate(hub, hub.user("physio"))
    closed = await wait_for_event(cm, room_id, is_notice("continuity.break", hub.bot))
    assert ", kinésithérapeute, a quitté le salon" in closed.body and shows(closed, hub.user("physio"))


async def test_a_file_passes_to_another_case_manager_with_checks_power_and_acknowledgement(hub: Hub) -> None:
    await hub.setup(case_managers=("cm", "cm2"), care={"caseload_target": 1, "caseload_max": 2})
    relais = await hub.start(clock=FakeClock(T0))
    desk, desk2 = await hub.desk("cm"), await hub.desk("cm2")
    case_ref, room_id = await hub.open_case(desk=desk)
    await hub.open_case("cm2", desk=desk2, text='!new "Paul Martin"')
    cm, cm2 = await hub.client("cm"), await hub.client("cm2")
    await send_text(cm, room_id, f'!plan add "Suivi" "Visite mensuelle" --provider {hub.user("cm")}')
    await wait_for_event(cm, room_id, is_notice("plan.update", hub.bot))
    # An operator gave the referent a level of their own: it must follow the file.
    levels = await relais.client.get_state(room_id, "m.room.power_levels")
    await relais.client.put_state(room_id, "m.room.power_levels",
                                  {**levels, "users": {**levels.get("users", {}), hub.user("cm"): 25}})

    for text, expected in ((f"!transferer R-2026-9999 {hub.user('cm2')}", "aucun dossier"),
                           (f"!transferer {case_ref} {hub.user('gp')}", "n'est pas un·e gestionnaire de cas"),
                           (f"!transferer {case_ref} {hub.user('cm')}", "déjà le·la référent·e")):
        reply = await hub.command("cm", desk, text)
        assert kind_of(reply) == "command.error" and expected in reply.body, (text, reply.body)
    reply = await hub.command("cm", desk, f"!transferer {case_ref} {hub.user('cm2')}")
    assert kind_of(reply) == "command.reply" and "dépasse la cible de 1" in reply.body, reply.body
    await accept_invite(cm2, room_id)
    notice = await wait_for_event(cm2, room_id, is_notice("handover.professional", hub.bot))
    assert f"({case_ref}) — le dossier passe de" in notice.body and "n° 1 : Suivi → Visite mensuelle" in notice.body
    await _gone(cm, room_id)
    users = (await relais.client.get_state(room_id, "m.room.power_levels"))["users"]
    assert users.get(hub.user("cm2")) == 25 and hub.user("cm") not in users
    async with relais.db.unit() as uow:
        person = await uow.persons.get(case_ref)
        items = await uow.plans.items(case_ref)
    assert person is not None and person.referent == hub.user("cm2")
    assert items[0].provider_user == hub.user("cm2")
    await send_text(cm2, room_id, "!vu")
    await wait_for_event(cm2, room_id, lambda e: kind_of(e) == "handover.professional" and "accuse" in e.body)
    gone = await hub.command("cm", desk, f"!transferer {case_ref} {hub.user('cm2')}")
    assert "seul·e le·la référent·e" in gone.body  # the former referent holds it no more

    other_ref, _ = await hub.open_case(desk=desk, text='!new "Marie Curie"')
    full = await hub.command("cm", desk, f"!transferer {other_ref} {hub.user('cm2')}")
    assert kind_of(full) == "command.error" and "suit déjà 2 dossiers : le maximum est 2" in full.body


def _write_config(hub: Hub, path: Path) -> Path:
    assert hub.config is not None
    config = hub.config
    path.write_text("\n".join([
        "[matrix]", f'homeserver = "{config.matrix.homeserver}"', f'user_id = "{config.matrix.user_id}"',
        'password = "not-used-by-export"', "[database]", f'url = "{config.database.url}"',
        "[care]", f"case_managers = {json.dumps(list(config.care.case_managers))}",
    ]) + "\n", encoding="utf-8")
    return path


async def test_closing_a_file_empties_the_room_keeps_a_read_only_record_and_exports_it(
        hub: Hub, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    await hub.setup(pilots=("pilot",))
    relais = await hub.start(clock=FakeClock(T0))
    desk = await hub.desk()
    case_ref, room_id = await hub.open_case(desk=desk)
    cm = await hub.client("cm")
    gp = await _join_team(hub, room_id, "gp", "gp")
    await send_text(cm, room_id, '!plan add "Aide" "Portage de repas"')
    await send_text(cm, room_id, "!plan set 1 --status indisponible")
    await hub.command("cm", room_id, "!eval faite --gir 4")
    await send_text(cm, room_id, '!rupture "Le SSIAD a arrêté ses passages, liste d\'attente"')
    reported = await wait_for_event(gp, room_id, is_notice("continuity.break", hub.bot))
    assert "catégorie : d'approche (déduite" in reported.body and "liste d'attente" in reported.body
    pilot_desk = await hub.desk("pilot")

    await send_text(cm, room_id, "!cloturer deces")
    notice = await wait_for_event(gp, room_id, is_notice("case.closed", hub.bot))
    assert f"Dossier {case_ref} clôturé le lun. 02/03/2026 à " in notice.body and "décès" in notice.body
    await _gone(cm, room_id)
    await _gone(gp, room_id)

    # Read-only: a mutating command reaching the room (here through the real dispatcher) is refused.
    assert await relais.dispatcher.handle("$late-command", hub.user("cm"), room_id, '!plan add "A" "B"')
    async with relais.db.unit() as uow:
        late = list((await uow.session.execute(
            select(OutboxRow.payload).where(OutboxRow.key.startswith("cmd:$late")))).scalars())
        items = await uow.plans.items(case_ref)
        members = await uow.team.members(case_ref)
    assert [(e["kind"], e["message"]) for e in late] == [("command.error", "error.case_closed")]
    assert relais.catalog.text("error.case_closed", case=case_ref).startswith(f"le dossier {case_ref} est clôturé")
    assert len(items) == 1 and all(m.end_reason == "closed" for m in members)
    refused = await hub.command("cm", desk, f"!transfer {case_ref} {hub.user('cm')}")
    assert kind_of(refused) == "command.error"

    report = await hub.command("pilot", pilot_desk, "!rapport --du 2026-01-01 --au 2026-03-31")
    assert "Dossiers actifs par gestionnaire de cas — au mar. 31/03/2026" in report.body
    assert "Transitions par lieu d'arrivée\n" in report.body  # counted over the period: no date
    cm_name = hub.user("cm")[1:].split(":")[0]  # Synapse's default display name: the localpart
    for line in (f"{cm_name} : 0", "2026-03 : 1", "décès : 1", "d'approche : 1", "actions : 0"):
        assert line in report.body, line
    assert shows(report, hub.user("cm"))
    assert "Jeanne" not in report.body and case_ref not in report.body
    wrong = await hub.command("cm", desk, "!rapport")
    assert kind_of(wrong) == "command.error" and "pilote" in wrong.body

    config = _write_config(hub, tmp_path / "relais.toml")
    out = tmp_path / "export.json"
    assert await asyncio.to_thread(main, ["export", case_ref, "-c", str(config), "--out", str(out)]) == 0
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["person"]["display_name"] == "Jeanne Dupont" and data["person"]["close_reason"] == "death"
    assert {m["user_id"] for m in data["team"]} == {hub.user("cm"), hub.user("gp")}
    assert [v["status"] for v in data["plan_versions"]] == ["proposed", "unavailable"]
    assert data["evaluations"][0]["gir"] == 4 and data["continuity_breaks"][0]["category"] == "approach"
    assert {"plan add", "eval done", "break", "close"} <= {a["action"] for a in data["audit"]}
    assert {"identifiers", "settings", "alerts", "handovers"} <= set(data)
    assert oct(out.stat().st_mode & 0o777) == "0o600"
    # Reading the whole record is audited like a command: a second export shows the first.
    assert await asyncio.to_thread(main, ["export", case_ref, "-c", str(config), "--out", str(out)]) == 0
    again = json.loads(out.read_text(encoding="utf-8"))
    exports = [a for a in again["audit"] if a["action"] == "export"]
    assert len(exports) == 1 and exports[0]["actor"].startswith("operator:")
    capsys.readouterr()
    assert await asyncio.to_thread(main, ["export", "R-2026-9999", "-c", str(config)]) == 1
    assert "aucun dossier R-2026-9999" in capsys.readouterr().err
