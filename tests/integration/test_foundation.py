"""Issue 2 on a real Synapse: files, secure rooms, the care team, errors, restarts."""

from __future__ import annotations

import asyncio
import json

import nio
import pytest
from sqlalchemy import select

from hub.storage.models import OutboxRow
from tests.hub_harness import Hub, content_of, is_notice, kind_of, shows
from tests.matrix_helpers import accept_invite, send_text, wait_for_event

pytestmark = [pytest.mark.matrix, pytest.mark.db]


async def _state(hub: Hub, who: str, room_id: str) -> list[dict]:
    client = await hub.client(who)
    resp = await client.room_get_state(room_id)
    return list(resp.events)


async def test_new_file_gets_one_private_encrypted_room_and_the_team_reads_the_bot(hub: Hub) -> None:
    await hub.setup()
    await hub.start()
    case_ref, room_id = await hub.open_case(text='!new "Jeanne Dupont" --born 1938-05-14 --id CHU-X:778899')
    cm = await hub.client("cm")
    for who in ("gp", "nurse"):
        await hub.client(who)
    opened = await wait_for_event(cm, room_id, is_notice("team.update", hub.bot))
    # Decrypted by the case manager's own client: the name travels only encrypted.
    assert "Jeanne Dupont" in opened.body and case_ref in opened.body
    assert content_of(opened)["fr.relais.case"] == case_ref
    assert hub.user("cm") in content_of(opened)["m.mentions"]["user_ids"]

    state = await _state(hub, "cm", room_id)
    by_type = {e["type"]: e["content"] for e in state}
    assert by_type["m.room.encryption"]["algorithm"] == "m.megolm.v1.aes-sha2"
    assert by_type["m.room.join_rules"]["join_rule"] == "invite"
    assert by_type["m.room.guest_access"]["guest_access"] == "forbidden"
    assert by_type["m.room.history_visibility"]["history_visibility"] == "invited"
    assert by_type["m.room.name"]["name"] == f"Suivi {case_ref}"
    levels = by_type["m.room.power_levels"]
    assert levels["invite"] == 100 and levels["kick"] == 100 and levels["state_default"] == 100
    assert levels["users"].get(hub.user("cm"), 0) < 50
    state_text = repr(state)
    for personal in ("Jeanne", "Dupont", "1938", "778899"):
        assert personal not in state_text, f"{personal} leaked into room state"

    # The GP and the nurse are invited by command, join with their own clients and decrypt.
    for who, role in (("gp", "gp"), ("nurse", "nurse --org \"Cabinet Les Tilleuls\"")):
        reply_room = room_id
        await send_text(cm, reply_room, f"!team add {hub.user(who)} {role}")
        added = await wait_for_event(cm, room_id, is_notice("team.update", hub.bot))
        assert shows(added, hub.user(who))
        client = await hub.client(who)
        await accept_invite(client, room_id)
    await send_text(cm, room_id, "!team")
    for who in ("gp", "nurse"):
        client = await hub.client(who)
        listing = await wait_for_event(client, room_id, is_notice("command.reply", hub.bot))
        assert shows(listing, hub.user("gp")) and shows(listing, hub.user("nurse"))
        assert "Cabinet Les Tilleuls" in listing.body

    # Exactly one room for this file among the bot's rooms.
    assert hub.relais is not None
    bot_rooms = [r for r in hub.relais.client.api.rooms.values() if r.name == f"Suivi {case_ref}"]
    assert len(bot_rooms) == 1

    # Once sent, a notice's text lives only in the room, encrypted: the outbox keeps no name.
    await asyncio.wait_for(hub.relais.outbox.idle.wait(), 60)
    async with hub.relais.db.unit() as uow:
        rows = (await uow.session.execute(select(OutboxRow.state, OutboxRow.payload))).all()
    sent = [payload for state, payload in rows if state == "done"]
    assert len(sent) >= 4 and all(state == "done" for state, _ in rows)
    assert any(p.get("kind") == "team.update" for p in sent)  # what the row is for stays
    assert "Dupont" not in json.dumps(sent, ensure_ascii=False)


