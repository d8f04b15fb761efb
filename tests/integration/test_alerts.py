"""Hospital alerts on a real Synapse: MLLP and FHIR in, notices read by the team's own clients."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from sqlalchemy import func, select

from hub.demo import DEMO_NIR, play_hospital_stay
from hub.storage.models import OutboxRow
from tests.hub_harness import Hub, content_of, is_notice, kind_of, shows
from tests.inbound.mllp_client import GHH, SAMPLES, MllpClient, msa, sample
from tests.matrix_helpers import accept_invite, send_text, wait_for_event

pytestmark = [pytest.mark.matrix, pytest.mark.db]

TOKEN = "fhir-token-for-the-alert-tests-7c2e91d0"
ALERT_KINDS = ("alert.admission", "alert.transfer", "alert.discharge", "alert.cancelled", "handover.setting")


def relation(event: Any) -> dict[str, Any]:
    return dict(content_of(event).get("m.relates_to") or {})


def fresh(kind: str, bot: str) -> Callable[[Any], bool]:
    """A new notice of this kind (not an edit of an earlier one)."""
    base = is_notice(kind, bot)
    return lambda e: base(e) and relation(e).get("rel_type") != "m.replace"


def edit_of(event_id: str, bot: str) -> Callable[[Any], bool]:
    return lambda e: getattr(e, "sender", None) == bot and relation(e) == {
        "rel_type": "m.replace", "event_id": event_id}


async def room_kinds(hub: Hub, who: str, room_id: str) -> list[tuple[str, bool]]:
    """Every alert/handover notice of the room, oldest first: (kind, is an edit)."""
    client = await hub.client(who)
    response = await client.room_messages(room_id, start="", limit=200)
    events = [e for e in reversed(response.chunk) if getattr(e, "sender", None) == hub.bot]
    return [(str(kind_of(e)), relation(e).get("rel_type") == "m.replace") for e in events
            if kind_of(e) in ALERT_KINDS]


async def alert_entries(hub: Hub, state: str | None = None) -> int:
    """Outbox entries caused by hospital messages (other features enqueue their own meanwhile)."""
    assert hub.relais is not None
    query = select(func.count()).select_from(OutboxRow).where(OutboxRow.key.like("alert:%"))
    if state is not None:
        query = query.where(OutboxRow.state == state)
    async with hub.relais.db.unit() as uow:
        return int((await uow.session.execute(query)).scalar_one())


async def test_hl7_samples_over_mllp_post_the_right_notices_to_the_persons_room(hub: Hub) -> None:
    # A test hub, as the demo: the national PAM example is a debugging message (MSH-11 = D).
    await hub.setup(alerts={"ins_test_oids": True, "processing_ids": ["P", "D"]})
    relais = await hub.start()
    desk = await hub.desk()
    ghh_case, ghh_room = await hub.open_case(desk=desk, text='!new "Jeanne Dupont" --id test1:PATID1234')
    cm, gp = await hub.client("cm"), await hub.client("gp")
    await send_text(cm, ghh_room, f"!team add {hub.user('gp')} gp")
    await wait_for_event(cm, ghh_room, is_notice("team.update", hub.bot))
    await accept_invite(gp, ghh_room)
    _pam_case, pam_room = await hub.open_case(desk=desk, text='!new "Paul Martin" --ins 279035121518989')
    _merge_case, merge_room = await hub.open_case(desk=desk, text='!new "Rose Petit" --id BCBS:56789')

    assert relais.mllp_port is not None
    client = await MllpClient.connect(relais.mllp_port)
    try:
        for name in GHH:
            assert msa(await client.send(sample(name))) == ("AA", "MSG00001"), name
        ack = await client.send(b"PID|1||1^^^X^PI")  # no MSH: AE, and the connection goes on
        assert msa(ack) == ("AE", "")
        latin1 = sample("pam-fr-admission.er7").replace(b"UNICODE UTF-8", b"8859/1").replace(b"\n", b"\r\n")
        assert msa(await client.send(latin1), "latin-1") == ("AA", "3975")
        assert msa(await client.send(sample("ADT-A40-01.hl7"))) == ("AA", "8919-40")

        # The GP, a member of the room, reads each notice with their own client.
        admission = await wait_for_event(gp, ghh_room, fresh("alert.admission", hub.bot))
        # One message: who (name and reference), what, when first; then the checklist with owners.
        assert admission.body.startswith(f"Jeanne Dupont ({ghh_case}) — hospitalisation le ")
        assert "HOMERTON UNIVER" in admission.body and "suspendre les services" in admission.body
        assert content_of(admission)["msgtype"] == "m.text"  # a mention in an m.notice notifies nobody
        assert content_of(admission)["fr.relais.case"] == ghh_case
        assert set(content_of(admission)["m.mentions"]["user_ids"]) == {hub.user("cm"), hub.user("gp")}
        transfer = await wait_for_event(gp, ghh_room, fresh("alert.transfer", hub.bot))
        assert "4 East" in transfer.body and "CommunityHospital" in transfer.body
        discharge = await wait_for_event(gp, ghh_room, fresh("alert.discharge", hub.bot))
        assert "lettre de liaison" in discharge.body and "réévaluer la situation au plus tard le" in discharge.body
        readmission = await wait_for_event(gp, ghh_room, fresh("alert.admission", hub.bot))
        # A11 cancels the A04 admission: its notice is edited, and a short correction posted.
        edit = await wait_for_event(gp, ghh_room, edit_of(readmission.event_id, hub.bot))
        assert "ANNULÉ" in content_of(edit)["m.new_content"]["body"]
        correction = await wait_for_event(gp, ghh_room, fresh("alert.cancelled", hub.bot))
        assert "l'admission" in correction.body and "rétabli : domicile" in correction.body
        # A13 cancels the discharge: back in hospital.
        await wait_for_event(gp, ghh_room, edit_of(discharge.event_id, hub.bot))
        correction = await wait_for_event(gp, ghh_room, fresh("alert.cancelled", hub.bot))
        assert "la sortie" in correction.body and "rétabli : hôpital" in correction.body

        # Resending every message: acknowledged again, nothing new to post.
        before = await alert_entries(hub)
        for name in GHH:
            assert msa(await client.send(sample(name))) == ("AA", "MSG00001"), name
        assert await alert_entries(hub) == before
    finally:
        await client.close()

    assert await room_kinds(hub, "gp", ghh_room) == [
        ("alert.admission", False), ("alert.transfer", False),
        ("alert.discharge", False),
        ("alert.admission", False),  # A04; the A08 after it stayed silent
        ("alert.admission", True), ("alert.cancelled", False),
        ("alert.discharge", True), ("alert.cancelled", False),
    ]
    # IHE PAM France, in ISO-8859-1 with CRLF: matched by its (test) INS.
    pam = await wait_for_event(cm, pam_room, fresh("alert.admission", hub.bot))
    assert "CHU-X — Chir V" in pam.body
    # A40 merge: the file now answers to the surviving identifier.
    listing = await hub.command("cm", merge_room, "!id")
    assert "BCBS:12345" in listing.body and "56789" not in listing.body

    # !move (!lieu): case managers only, same handover notice as a hospital move.
    refused = await hub.command("gp", ghh_room, "!lieu domicile")
    assert kind_of(refused) == "command.error" and "gestionnaires de cas" in refused.body
    refused = await hub.command("cm", ghh_room, "!move home --date 2999-01-01")
    assert kind_of(refused) == "command.error" and "futur" in refused.body
    refused = await hub.command("cm", ghh_room, "!move castle")
    assert kind_of(refused) == "command.error" and "Usage : !lieu" in refused.body
    await send_text(cm, ghh_room, '!lieu smr "SMR Les Tilleuls"')
    moved = await wait_for_event(gp, ghh_room, fresh("handover.setting", hub.bot))
    assert "hôpital (MCO) → SMR" in moved.body and "SMR Les Tilleuls" in moved.body
    assert shows(moved, hub.user("cm"))  # recorded by, as a pill
    async with relais.db.unit() as uow:
        person = await uow.persons.get(ghh_case)
        audit = await uow.audit.entries(ghh_case)
    assert person is not None and person.setting.value == "rehab"
    assert [a[2] for a in audit if a[2] == "move"] == ["move"]


async def test_fhir_notifications_and_alerts_acknowledged_while_matrix_is_unreachable(hub: Hub) -> None:
    await hub.setup(alerts={"ins_test_oids": True}, http={"fhir_token": TOKEN})
    relais = await hub.start()
    desk = await hub.desk()
    _case, fhir_room = await hub.open_case(desk=desk, text='!new "Anne Fhir" --id 2.16.840.1.113883.4.3.25:S99952689')
    demo_case, demo_room = await hub.open_case(
        desk=desk, text=f'!new "Jeanne Démo" --ins {DEMO_NIR} --id CHU-DEMO:900001')
    cm = await hub.client("cm")
    url = f"http://127.0.0.1:{relais.http_port}/fhir/$process-message"
    admit = (SAMPLES / "fhir" / "admit-notification-message-bundle-01.json").read_bytes()
    discharge = (SAMPLES / "fhir" / "discharge-notification-message-bundle-01.json").read_bytes()
    fhir_json = {"Content-Type": "application/fhir+json"}
    good = {**fhir_json, "Authorization": f"Bearer {TOKEN}"}

    async with aiohttp.ClientSession() as http:
        for headers in (fhir_json, {**fhir_json, "Authorization": "Bearer wrong"},
                        {**fhir_json, "Authorization": f"Basic {TOKEN}"}):
            async with http.post(url, data=admit, headers=headers) as resp:
                assert resp.status == 401
                assert (await resp.json(content_type=None))["resourceType"] == "OperationOutcome"
        not_message = json.loads(admit) | {"type": "collection"}
        for body, status in ((b"{not json", 400), (json.dumps(not_message).encode(), 422),
                             (json.dumps({"resourceType": "Patient"}).encode(), 400)):
            async with http.post(url, data=body, headers=good) as resp:
                assert resp.status == status
                outcome = await resp.json(content_type=None)
                assert outcome["resourceType"] == "OperationOutcome" and outcome["issue"][0]["severity"] == "error"
        for body in (admit, discharge):
            async with http.post(url, data=body, headers=good) as resp:
                assert resp.status == 200, await resp.text()
        before = await alert_entries(hub)
        async with http.post(url, data=admit, headers=good) as resp:  # resent: acknowledged, not posted
            assert resp.status == 200 and "duplicate" in await resp.text()
        assert await alert_entries(hub) == before

    emergency = await wait_for_event(cm, fhir_room, fresh("alert.admission", hub.bot))
    assert "urgences" in emergency.body and "HOLY FAMILY HOSPITAL" in emergency.body
    assert "suspendre les services à domicile" in emergency.body  # the move's checklist, same message
    out = await wait_for_event(cm, fhir_room, fresh("alert.discharge", hub.bot))
    assert "Vers : domicile" in out.body
    assert "/10/2018" in out.body and "2018-10" not in out.body  # re-evaluation due date, a French date

    # Matrix unreachable for the hub: the demo's hospital stay is acknowledged and kept...
    relais.outbox.stop()
    assert await play_hospital_stay(relais)
    assert await alert_entries(hub, "pending") == 2  # one message per hospital event
    async with relais.db.unit() as uow:
        person = await uow.persons.get(demo_case)
    assert person is not None and person.setting.value == "home" and person.hospital_return is not None
    await relais.stop(drain_timeout=0.1)
    hub.relais = None
    # ...and posted exactly once after the restart; the demo never plays it twice.
    relais = await hub.start()
    assert not await play_hospital_stay(relais)
    await wait_for_event(cm, demo_room, fresh("alert.admission", hub.bot))
    last = await wait_for_event(cm, demo_room, fresh("alert.discharge", hub.bot))
    assert "CHU-DEMO — Médecine gériatrique" in last.body
    assert await room_kinds(hub, "cm", demo_room) == [("alert.admission", False), ("alert.discharge", False)]
    assert await alert_entries(hub, "pending") == 0 and await alert_entries(hub, "failed") == 0
