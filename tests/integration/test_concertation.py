"""The clinical concertation on a real Synapse: invitation with its encrypted iCalendar file,
reminders, decisions and minutes, a move and a cancellation, as the participants read them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import nio
import pytest
from icalendar import Calendar
from nio.crypto.attachments import decrypt_attachment

from hub.clock import FakeClock
from tests.hub_harness import Hub, content_of, is_notice, kind_of
from tests.matrix_helpers import accept_invite, send_text, wait_for_event

pytestmark = [pytest.mark.matrix, pytest.mark.db]

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
PARIS = ZoneInfo("Europe/Paris")


def _notice(kind: str, bot: str) -> Callable[[Any], bool]:
    return lambda e: is_notice(kind, bot)(e) and content_of(e).get("msgtype") == "m.notice"


def _file(kind: str, bot: str) -> Callable[[Any], bool]:
    return lambda e: is_notice(kind, bot)(e) and content_of(e).get("msgtype") == "m.file"


async def _calendar(client: nio.AsyncClient, event: Any) -> Any:
    """Download the attachment with the participant's own client, decrypt it, parse the event."""
    content = content_of(event)
    assert "url" not in content and content["info"]["mimetype"] == "text/calendar"
    file = content["file"]
    response = await client.download(mxc=file["url"])
    assert isinstance(response, nio.MemoryDownloadResponse), response
    assert response.body != b"" and b"VCALENDAR" not in response.body  # stored encrypted
    data = decrypt_attachment(response.body, file["key"]["k"], file["hashes"]["sha256"], file["iv"])
    assert len(data) == content["info"]["size"]
    return Calendar.from_ical(data)