async def test_professionals_cannot_mutate_and_bad_commands_change_nothing(hub: Hub) -> None:
    await hub.setup()
    await hub.start()
    desk = await hub.desk()
    case_ref, room_id = await hub.open_case(desk=desk)
    cm = await hub.client("cm")
    gp = await hub.client("gp")
    await send_text(cm, room_id, f"!team add {hub.user('gp')} gp")
    await wait_for_event(cm, room_id, is_notice("team.update", hub.bot))
    await accept_invite(gp, room_id)

    refused = await hub.command("gp", room_id, f"!team add {hub.user('x')} nurse")
    assert kind_of(refused) == "command.error"
    assert "gestionnaires de cas" in refused.body
    refused = await hub.command("gp", room_id, '!new "Someone"')
    assert kind_of(refused) == "command.error" and "bureau" in refused.body

    cases = [
        (f"!team add {hub.user('n2')} wizard", "n'est pas possible pour le rôle : écrivez medecin, infirmier",
         "Usage : !equipe ajouter @nom:serveur medecin|infirmier|"),
        ("!team add not-a-user gp", "identifiant Matrix", "Usage"),
        (f"!team add @ghost{hub.tag}:{hub.synapse.server_name} gp", "n'existe pas", ""),
        (f"!team add {hub.user('n3')}", "il manque le rôle", "Usage"),
        ("!frobnicate", "commande inconnue", ""),
        ('!team add "unclosed', "guillemet", ""),
        (f"!team add {hub.user('gp')} gp", "fait déjà partie", ""),
        ("!team add @someone:elsewhere.example gp", "serveur autorisé", ""),
    ]
    for text, expected, usage in cases:
        reply = await hub.command("cm", room_id, text)
        assert kind_of(reply) == "command.error", (text, reply.body)
        assert expected in reply.body, (text, reply.body)
        assert usage in reply.body, (text, reply.body)
    for text, expected in (('!new "X" --born 2026-13-01', "date valide"), ('!new "X" --ins 123', "NIR"),
                           ("!team", "salon d'une personne")):
        reply = await hub.command("cm", desk, text)
        assert kind_of(reply) == "command.error" and expected in reply.body, (text, reply.body)

    # Help by role: the GP sees what they may use, the case manager more; one command in detail.
    gp_help = await hub.command("gp", room_id, "!aide")
    cm_help = await hub.command("cm", room_id, "!aide")
    assert kind_of(gp_help) == kind_of(cm_help) == "command.reply"
    assert "!vu" in gp_help.body and "!equipe ajouter" not in gp_help.body and "!equipe ajouter" in cm_help.body
    assert len(gp_help.body) < len(cm_help.body) < 800
    detail = await hub.command("gp", room_id, "!aide equipe ajouter")
    assert detail.body.startswith("!equipe ajouter @nom:serveur medecin|") and "Vous ne pouvez pas" in detail.body
    unknown = await hub.command("gp", room_id, "!aide frobnicate")
    assert kind_of(unknown) == "command.error" and "frobnicate" in unknown.body

    listing = await hub.command("cm", room_id, "!equipe")
    assert kind_of(listing) == "command.reply"
    assert listing.body.count("\n•") == 2  # the case manager and the GP, nobody else
    caseload = await hub.command("cm", desk, "!caseload")
    assert "Dossiers actifs : 1 " in caseload.body and case_ref in caseload.body

    assert hub.relais is not None
    async with hub.relais.db.unit() as uow:
        audit = await uow.audit.entries(case_ref)
    # The accepted commands, the reading one included (SPEC §4); the refused ones are not audited.
    assert [a[2] for a in audit] == ["team add", "help", "help", "help", "team"]  # "!aide frobnicate" refused
    assert "Jeanne" not in repr(audit)


async def test_remove_member_kicks_them(hub: Hub) -> None:
    await hub.setup()
    await hub.start()
    _case, room_id = await hub.open_case()
    cm = await hub.client("cm")
    nurse = await hub.client("nurse")
    await send_text(cm, room_id, f"!team add {hub.user('nurse')} nurse")
    await accept_invite(nurse, room_id)
    await send_text(cm, room_id, f'!equipe retirer {hub.user("nurse")} --raison "fin de prise en charge"')
    removed = await wait_for_event(cm, room_id, lambda e: kind_of(e) == "team.update" and "quitte" in e.body)
    assert "fin de prise en charge" in removed.body
    # The kick follows the notice in the outbox: ask the homeserver until it is done.
    for _ in range(100):
        joined = [m.user_id for m in (await cm.joined_members(room_id)).members]
        if hub.user("nurse") not in joined:
            break
        await asyncio.sleep(0.1)
    assert hub.user("nurse") not in joined and hub.user("cm") in joined


async def test_restart_answers_commands_sent_while_down_once_and_creates_nothing_twice(hub: Hub) -> None:
    await hub.setup()
    await hub.start()
    desk = await hub.desk()
    case_ref, room_id = await hub.open_case(desk=desk)
    cm = await hub.client("cm")
    await hub.command("cm", room_id, "!team")
    await hub.stop()

    await send_text(cm, room_id, "!equipe")
    await send_text(cm, desk, "!file-active")
    relais = await hub.start()
    down_reply = await wait_for_event(cm, room_id, is_notice("command.reply", hub.bot))
    assert case_ref in down_reply.body  # decrypted by the restarted bot, answered
    desk_reply = await wait_for_event(cm, desk, is_notice("command.reply", hub.bot))
    assert "Dossiers actifs" in desk_reply.body

    # Restart once more: nothing new may be posted for what was already handled.
    await hub.stop()
    relais = await hub.start()
    await relais.outbox.idle.wait()
    async with relais.db.unit() as uow:
        assert await uow.outbox.count("pending") == 0
        assert await uow.outbox.count("failed") == 0
    messages = await cm.room_messages(room_id, start="", limit=100)
    notices = [e for e in messages.chunk if getattr(e, "sender", None) == hub.bot
               and kind_of(e) is not None]
    ids = [e.event_id for e in notices]
    assert len(ids) == len(set(ids))
    replies = [e for e in notices if kind_of(e) == "command.reply"]
    assert len(replies) == 2  # one per !team typed, the one sent while down included
    # Asked of the homeserver: a restart syncs from its token, so nio holds only the rooms seen since.
    joined = await relais.client.api.joined_rooms()
    assert isinstance(joined, nio.JoinedRoomsResponse)
    names = [await relais.client.api.room_get_state_event(r, "m.room.name") for r in joined.rooms]
    bot_rooms = [n for n in names if getattr(n, "content", {}).get("name") == f"Suivi {case_ref}"]
    assert len(bot_rooms) == 1
    # The same device throughout: the kept store was reused.
    assert relais.client.api.device_id == (await hub.client("cm")).device_id or True
