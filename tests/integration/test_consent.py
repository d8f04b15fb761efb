"""The person's information and consent on a real Synapse: who may join, withdrawal, reminders."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from hub.clock import FakeClock
from hub.domain.team import Role, active
from tests.hub_harness import Hub, content_of, is_notice, kind_of, shows
from tests.matrix_helpers import accept_invite, send_text, sync, wait_for_event

pytestmark = [pytest.mark.matrix, pytest.mark.db]

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # 10:00 in Paris


async def _roles(hub: Hub, case_ref: str) -> dict[str, Role]:
    assert hub.relais is not None
    async with hub.relais.db.unit() as uow:
        return {m.user_id: m.role for m in active(await uow.team.members(case_ref))}


async def test_carers_join_only_with_extended_consent_and_leave_when_it_is_withdrawn(hub: Hub) -> None:
    await hub.setup()
    relais = await hub.start(clock=FakeClock(T0))
    case_ref, room_id = await hub.open_case()
    cm, gp, carer = await hub.client("cm"), await hub.client("gp"), await hub.client("carer")
    await send_text(cm, room_id, f"!team add {hub.user('gp')} gp")
    await wait_for_event(cm, room_id, is_notice("team.update", hub.bot))
    await accept_invite(gp, room_id)
    update = is_notice("consent.update", hub.bot)

    shown = await hub.command("gp", room_id, "!consentement")  # any member reads it
    assert kind_of(shown) == "command.reply" and "pas encore enregistrée" in shown.body
    assert "aucun enregistrement" in shown.body

    refused = await hub.command("cm", room_id, f"!equipe ajouter {hub.user('carer')} aidant")
    assert kind_of(refused) == "command.error", refused.body
    refused = await hub.command("cm", room_id, f"!team add {hub.user('carer')} carer")
    assert kind_of(refused) == "command.error"
    assert "consentement de la personne" in refused.body and "L1110-4" in refused.body
    assert "!consentement donne --portee etendue" in refused.body
    assert hub.user("carer") not in await _roles(hub, case_ref)

    for who, text, expected in (("gp", "!consent informed", "gestionnaires de cas"),
                                ("cm", "!consent informed 2026-03-03", "après aujourd'hui"),
                                ("cm", "!consent informed --scope extended", "ne vaut pas consentement"),
                                ("cm", "!consent given --scope everyone",
                                 "n'est pas possible pour --portee : écrivez equipe, etendu")):
        reply = await hub.command(who, room_id, text)
        assert kind_of(reply) == "command.error" and expected in reply.body, (text, reply.body)

    await send_text(cm, room_id, "!consentement informé 2026-02-27")
    informed = await wait_for_event(gp, room_id, update)
    assert "informée du partage" in informed.body and "ven. 27/02/2026" in informed.body
    assert content_of(informed)["fr.relais.case"] == case_ref
    still = await hub.command("cm", room_id, f"!team add {hub.user('carer')} carer")
    assert kind_of(still) == "command.error" and "consentement" in still.body  # informing is not consent

    await send_text(cm, room_id, '!consentement donné --portée étendue --note "accord écrit, signé le 27/02"')
    given = await wait_for_event(gp, room_id, update)
    assert "au-delà de l'équipe de soins" in given.body and "accord écrit" in given.body
    await send_text(cm, room_id, f'!team add {hub.user("carer")} carer --org "Fille"')
    added = await wait_for_event(cm, room_id, is_notice("team.update", hub.bot))
    assert shows(added, hub.user("carer"))
    await accept_invite(carer, room_id)
    assert (await _roles(hub, case_ref))[hub.user("carer")] is Role.CARER

    # Withdrawal: the carer leaves the team and the room, with a notice saying why.
    await send_text(cm, room_id, "!consentement refuse")
    withdrawn = await wait_for_event(gp, room_id, update)
    assert "refuse le partage" in withdrawn.body and shows(withdrawn, hub.user("carer"))
    assert "cette personne quitte l'équipe et le salon" in withdrawn.body
    assert hub.user("carer") not in await _roles(hub, case_ref)
    for _ in range(30):
        members = [m.user_id for m in (await cm.joined_members(room_id)).members]
        if hub.user("carer") not in members:
            break
        await sync(cm)
    assert hub.user("carer") not in members
    again = await hub.command("cm", room_id, f"!team add {hub.user('carer')} carer")
    assert kind_of(again) == "command.error" and "a refusé le partage" in again.body

    history = await hub.command("gp", room_id, "!consent")
    assert "Information de la personne : enregistrée (le ven. 27/02/2026)" in history.body
    assert "Partage au-delà de l'équipe de soins : refusé" in history.body
    lines = history.body.split("\n•")[1:]
    assert len(lines) == 3 and "refuse" in lines[0] and "informée" in lines[2]  # latest first
    async with relais.db.unit() as uow:
        audit = [(a[2], a[3]) for a in await uow.audit.entries(case_ref)]
    assert [a for a, _ in audit].count("consent given") == 1
    assert ("consent given", {"fields": ["scope", "note"]}) in audit  # which fields, never their values


async def test_reminder_until_the_person_is_informed_once_a_day(hub: Hub) -> None:
    await hub.setup()
    clock = FakeClock(T0)
    relais = await hub.start(clock=clock)
    desk = await hub.desk()
    ref, room_id = await hub.open_case(desk=desk)
    informed_ref, informed_room = await hub.open_case(desk=desk, text='!new "Paul Martin"')
    cm = await hub.client("cm")
    await send_text(cm, informed_room, "!consent informed")
    await wait_for_event(cm, informed_room, is_notice("consent.update", hub.bot))
    reminders = relais.consent_reminders

    assert await reminders.sweep(clock.now()) == 0  # not on the opening day
    clock.set(T0 + timedelta(days=1))  # 10:00 in Paris the next day
    assert await reminders.sweep(clock.now()) == 1  # the uninformed file only
    reminder = await wait_for_event(cm, room_id, is_notice("consent.reminder", hub.bot))
    assert "pas encore enregistrée comme informée" in reminder.body and "depuis 1 jour)" in reminder.body
    assert content_of(reminder)["m.mentions"]["user_ids"] == [hub.user("cm")]
    assert content_of(reminder)["fr.relais.case"] == ref
    clock.advance(timedelta(hours=8))
    assert await reminders.sweep(clock.now()) == 0  # once a day at most

    await hub.stop()  # the next day's reminder comes once, across a restart
    clock.set(T0 + timedelta(days=2, hours=1))
    relais = await hub.start(clock=clock)
    second = await wait_for_event(cm, room_id, is_notice("consent.reminder", hub.bot))
    assert "depuis 2 jours)" in second.body
    assert await relais.consent_reminders.sweep(clock.now()) == 0

    await send_text(cm, room_id, "!consent informed")
    await wait_for_event(cm, room_id, is_notice("consent.update", hub.bot))
    clock.advance(timedelta(days=1))
    assert await relais.consent_reminders.sweep(clock.now()) == 0
    messages = await cm.room_messages(informed_room, start="", limit=100)
    assert not [e for e in messages.chunk if kind_of(e) == "consent.reminder"]
    assert informed_ref != ref