async def test_concertation_invitation_reminders_decisions_minutes_move_and_cancel(hub: Hub) -> None:
    await hub.setup()
    clock = FakeClock(T0)
    relais = await hub.start(clock=clock)
    case_ref, room_id = await hub.open_case()
    cm, gp, nurse = await hub.client("cm"), await hub.client("gp"), await hub.client("nurse")
    for who, role in (("gp", "gp"), ("nurse", "nurse")):
        await send_text(cm, room_id, f"!team add {hub.user(who)} {role}")
        await wait_for_event(cm, room_id, is_notice("team.update", hub.bot))
        await accept_invite(await hub.client(who), room_id)
    await send_text(cm, room_id, "!consent informed")
    await send_text(cm, room_id, '!plan add "Toilette" "Aide à domicile"')
    await wait_for_event(cm, room_id, is_notice("plan.update", hub.bot))

    # Planned: a notice and the encrypted invitation, read by each participant's own client.
    await send_text(cm, room_id, '!concertation 2026-03-10 14:00 --duree 45 --lieu "Maison de santé, salle 2"')
    uid = ""
    for client in (gp, nurse):
        planned = await wait_for_event(client, room_id, _notice("concertation.planned", hub.bot))
        assert "le mar. 10/03/2026 de 14:00 à 14:45 (heure locale)" in planned.body
        assert "Maison de santé, salle 2" in planned.body and content_of(planned)["fr.relais.case"] == case_ref
        assert {hub.user("gp"), hub.user("nurse")} <= set(content_of(planned)["m.mentions"]["user_ids"])
        attachment = await wait_for_event(client, room_id, _file("concertation.planned", hub.bot))
        assert content_of(attachment)["fr.relais.case"] == case_ref
        cal = await _calendar(client, attachment)
        event = cal.walk("VEVENT")[0]
        assert cal["METHOD"] == "REQUEST" and event["SEQUENCE"] == 0
        assert event.decoded("DTSTART") == datetime(2026, 3, 10, 14, 0, tzinfo=PARIS)
        assert event.decoded("DTSTART").astimezone(UTC) == datetime(2026, 3, 10, 13, 0, tzinfo=UTC)
        assert event.decoded("DTEND") - event.decoded("DTSTART") == timedelta(minutes=45)
        assert {str(a.params["CN"]) for a in event["ATTENDEE"]} == {hub.user(n) for n in ("cm", "gp", "nurse")}
        assert str(event["ORGANIZER"]) == "matrix:u/" + hub.user("cm")[1:]
        assert "Jeanne" not in cal.to_ical().decode()  # calendars sync everywhere: no name
        uid = uid or str(event["UID"])
        assert str(event["UID"]) == uid

    for who, text, expected in (
            ("cm", "!concertation 2026-03-11 10:00", "déjà prévue le mar. 10/03/2026 à 14:00"),
            ("cm", "!concertation 2026-03-11 25:00", "n'est pas une heure"),
            ("cm", "!concertation deplacer 2026-03-29 02:30", "n'existe pas le dim. 29/03/2026"),
            ("cm", f"!concertation 2026-03-12 10:00 --avec {hub.user('gp')} @x", "identifiant Matrix"),
            ("cm", "!concertation deplacer 2026-03-01 10:00", "déjà passé"),
            ("cm", f"!concertation annuler --avec {hub.user('gp')}", "option inconnue"),
            ("cm", '!decision "Passage infirmier"', "pas encore commencé"),
            ("gp", "!concertation annuler", "gestionnaires de cas")):
        reply = await hub.command(who, room_id, text)
        assert kind_of(reply) == "command.error" and expected in reply.body, (text, reply.body)

    # Moved: the same UID, a higher SEQUENCE, the new time.
    await send_text(cm, room_id, "!concertation deplacer 2026-03-10 15:30")
    moved = await wait_for_event(gp, room_id, _notice("concertation.moved", hub.bot))
    assert "du mar. 10/03/2026 à 14:00 au mar. 10/03/2026 de 15:30 à 16:15" in moved.body
    event = (await _calendar(gp, await wait_for_event(gp, room_id, _file("concertation.moved", hub.bot)))) \
        .walk("VEVENT")[0]
    assert str(event["UID"]) == uid and event["SEQUENCE"] == 1
    assert event.decoded("DTSTART") == datetime(2026, 3, 10, 15, 30, tzinfo=PARIS)
    start = datetime(2026, 3, 10, 14, 30, tzinfo=UTC)

    # Reminders: the day before and an hour before, each once, the second across a restart.
    sweeper = relais.concertations
    clock.set(start - timedelta(hours=25))
    assert await sweeper.sweep(clock.now()) == 0
    clock.set(start - timedelta(hours=23))
    assert await sweeper.sweep(clock.now()) == 1
    assert await sweeper.sweep(clock.now()) == 0
    day = await wait_for_event(nurse, room_id, _notice("concertation.reminder", hub.bot))
    assert "demain, le mar. 10/03/2026 de 15:30 à 16:15" in day.body
    assert hub.user("nurse") in content_of(day)["m.mentions"]["user_ids"]
    await hub.stop()
    clock.set(start - timedelta(minutes=50))
    relais = await hub.start(clock=clock)  # the missed sweep runs at start
    hour = await wait_for_event(nurse, room_id, _notice("concertation.reminder", hub.bot))
    assert "dans une heure, de 15:30 à 16:15" in hour.body
    assert await relais.concertations.sweep(clock.now()) == 0

    # Decisions while it is open, then the minutes and the plan follow-up.
    clock.set(start + timedelta(minutes=10))
    first = await hub.command("cm", room_id, '!décision "Passage de l\'aide à domicile tous les matins" --action 1')
    assert kind_of(first) == "command.reply" and "Décision 1 notée (action 1 du plan)" in first.body
    for text, expected in (('!decision "x" --action 9', "pas d'action numéro 9"), ('!decision " "', "vide")):
        reply = await hub.command("cm", room_id, text)
        assert kind_of(reply) == "command.error" and expected in reply.body, (text, reply.body)
    second = await hub.command("cm", room_id, '!decision "Réévaluation à domicile dans un mois"')
    assert "Décision 2 notée" in second.body
    clock.set(start + timedelta(minutes=45 + 29))
    assert await relais.concertations.sweep(clock.now()) == 0  # still open for decisions
    clock.set(start + timedelta(minutes=45 + 30))
    assert await relais.concertations.sweep(clock.now()) == 2
    minutes = await wait_for_event(gp, room_id, _notice("concertation.minutes", hub.bot))
    assert "2 décisions" in minutes.body
    assert "1. Passage de l'aide à domicile tous les matins (action 1 du plan)" in minutes.body
    assert "2. Réévaluation à domicile dans un mois" in minutes.body
    followup = await wait_for_event(cm, room_id, _notice("concertation.plan_followup", hub.bot))
    assert "action 1 : Passage de l'aide" in followup.body and "!plan modifier" in followup.body
    assert hub.user("cm") in content_of(followup)["m.mentions"]["user_ids"]
    late = await hub.command("cm", room_id, '!decision "trop tard"')
    assert kind_of(late) == "command.error" and "aucune concertation" in late.body
    assert await relais.concertations.sweep(clock.now()) == 0

    # A new one, by video with chosen participants, then cancelled: same UID, METHOD:CANCEL.
    await send_text(cm, room_id, f"!concertation 2026-03-20 09:00 --visio https://visio.example.org/r42 "
                                 f"--avec {hub.user('gp')}")
    planned = await wait_for_event(gp, room_id, _notice("concertation.planned", hub.bot))
    assert "en visio : https://visio.example.org/r42" in planned.body and hub.user("nurse") not in planned.body
    new = (await _calendar(gp, await wait_for_event(gp, room_id, _file("concertation.planned", hub.bot)))) \
        .walk("VEVENT")[0]
    assert str(new["UID"]) != uid and str(new["LOCATION"]) == "https://visio.example.org/r42"
    await send_text(cm, room_id, "!concertation annuler")
    cancelled = await wait_for_event(gp, room_id, _notice("concertation.cancelled", hub.bot))
    assert "annule la concertation clinique du ven. 20/03/2026 à 09:00" in cancelled.body
    cal = await _calendar(gp, await wait_for_event(gp, room_id, _file("concertation.cancelled", hub.bot)))
    event = cal.walk("VEVENT")[0]
    assert cal["METHOD"] == "CANCEL" and str(event["STATUS"]) == "CANCELLED"
    assert str(event["UID"]) == str(new["UID"]) and event["SEQUENCE"] == 1

    messages = await gp.room_messages(room_id, start="", limit=200)
    kinds = [kind_of(e) for e in messages.chunk if getattr(e, "sender", None) == hub.bot]
    assert kinds.count("concertation.reminder") == 2 and kinds.count("concertation.minutes") == 1
    async with relais.db.unit() as uow:
        assert await uow.outbox.count("failed") == 0
