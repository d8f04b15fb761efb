"""Integrated access on a real Synapse (SPEC §9): a referrer configured nowhere refers a person
from a direct room; the triage room assesses and accepts; the file opens, the GP is invited, the
referrer is told. The FHIR path over real HTTP, then refused, reaches the same triage room."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import nio
import pytest

from hub.clock import FakeClock
from tests.faults.harness import until
from tests.hub_harness import Hub, content_of, is_notice, kind_of, shows
from tests.matrix_helpers import accept_invite, sync, wait_for_event

pytestmark = [pytest.mark.matrix, pytest.mark.db]

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
TOKEN = "fhir-token-for-the-referral-tests"
ENCRYPTED = {"type": "m.room.encryption", "state_key": "", "content": {"algorithm": "m.megolm.v1.aes-sha2"}}


async def _direct_room(client: nio.AsyncClient, bot: str, encrypted: bool = True, also: str | None = None) -> str:
    invite = [bot, also] if also else [bot]
    resp = await client.room_create(is_direct=True, invite=invite, preset=nio.RoomPreset.trusted_private_chat,
                                    initial_state=[ENCRYPTED] if encrypted else [])
    assert isinstance(resp, nio.RoomCreateResponse), resp
    return str(resp.room_id)


async def _membership(client: nio.AsyncClient, room_id: str, user: str, wanted: str) -> None:
    deadline = time.monotonic() + 30.0
    while time.monotonic() < deadline:
        resp = await client.room_get_state_event(room_id, "m.room.member", user)
        if getattr(resp, "content", {}).get("membership") == wanted:
            return
        await sync(client)
    raise AssertionError(f"{user} never reached {wanted} in {room_id}")


def _triage_invite(client: nio.AsyncClient, bot: str) -> str | None:
    return next((str(r) for r, room in client.invited_rooms.items() if room.inviter == bot), None)


async def test_a_referrer_configured_nowhere_refers_and_is_told_the_decision(hub: Hub) -> None:
    await hub.client("coord")
    await hub.setup(care={"coordinators": [hub.user("coord")]}, http={"fhir_token": TOKEN})
    clock = FakeClock(T0)
    relais = await hub.start(clock=clock)
    coord, cm = await hub.client("coord"), await hub.client("cm")
    doc, gp = await hub.client("doc"), await hub.client("gp")

    triage = None
    for _ in range(60):
        triage = _triage_invite(coord, hub.bot)
        if triage:
            break
        await sync(coord)
    assert triage is not None, "the coordinator was never invited to the triage room"
    await accept_invite(coord, triage)
    await wait_for_event(coord, triage, is_notice("command.reply", hub.bot))  # the welcome
    async with relais.db.unit() as uow:
        assert await uow.desks.room_of("triage") == triage
    state = await coord.room_get_state(triage)
    shown = json.dumps(getattr(state, "events", []))
    assert "Paulette" not in shown and '"algorithm": "m.megolm.v1.aes-sha2"' in shown

    # A direct room with a third person or without encryption is left; an encrypted one with only
    # the referrer is kept.
    crowded = await _direct_room(doc, hub.bot, also=hub.user("gp"))
    plain = await _direct_room(doc, hub.bot, encrypted=False)
    await _membership(doc, crowded, hub.bot, "leave")
    await _membership(doc, plain, hub.bot, "leave")
    dm = await _direct_room(doc, hub.bot)
    await _membership(doc, dm, hub.bot, "join")

    helped = await hub.command("doc", dm, "!aide")
    assert "!orienter" in helped.body and "!nouveau" not in helped.body and "!orientation" not in helped.body
    refused = await hub.command("doc", dm, '!nouveau "Paulette Exemple"')
    assert kind_of(refused) == "command.error" and "!orienter" in refused.body
    bad_date = await hub.command("doc", dm, '!orienter "Paulette Exemple" --naissance 1938-13-45 --motif "x"')
    assert kind_of(bad_date) == "command.error" and "1938-13-45" in bad_date.body and "--naissance" in bad_date.body
    missing = await hub.command("doc", dm, '!orienter "Paulette Exemple" --naissance 1938-07-14')
    assert kind_of(missing) == "command.error" and "motif" in missing.body
    reply = await hub.command(
        "doc", dm, f'!orienter "Paulette Exemple" --naissance 1938-07-14 --medecin {hub.user("gp")} '
                   '--motif "chutes répétées, vit seule, fils à 600 km"')
    assert kind_of(reply) == "command.reply" and "O-2026-0001" in reply.body, reply.body

    new = await wait_for_event(coord, triage, is_notice("referral.new", hub.bot))
    assert "Paulette Exemple" in new.body and "chutes répétées" in new.body and "O-2026-0001" in new.body

    listed = await hub.command("coord", triage, "!orientations")
    assert "O-2026-0001" in listed.body and "0 j" in listed.body
    # A desk-or-room command would show the sender's own files to the whole triage team.
    mine = await hub.command("coord", triage, "!droits")
    assert kind_of(mine) == "command.error" and "guichet" in mine.body, mine.body
    crit = await hub.command("coord", triage,
                             "!orientation critères O-2026-0001 autonomie=oui aides=oui coordination=non")
    assert kind_of(crit) == "command.reply" and "coordination non" in crit.body
    early = await hub.command("coord", triage, "!orientation accepter O-2026-0001")
    assert kind_of(early) == "command.error" and "coordonner" in early.body
    async with relais.db.unit() as uow:
        assert await uow.persons.active_refs(hub.user("cm")) == []  # a refused command changed nothing
    await hub.command("coord", triage, "!referral criteria O-2026-0001 coordination=yes")
    accepted = await hub.command("coord", triage, "!orientation accepter O-2026-0001")
    assert kind_of(accepted) == "command.reply" and "R-2026-0001" in accepted.body, accepted.body
    assert shows(accepted, hub.user("cm"))

    decision = await wait_for_event(doc, dm, is_notice("referral.decision", hub.bot))
    body: dict[str, Any] = content_of(decision)
    assert body["msgtype"] == "m.text" and body["m.mentions"] == {"user_ids": [hub.user("doc")]}
    assert shows(decision, hub.user("cm")) and "O-2026-0001" in decision.body
    case_room = await hub.invited_room(gp)  # the referral's GP is invited to the file's room…
    await accept_invite(cm, case_room)  # …with the chosen case manager (who also has a desk and triage)
    opened = await wait_for_event(cm, case_room, is_notice("referral.opened", hub.bot))
    assert "chutes répétées" in opened.body and content_of(opened)["fr.relais.case"] == "R-2026-0001"
    async with relais.db.unit() as uow:
        person = await uow.persons.get("R-2026-0001")
    assert person is not None and person.referent == hub.user("cm") and person.room_id == case_room
    async with relais.db.unit() as uow:
        audit = await uow.audit.entries()
    assert {"refer", "referral criteria", "referral accept"} <= {a[2] for a in audit}
    assert "1938-07-14" not in json.dumps([a[3] for a in audit])  # the birth date goes with the referral

    # The FHIR path over real HTTP reaches the same triage room, and a refusal is readable there.
    url = f"http://127.0.0.1:{relais.http_port}/fhir/ServiceRequest"
    request = {
        "resourceType": "ServiceRequest", "status": "active", "intent": "order",
        "identifier": [{"system": "urn:oid:1.2.250.1.71.4.2.1", "value": "SR-1"}],
        "contained": [{"resourceType": "Patient", "id": "p", "name": [{"family": "Martin", "given": ["Louise"]}],
                       "birthDate": "1935-01-02",
                       "identifier": [{"system": "urn:oid:1.2.250.1.71.4.2.7", "value": "IPP77"}]}],
        "subject": {"reference": "#p"}, "requester": {"display": "Dr Hôpital, CH Est"},
        "note": [{"text": "sortie d'hospitalisation, isolement"}],
    }
    headers = {"Content-Type": "application/fhir+json", "Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession() as http:
        async with http.post(url, json=request, headers={**headers, "Authorization": "Bearer no"}) as resp:
            assert resp.status == 401
        no_birth = {**request, "contained": [{"resourceType": "Patient", "id": "p", "name": [{"text": "X"}]}]}
        for bad, status in ((b"{", 400), (json.dumps({**request, "intent": 3}).encode(), 400),
                            (json.dumps(no_birth).encode(), 422),
                            (json.dumps({k: v for k, v in request.items() if k != "note"}).encode(), 422)):
            async with http.post(url, data=bad, headers=headers) as resp:
                outcome = await resp.json(content_type=None)
                assert resp.status == status and outcome["resourceType"] == "OperationOutcome", outcome
                assert "Martin" not in json.dumps(outcome)
        async with http.post(url, json=request, headers=headers) as resp:
            assert resp.status == 201 and resp.headers["Location"] == "/fhir/ServiceRequest/O-2026-0002"
        async with http.post(url, json=request, headers=headers) as resp:  # resent: the same one
            assert resp.status == 200 and resp.headers["Location"] == "/fhir/ServiceRequest/O-2026-0002"
        fhir_new = await wait_for_event(coord, triage, is_notice("referral.new", hub.bot))
        assert "Louise Martin" in fhir_new.body and "FHIR" in fhir_new.body
        # Undecided for 7 days: reminded in the triage room (the scheduler's sweep, clock moved).
        clock.advance(timedelta(days=7))
        assert await relais.referrals.sweep(clock.now()) == 1
        reminder = await wait_for_event(coord, triage, is_notice("referral.reminder", hub.bot))
        assert "O-2026-0002" in reminder.body and "7" in reminder.body and "Martin" not in reminder.body
        refusal = await hub.command("coord", triage,
                                    '!orientation refuser O-2026-0002 "relève du SSIAD" --vers "SSIAD Est"')
        assert kind_of(refusal) == "command.reply", refusal.body
        async with http.get(url + "/O-2026-0002", headers=headers) as resp:
            assert resp.status == 200 and (await resp.json(content_type=None))["status"] == "revoked"
        async with http.get(f"http://127.0.0.1:{relais.admin_port}/metrics") as resp:
            metrics = await resp.text()
        assert 'relais_referrals_total{outcome="received",source="fhir"} 1.0' in metrics
        assert 'relais_referrals_total{outcome="duplicate",source="fhir"} 1.0' in metrics
        assert "Martin" not in metrics and "O-2026" not in metrics
    async with relais.db.unit() as uow:
        assert len(await uow.referrals.pending()) == 0
    # 90 days after the refusal its personal data goes, and the triage notice naming the person
    # is redacted on the homeserver; the counts stay.
    clock.advance(timedelta(days=90))
    assert await relais.referrals.sweep(clock.now()) == 1
    redaction = await wait_for_event(
        coord, triage, lambda e: isinstance(e, nio.RedactionEvent) and e.redacts == fhir_new.event_id)
    assert redaction.sender == hub.bot
    async with relais.db.unit() as uow:
        erased = await uow.referrals.lock("O-2026-0002")
        counts = await uow.referrals.count_rows()
    assert erased is not None and erased.name == "" and erased.reason == "" and len(counts) == 2


async def test_a_referrers_room_that_stops_being_private_gets_no_decision(hub: Hub) -> None:
    # The decision names the person: once a third person is invited into the referrer's direct
    # room, the bot says so, leaves, and answers in the next private room the referrer opens.
    await hub.client("coord")
    await hub.setup(care={"coordinators": [hub.user("coord")]})
    relais = await hub.start()
    coord, doc, gp = await hub.client("coord"), await hub.client("doc"), await hub.client("gp")
    triage = None
    for _ in range(60):
        if triage := _triage_invite(coord, hub.bot):
            break
        await sync(coord)
    assert triage is not None
    await accept_invite(coord, triage)
    dm = await _direct_room(doc, hub.bot)
    await _membership(doc, dm, hub.bot, "join")
    reply = await hub.command("doc", dm, '!orienter "Paulette Exemple" --naissance 1938-07-14 --motif "chutes"')
    assert kind_of(reply) == "command.reply" and "O-2026-0001" in reply.body

    invited = await doc.room_invite(dm, hub.user("gp"))
    assert isinstance(invited, nio.RoomInviteResponse), invited
    told = await wait_for_event(doc, dm, is_notice("command.reply", hub.bot))
    assert "privé" in told.body and "Paulette" not in told.body
    await _membership(doc, dm, hub.bot, "leave")
    async with relais.db.unit() as uow:
        (pending,) = await uow.referrals.pending()
        assert pending.referrer_room is None and await uow.referrals.referrer_of(dm) is None

    again = await _direct_room(doc, hub.bot)  # a new private room: the pending referral follows
    await _membership(doc, again, hub.bot, "join")

    async def followed() -> bool:  # the room is taken once its state passed the checks, after the join
        async with relais.db.unit() as uow:
            (pending,) = await uow.referrals.pending()
            return pending.referrer_room == again

    await until(followed, "the pending referral answered in the new room", 30)
    await hub.command("coord", triage, "!orientation critères O-2026-0001 autonomie=oui aides=oui coordination=oui")
    accepted = await hub.command("coord", triage, "!orientation accepter O-2026-0001")
    assert kind_of(accepted) == "command.reply", accepted.body
    decision = await wait_for_event(doc, again, is_notice("referral.decision", hub.bot))
    assert "O-2026-0001" in decision.body
    await accept_invite(gp, dm)
    seen = await gp.room_messages(dm, start="", limit=100)
    assert isinstance(seen, nio.RoomMessagesResponse)
    assert not [e for e in seen.chunk if "Paulette" in str(getattr(e, "body", ""))]


async def test_a_decision_taken_while_the_referrer_had_no_room_reaches_their_next_one(hub: Hub) -> None:
    # The referrer's room was given up (a third person entered it); the referral is refused
    # before they open another: the decision must still reach them, in the next room, once.
    await hub.client("coord")
    await hub.setup(care={"coordinators": [hub.user("coord")]})
    relais = await hub.start()
    coord, doc = await hub.client("coord"), await hub.client("doc")
    triage = None
    for _ in range(60):
        if triage := _triage_invite(coord, hub.bot):
            break
        await sync(coord)
    assert triage is not None
    await accept_invite(coord, triage)
    dm = await _direct_room(doc, hub.bot)
    await _membership(doc, dm, hub.bot, "join")
    reply = await hub.command("doc", dm, '!orienter "Paulette Exemple" --naissance 1938-07-14 --motif "chutes"')
    assert "O-2026-0001" in reply.body
    invited = await doc.room_invite(dm, hub.user("gp"))
    assert isinstance(invited, nio.RoomInviteResponse), invited
    await _membership(doc, dm, hub.bot, "leave")

    refused = await hub.command("coord", triage, '!orientation refuser O-2026-0001 "aides suffisantes" '
                                                 '--vers "SSIAD du secteur"')
    assert kind_of(refused) == "command.reply", refused.body
    async with relais.db.unit() as uow:
        (stored,) = [r for r in await uow.referrals.decided_without_room(hub.user("doc"))]
        assert stored.ref == "O-2026-0001"

    again = await _direct_room(doc, hub.bot)
    await _membership(doc, again, hub.bot, "join")
    decision = await wait_for_event(doc, again, is_notice("referral.decision", hub.bot))
    assert "O-2026-0001" in decision.body and "aides suffisantes" in decision.body
    assert "SSIAD du secteur" in decision.body
    content = content_of(decision)
    assert content["msgtype"] == "m.text" and content["m.mentions"] == {"user_ids": [hub.user("doc")]}
    async with relais.db.unit() as uow:
        assert await uow.referrals.decided_without_room(hub.user("doc")) == []


async def _triage_room(hub: Hub, coord: nio.AsyncClient) -> str:
    triage = None
    for _ in range(60):
        if triage := _triage_invite(coord, hub.bot):
            break
        await sync(coord)
    assert triage is not None, "the coordinator was never invited to the triage room"
    await accept_invite(coord, triage)
    return triage


def _service_request(identifier: str, gp: dict[str, Any] | None) -> dict[str, Any]:
    patient: dict[str, Any] = {"resourceType": "Patient", "id": "p", "name": [{"text": "Louise Martin"}],
                               "birthDate": "1935-01-02",
                               "identifier": [{"system": "urn:oid:1.2.250.1.71.4.2.7", "value": identifier}]}
    contained: list[dict[str, Any]] = [patient]
    if gp is not None:
        patient["generalPractitioner"] = [{"reference": "#gp"}]
        contained.append({"resourceType": "Practitioner", "id": "gp", **gp})
    return {"resourceType": "ServiceRequest", "status": "active", "intent": "order",
            "identifier": [{"system": "urn:oid:1.2.250.1.71.4.2.1", "value": f"SR-{identifier}"}],
            "contained": contained, "subject": {"reference": "#p"}, "requester": {"display": "CH Est"},
            "note": [{"text": "sortie d'hospitalisation, isolement"}]}


async def test_a_fhir_referral_names_the_gp_who_is_invited_on_acceptance(hub: Hub) -> None:
    """A hospital names the GP as FHIR does: the contained Patient's generalPractitioner refers to
    a contained Practitioner whose telecom holds a Matrix URI. On acceptance the GP is invited to
    the file's room. A GP on a server that is not allowed, or a malformed address, is a 422 naming
    the element, and nothing is kept."""
    await hub.client("coord")
    await hub.setup(care={"coordinators": [hub.user("coord")]}, http={"fhir_token": TOKEN})
    relais = await hub.start(clock=FakeClock(T0))
    coord, gp = await hub.client("coord"), await hub.client("gp")
    triage = await _triage_room(hub, coord)
    url = f"http://127.0.0.1:{relais.http_port}/fhir/ServiceRequest"
    headers = {"Content-Type": "application/fhir+json", "Authorization": f"Bearer {TOKEN}"}
    local, server = hub.user("gp")[1:].split(":", 1)
    async with aiohttp.ClientSession() as http:
        for bad, element in (
            ({"telecom": [{"system": "url", "value": f"matrix:u/{local}:elsewhere.example"}]},
             "ServiceRequest.contained[1].telecom[0]"),
            ({"telecom": [{"system": "email", "value": "gp@medecin.mssante.fr"},
                          {"system": "url", "value": f"https://matrix.to/#/{local}"}]},
             "ServiceRequest.contained[1].telecom[1]"),
        ):
            async with http.post(url, json=_service_request("IPP1", bad), headers=headers) as resp:
                outcome = await resp.json(content_type=None)
            assert resp.status == 422 and outcome["issue"][0]["expression"] == [element], outcome
            assert "Martin" not in json.dumps(outcome)
        async with relais.db.unit() as uow:
            assert await uow.referrals.pending() == []  # nothing stored
        good = {"telecom": [{"system": "email", "value": "gp@medecin.mssante.fr"},
                            {"system": "url", "value": f"matrix:u/{local}:{server}?action=chat"}]}
        async with http.post(url, json=_service_request("IPP1", good), headers=headers) as resp:
            assert resp.status == 201, await resp.text()
            ref = resp.headers["Location"].rsplit("/", 1)[1]
        async with http.post(url, json=_service_request("IPP1", good), headers=headers) as resp:
            assert resp.status == 200 and resp.headers["Location"].endswith(ref)  # the same, resent
        # The same request identifier with another content (another birth date) is not "already
        # received": that would drop the change silently.
        changed = _service_request("IPP1", good)
        changed["contained"][0]["birthDate"] = "1935-01-03"
        async with http.post(url, json=changed, headers=headers) as resp:
            outcome = await resp.json(content_type=None)
        assert resp.status == 409 and outcome["issue"][0]["code"] == "conflict", outcome
        assert "Martin" not in json.dumps(outcome) and "1935" not in json.dumps(outcome)
    new = await wait_for_event(coord, triage, is_notice("referral.new", hub.bot))
    assert ref in new.body and shows(new, hub.user("gp"))
    await hub.command("coord", triage, f"!orientation critères {ref} autonomie=oui aides=oui coordination=oui")
    accepted = await hub.command("coord", triage, f"!orientation accepter {ref}")
    assert kind_of(accepted) == "command.reply", accepted.body
    case_room = await hub.invited_room(gp)
    async with relais.db.unit() as uow:
        (person,) = [p for p in [await uow.persons.get("R-2026-0001")] if p is not None]
        members = await uow.team.members(person.case_ref)
    assert person.room_id == case_room
    assert [(m.user_id, m.role.value) for m in members if m.user_id == hub.user("gp")] == [(hub.user("gp"), "gp")]


async def _messages(client: nio.AsyncClient, room_id: str) -> list[Any]:
    seen = await client.room_messages(room_id, start="", limit=100)
    assert isinstance(seen, nio.RoomMessagesResponse), seen
    return list(seen.chunk)


async def test_a_lost_triage_room_is_opened_anew_once_with_its_pending_referrals(hub: Hub) -> None:
    """An administrator deletes the triage room (every member, the bot included, removed): the
    bot opens a new one once, invites the team, posts there every pending referral it had posted
    in the lost room, and what was on its way to the old room arrives in the new one."""
    from tests.matrix_helpers import admin_token, delete_room

    await hub.client("coord")
    await hub.setup(care={"coordinators": [hub.user("coord")]}, http={"fhir_token": TOKEN})
    clock = FakeClock(T0)
    relais = await hub.start(clock=clock)
    coord = await hub.client("coord")
    lost = await _triage_room(hub, coord)
    url = f"http://127.0.0.1:{relais.http_port}/fhir/ServiceRequest"
    headers = {"Content-Type": "application/fhir+json", "Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession() as http:
        for ipp in ("A1", "B2"):
            async with http.post(url, json=_service_request(ipp, None), headers=headers) as resp:
                assert resp.status == 201
        await hub.command("coord", lost, "!orientation refuser O-2026-0002 \"aides suffisantes\"")

        async def both_posted() -> bool:
            return [e for e in await _messages(coord, lost) if kind_of(e) == "referral.new"].__len__() == 2

        await until(both_posted, "both referrals posted in the first triage room", 60)
        await delete_room(hub.synapse, await admin_token(hub.synapse), lost)
        async with http.post(url, json=_service_request("C3", None), headers=headers) as resp:
            assert resp.status == 201  # on its way while the room is lost

    new = await hub.invited_room(coord)
    assert new != lost
    await accept_invite(coord, new)
    renewed = await wait_for_event(coord, new, is_notice("command.reply", hub.bot), timeout=60)

    async def posted_refs() -> list[str]:
        return sorted(ref for e in await _messages(coord, new) if kind_of(e) == "referral.new"
                      for ref in ("O-2026-0001", "O-2026-0002", "O-2026-0003") if ref in e.body)

    async def all_there() -> bool:
        return await posted_refs() == ["O-2026-0001", "O-2026-0003"]

    await until(all_there, "the pending referrals posted once each in the new triage room", 60)
    await hub.command("coord", new, "!orientations")  # a round trip: nothing else was on its way
    assert await posted_refs() == ["O-2026-0001", "O-2026-0003"]  # once each; the refused one not again
    bodies = [e.body for e in await _messages(coord, new) if kind_of(e) == "command.reply"]
    assert any("perdu" in b and "1 orientation en attente" in b for b in bodies), (renewed.body, bodies)
    async with relais.db.unit() as uow:
        assert await uow.desks.room_of("triage") == new
        assert await uow.kv.get("triage_generation") == "1"
    listed = await hub.command("coord", new, "!orientations")
    assert "O-2026-0001" in listed.body and "O-2026-0003" in listed.body

    # Erasure of a re-posted referral redacts its notice in the room the bot is in.
    await hub.command("coord", new, '!orientation refuser O-2026-0001 "aides suffisantes"')
    clock.advance(timedelta(days=90))
    assert await relais.referrals.sweep(clock.now()) >= 1
    async with relais.db.unit() as uow:
        reposted = await uow.outbox.event_id_of("referral-new:O-2026-0001@1:0")
    assert reposted is not None
    await wait_for_event(coord, new, lambda e: isinstance(e, nio.RedactionEvent) and e.redacts == reposted)
    await sync(coord)
    assert not [r for r, room in coord.invited_rooms.items() if room.inviter == hub.bot]  # one new room only


async def test_a_referrer_who_removed_the_bot_is_told_the_decision_in_their_next_room(hub: Hub) -> None:
    """The referrer removes the bot from their direct room (Element: "Remove from room"): the
    decision taken afterwards is posted in the next direct room they open with the bot, once —
    never in the room the bot was removed from, never reported to the pilots as a failure."""
    await hub.client("coord")
    await hub.setup(care={"coordinators": [hub.user("coord")]}, pilots=("pilot",))
    relais = await hub.start()
    coord, doc = await hub.client("coord"), await hub.client("doc")
    triage = await _triage_room(hub, coord)
    made = await doc.room_create(is_direct=True, invite=[hub.bot], preset=nio.RoomPreset.private_chat,
                                 initial_state=[ENCRYPTED])
    assert isinstance(made, nio.RoomCreateResponse), made
    dm = str(made.room_id)
    await _membership(doc, dm, hub.bot, "join")
    reply = await hub.command("doc", dm, '!orienter "Paulette Exemple" --naissance 1938-07-14 --motif "chutes"')
    assert "O-2026-" in reply.body
    ref = next(w for w in reply.body.split() if w.startswith("O-2026-")).strip(".,")
    kicked = await doc.room_kick(dm, hub.bot, "plus besoin")
    assert isinstance(kicked, nio.RoomKickResponse), kicked

    async def given_up() -> bool:
        async with relais.db.unit() as uow:
            return await uow.referrals.referrer_of(dm) is None

    await until(given_up, "the room the bot was removed from given up", 60)
    refused = await hub.command("coord", triage, f'!orientation refuser {ref} "aides suffisantes"')
    assert kind_of(refused) == "command.reply", refused.body

    again = await _direct_room(doc, hub.bot)
    await _membership(doc, again, hub.bot, "join")
    decision = await wait_for_event(doc, again, is_notice("referral.decision", hub.bot), timeout=60)
    assert ref in decision.body and "aides suffisantes" in decision.body
    await hub.command("doc", again, "!aide")  # a round trip: nothing else on its way
    seen = [e for e in await _messages(doc, again) if kind_of(e) == "referral.decision"]
    assert len(seen) == 1
    async with relais.db.unit() as uow:
        assert await uow.outbox.count("failed") == 0  # nothing set aside, nobody alarmed
