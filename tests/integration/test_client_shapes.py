"""Commands sent with the exact event content of Element Web, Element X and phone keyboards (issue 16),
on the real Synapse, through the bot's real encryption and sync."""

from __future__ import annotations

from typing import Any

import pytest

from hub.bots import content
from hub.bots.render import render
from hub.domain import limits
from hub.errors import MatrixError
from tests.hub_harness import Hub, content_of, kind_of, shows
from tests.matrix_helpers import accept_invite, send_content, skip_seen, wait_for_event

pytestmark = [pytest.mark.matrix, pytest.mark.db]

HTML = "org.matrix.custom.html"
ANSWERS = ("command.reply", "command.error", "team.update", "plan.update", "continuity.break")


async def _say(hub: Hub, room_id: str, content: dict[str, Any], name: str = "cm") -> tuple[str, Any]:
    """Send `content` as is; return its event id and the bot's first answer after it."""
    client = await hub.client(name)
    await skip_seen(client, room_id)
    event_id = await send_content(client, room_id, content)
    answer = await wait_for_event(client, room_id,
                                  lambda e: getattr(e, "sender", None) == hub.bot and kind_of(e) in ANSWERS)
    return event_id, answer


async def test_element_and_phone_shapes_are_understood_and_answered_where_typed(
        hub: Hub, monkeypatch: pytest.MonkeyPatch) -> None:
    await hub.setup()
    relais = await hub.start()
    for name in ("gp", "kine", "pharma"):
        await hub.client(name)
    desk = await hub.desk()
    gp, kine, pharma = hub.user("gp"), hub.user("kine"), hub.user("pharma")

    # 2. « guillemets » with no-break spaces inside, and the em dash an iPhone makes of "--".
    _, opened = await _say(hub, desk, {"msgtype": "m.text",
                                       "body": "!nouveau «\u202fPaulette Exemple\u202f» —naissance 1938-07-14"})
    assert kind_of(opened) == "command.reply", opened.body
    case_ref = content_of(opened)["fr.relais.case"]
    async with relais.db.unit() as uow:
        person = await uow.persons.get(case_ref)
    assert person is not None and person.display_name == "Paulette Exemple"
    room_id = await hub.invited_room(await hub.client("cm"))
    await accept_invite(await hub.client("cm"), room_id)

    # 1. Element Web: the display name in body, the pill in formatted_body and m.mentions.
    _, added = await _say(hub, room_id, {
        "msgtype": "m.text", "body": "!equipe ajouter Dr Paul Martin medecin", "format": HTML,
        "formatted_body": f'!equipe ajouter <a href="https://matrix.to/#/{gp}">Dr Paul Martin</a> medecin',
        "m.mentions": {"user_ids": [gp]}})
    assert kind_of(added) == "team.update", added.body
    # Element X: a markdown link in body.
    _, added = await _say(hub, room_id, {"msgtype": "m.text",
                                         "body": f"!equipe ajouter [{kine}](https://matrix.to/#/{kine}) kine"})
    assert kind_of(added) == "team.update", added.body
    # 3. A no-break space between the arguments.
    _, added = await _say(hub, room_id, {"msgtype": "m.text", "body": f"!equipe ajouter {pharma}\u00a0pharmacien"})
    assert kind_of(added) == "team.update", added.body
    async with relais.db.unit() as uow:
        members = {m.user_id: m.role.value for m in await uow.team.members(case_ref)}
    assert {gp: "gp", kine: "physio", pharma: "pharmacist"}.items() <= members.items()

    # 2. An apostrophe inside free text.
    _, reported = await _say(hub, room_id, {"msgtype": "m.text", "body": "!rupture l'aide à domicile ne passe plus"})
    assert kind_of(reported) == "continuity.break" and "l'aide à domicile ne passe plus" in reported.body

    # 4. A reply carrying the legacy fallback, answered in the room.
    bot_notice = added.event_id
    _, team = await _say(hub, room_id, {
        "msgtype": "m.text",
        "body": f"> <{hub.bot}> Identifiants du dossier {case_ref} :\n\n!equipe",
        "format": HTML,
        "formatted_body": f'<mx-reply><blockquote><a href="https://matrix.to/#/{room_id}/{bot_notice}">In reply to</a>'
                          f' <a href="https://matrix.to/#/{hub.bot}">{hub.bot}</a><br>Identifiants du dossier '
                          f"{case_ref} :</blockquote></mx-reply>!equipe",
        "m.relates_to": {"m.in_reply_to": {"event_id": bot_notice}}})
    assert kind_of(team) == "command.reply" and shows(team, gp)
    assert "m.thread" not in str(content_of(team).get("m.relates_to"))
    # A thread message: answered in the thread.
    command_id, shown = await _say(hub, room_id, {
        "msgtype": "m.text", "body": "!plan",
        "m.relates_to": {"rel_type": "m.thread", "event_id": bot_notice, "is_falling_back": True,
                         "m.in_reply_to": {"event_id": bot_notice}}})
    assert kind_of(shown) == "command.reply"
    relation = content_of(shown)["m.relates_to"]
    assert relation["rel_type"] == "m.thread" and relation["event_id"] == bot_notice
    assert relation["m.in_reply_to"]["event_id"] == command_id
    # An error in a thread is answered there too.
    _, refused = await _say(hub, room_id, {"msgtype": "m.text", "body": "!plan clore 99",
                                           "m.relates_to": {"rel_type": "m.thread", "event_id": bot_notice}})
    assert kind_of(refused) == "command.error" and content_of(refused)["m.relates_to"]["event_id"] == bot_notice

    # 5. Edits: a refused command corrected runs once; an accepted one never runs again.
    wrong_id, wrong = await _say(hub, room_id, {"msgtype": "m.text", "body": '!plan ajouter "Toilette"'})
    assert kind_of(wrong) == "command.error"
    # Synapse takes an m.replace from anyone: another member's "edit" of cm's command never runs,
    # and never stops cm from correcting it (review r16).
    await accept_invite(await hub.client("gp"), room_id)
    _, foreign = await _say(hub, room_id, {
        "msgtype": "m.text", "body": '* !plan ajouter "Intrus" "Rien"',
        "m.new_content": {"msgtype": "m.text", "body": '!plan ajouter "Intrus" "Rien"'},
        "m.relates_to": {"rel_type": "m.replace", "event_id": wrong_id}}, name="gp")
    assert kind_of(foreign) == "command.reply" and "rien exécuté" in foreign.body, foreign.body
    edit = {"msgtype": "m.text", "body": '* !plan ajouter "Toilette" "Aide à domicile"',
            "m.new_content": {"msgtype": "m.text", "body": '!plan ajouter "Toilette" "Aide à domicile"'},
            "m.relates_to": {"rel_type": "m.replace", "event_id": wrong_id}}
    _, corrected = await _say(hub, room_id, edit)
    assert kind_of(corrected) == "plan.update" and "Aide à domicile" in corrected.body
    edit["m.new_content"] = {"msgtype": "m.text", "body": '!plan ajouter "Toilette" "SAD"'}
    edit["body"] = '* !plan ajouter "Toilette" "SAD"'
    _, again = await _say(hub, room_id, edit)
    assert kind_of(again) == "command.reply" and '!plan ajouter "Toilette" "SAD"' in again.body
    async with relais.db.unit() as uow:
        view = await uow.plans.items(case_ref)
    assert len(view) == 1, view

    # 6. Free text past its limit: refused before anything is saved; !plan keeps answering.
    _, too_long = await _say(hub, room_id, {"msgtype": "m.text",
                                            "body": f'!plan ajouter "{"a" * 20000}" "Passage"'})
    assert kind_of(too_long) == "command.error" and str(limits.limit("need")) in too_long.body
    _, plan = await _say(hub, room_id, {"msgtype": "m.text", "body": "!plan"})
    assert kind_of(plan) == "command.reply" and "Toilette" in plan.body
    async with relais.db.unit() as uow:
        assert len(await uow.plans.items(case_ref)) == 1
    _, one = await _say(hub, room_id, {"msgtype": "m.text", "body": "!plan 1"})
    assert kind_of(one) == "command.reply" and "Aide à domicile" in one.body

    # The measure holds on the real homeserver: a plan too long for one event, shortened, is
    # accepted; the same notice whole is refused with M_TOO_LARGE.
    heavy = "l'é😀" * 200
    items = [{"key": "plan.item", "params": {"number": n, "need": heavy[:300], "action": heavy[:500],
                                             "status": "proposed", "provider": heavy[:255], "frequency": heavy[:120]}}
             for n in range(1, 31)]
    params = {"case": case_ref, "count": 30, "items": items, "closed": "", "date": None, "pointer": "!plan <n>"}
    shortened = render(relais.catalog, "command.reply", case_ref, "plan.show", params, (), room_id=room_id)
    assert "!plan <n>" in shortened["body"]
    await relais.client.send(room_id, shortened, "relais-test-size-shortened")
    whole = content.notice("command.reply", case_ref, relais.catalog.text("plan.show", **params),
                           relais.catalog.html("plan.show", **params))
    assert not content.fits(whole, room_id)
    with pytest.raises(MatrixError) as refused_whole:
        await relais.client.send(room_id, whole, "relais-test-size-whole")
    assert refused_whole.value.errcode == "M_TOO_LARGE"

    # 7. A command the bot cannot decrypt: the sender is told, without its content, what to do.
    cm = await hub.client("cm")
    await skip_seen(cm, desk)
    # The sender's client withholds the room key from the bot's device (as a client set to send
    # only to verified devices does): the bot receives the event and can never decrypt it.
    if cm.should_query_keys:
        await cm.keys_query()
    for device in cm.device_store.active_user_devices(hub.bot):
        cm.blacklist_device(device)
    cm.invalidate_outbound_session(desk)
    monkeypatch.setattr("hub.bots.intake.UNDECRYPTABLE_PATIENCE_S", 0.0)  # give up at once
    await send_content(cm, desk, {"msgtype": "m.text", "body": "!file-active"})
    told = await wait_for_event(cm, desk, lambda e: getattr(e, "sender", None) == hub.bot
                                and kind_of(e) == "command.error")
    assert shows(told, hub.user("cm")) and "renvoyez" in told.body
    assert "file-active" not in told.body  # nothing of the content: it was never read
    assert content_of(told)["m.mentions"] == {"user_ids": [hub.user("cm")]}
