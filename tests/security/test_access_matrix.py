"""Who may do what, checked on the real Synapse: the access matrix of SPEC §2–§4 (a literal table,
not read from the registry), invites off the allowed servers, a removed member's view of the room,
and strangers at the MLLP and FHIR doors.

One hub for the whole matrix: every cell is a real command typed by a real client, and its result
is the kind of the bot's answer. A refused cell must also change nothing (the records a command
can touch are compared before and after). People outside the care team are never invited, so they
cannot type in the room at all: for them every cell is the homeserver refusing their join and
their message (checked per command), which is where Matrix puts that boundary.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from typing import Any

import aiohttp
import nio
import pytest
from sqlalchemy import text

from hub.inbound.mllp import frame
from tests.hub_harness import Hub, content_of, kind_of, shows
from tests.inbound.mllp_client import MllpClient, msa, sample
from tests.matrix_helpers import _SEEN, accept_invite, send_text, skip_seen, sync, wait_for_event
from tests.samples_path import SAMPLES

pytestmark = [pytest.mark.matrix, pytest.mark.db]

TOKEN = "fhir-token-access-matrix-3b9e-5a0f7d2c61e8"
#: The person of the main file carries the identifiers of the hospital samples used below.
MAIN = '!nouveau "Jeanne Dupont" --born 1938-05-14 --id test1:PATID1234 --id 2.16.840.1.113883.4.3.25:S99952689'

Y, N, OUT = "allowed", "refused", "outside"  # OUT: not in the room, the homeserver refuses

# Actors. cm: the person's referent case manager; cm2: a case manager of the same person (in the
# team with the role case_manager); cm3: a configured case manager with nothing to do with this
# person; gp: a GP of the team; pilot: the territory pilot; stranger: an account on the same
# homeserver that no one added. (A user of an unknown server cannot even be invited: see
# test_invites_off_the_allowed_servers_are_refused_and_nothing_is_sent.)
IN_ROOM = ("gp", "cm", "cm2")  # refusals first in each row, so the allowed ones find the setup intact
OUTSIDE = ("cm3", "pilot", "stranger")

# SPEC §2 (a professional reads and writes in their rooms, the pilot has no access to person rooms),
# §3 (membership follows the team; only the bot invites), §4 (mutating commands only from the
# person's case managers). Columns: gp, cm (referent), cm2 (co-case manager) | cm3, pilot, stranger.
ROOM_MATRIX: list[tuple[str, dict[str, str]]] = [
    ("!equipe",               {"gp": Y, "cm": Y, "cm2": Y, "cm3": OUT, "pilot": OUT, "stranger": OUT}),
    ("!plan",                 {"gp": Y, "cm": Y, "cm2": Y, "cm3": OUT, "pilot": OUT, "stranger": OUT}),
    ("!consentement",         {"gp": Y, "cm": Y, "cm2": Y, "cm3": OUT, "pilot": OUT, "stranger": OUT}),
    ("!eval",                 {"gp": Y, "cm": Y, "cm2": Y, "cm3": OUT, "pilot": OUT, "stranger": OUT}),
    ("!droits",               {"gp": N, "cm": Y, "cm2": Y, "cm3": OUT, "pilot": OUT, "stranger": OUT}),
    ("!id",                   {"gp": Y, "cm": Y, "cm2": Y, "cm3": OUT, "pilot": OUT, "stranger": OUT}),
    ("!aide",                 {"gp": Y, "cm": Y, "cm2": Y, "cm3": OUT, "pilot": OUT, "stranger": OUT}),
    ("!equipe ajouter",       {"gp": N, "cm": Y, "cm2": Y, "cm3": OUT, "pilot": OUT, "stranger": OUT}),
    ("!equipe retirer",       {"gp": N, "cm": Y, "cm2": Y, "cm3": OUT, "pilot": OUT, "stranger": OUT}),
    ("!plan ajouter",         {"gp": N, "cm": Y, "cm2": Y, "cm3": OUT, "pilot": OUT, "stranger": OUT}),
    ("!eval faite",           {"gp": N, "cm": Y, "cm2": Y, "cm3": OUT, "pilot": OUT, "stranger": OUT}),
    ("!lieu",                 {"gp": N, "cm": Y, "cm2": Y, "cm3": OUT, "pilot": OUT, "stranger": OUT}),
    ("!consentement informe", {"gp": N, "cm": Y, "cm2": Y, "cm3": OUT, "pilot": OUT, "stranger": OUT}),
    ("!rupture",              {"gp": N, "cm": Y, "cm2": Y, "cm3": OUT, "pilot": OUT, "stranger": OUT}),
    ("!id ajouter",           {"gp": N, "cm": Y, "cm2": Y, "cm3": OUT, "pilot": OUT, "stranger": OUT}),
    # Last, after the removed-member check: the referent closes the file (cm2 left unchecked: one close).
    ("!cloturer",             {"gp": N, "cm": Y}),
]

# SPEC §3–§4: each case manager and pilot talks to the bot in their own desk; the desk commands are
# the case managers' (the file's referent for !transferer), !rapport is the pilots'. A GP has no desk;
# a stranger cannot join someone's desk (checked below).
DESK_ORDER = ("pilot", "cm3", "cm2", "cm")
DESK_MATRIX: list[tuple[str, dict[str, str]]] = [
    ("!aide",        {"pilot": Y, "cm3": Y, "cm2": Y, "cm": Y}),
    ("!file-active", {"pilot": N, "cm3": Y, "cm2": Y, "cm": Y}),
    ("!droits",      {"pilot": N, "cm3": Y, "cm2": Y, "cm": Y}),
    ("!nouveau",     {"pilot": N, "cm3": Y, "cm2": Y, "cm": Y}),
    ("!transferer",  {"pilot": N, "cm3": N, "cm2": N, "cm": Y}),  # cm: their own second file
    ("!rapport",     {"pilot": Y, "cm3": N, "cm2": N, "cm": N}),
]

#: What a command can change; the scheduler's bookkeeping (prompts, reminders) and the transport
#: tables (claimed events, outbox, sync token) are left out.
RECORD_TABLES = ("persons", "person_identifiers", "desks", "team_members", "audit_log", "plan_items",
                 "evaluations", "consent_records", "continuity_breaks", "handovers", "setting_changes",
                 "concertations", "concertation_decisions", "inbound_messages", "alerts", "rights_reviews")


#: Notices the bot posts on its own schedule, never as the answer to a command.
BACKGROUND = ("reevaluation.", "plan.review", "consent.reminder", "encryption.", "concertation.reminder")


async def answer(hub: Hub, who: str, room_id: str, command: str) -> Any:
    """Type a command; the bot's first notice after it: `command.error` for a refusal, otherwise
    the command's outcome (`command.reply`, or the notice of what changed: `team.update`…)."""
    client = await hub.client(who)
    await skip_seen(client, room_id)
    await send_text(client, room_id, command)

    def outcome(event: Any) -> bool:
        kind = kind_of(event)
        return getattr(event, "sender", None) == hub.bot and kind is not None and not kind.startswith(BACKGROUND)
    return await wait_for_event(client, room_id, outcome)


def cell_count() -> int:
    """The cells test_access_matrix… checks (and asserts it did): the two tables, each outsider's join,
    the stranger at each desk, the removed member's view. bench/reliability.py reports it."""
    return (sum(len(row) for _l, row in ROOM_MATRIX) + sum(len(row) for _l, row in DESK_MATRIX)
            + len(OUTSIDE) + len(DESK_ORDER) + 1)


async def records(hub: Hub) -> dict[str, list[tuple[Any, ...]]]:
    assert hub.relais is not None
    out: dict[str, list[tuple[Any, ...]]] = {}
    async with hub.relais.db.unit() as uow:
        for table in RECORD_TABLES:
            rows = (await uow.session.execute(text(f"SELECT * FROM {table}"))).all()
            out[table] = sorted((tuple(r) for r in rows), key=repr)
    return out


async def audit_actions(hub: Hub) -> list[tuple[str, str]]:
    assert hub.relais is not None
    async with hub.relais.db.unit() as uow:
        return [(actor, action) for _at, actor, action, _d in await uow.audit.entries()]


async def raw_send(client: nio.AsyncClient, room_id: str, body: str) -> int:
    """PUT a plain m.room.message as `client`, whatever nio knows of the room: the HTTP status."""
    txn = f"am-{secrets.token_hex(8)}"
    async with aiohttp.ClientSession() as http, http.put(
            f"{client.homeserver}/_matrix/client/v3/rooms/{room_id}/send/m.room.message/{txn}",
            json={"msgtype": "m.text", "body": body},
            headers={"Authorization": f"Bearer {client.access_token}"}) as resp:
        return resp.status


async def raw_event(client: nio.AsyncClient, room_id: str, event_id: str) -> dict[str, Any]:
    """The event as the homeserver serves it to `client` (still encrypted: nio would decrypt it)."""
    async with aiohttp.ClientSession() as http, http.get(
            f"{client.homeserver}/_matrix/client/v3/rooms/{room_id}/event/{event_id}",
            headers={"Authorization": f"Bearer {client.access_token}"}) as resp:
        assert resp.status == 200, await resp.text()
        return dict(await resp.json())


async def join_refused(client: nio.AsyncClient, room_id: str) -> bool:
    response = await client.join(room_id)
    return isinstance(response, nio.JoinError) and response.status_code == "M_FORBIDDEN"


async def member_ids(hub: Hub, room_id: str) -> dict[str, str]:
    """Everyone with a membership in the room (joined, invited, left…), as the homeserver keeps it."""
    cm = await hub.client("cm")
    state = await cm.room_get_state(room_id)
    assert isinstance(state, nio.RoomGetStateResponse), state
    return {e["state_key"]: e["content"]["membership"] for e in state.events if e["type"] == "m.room.member"}


class Matrix:
    """Runs cells, collects every mismatch, counts what was checked."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.failures: list[str] = []
        self.cells = 0
        self.results: dict[tuple[str, str], str] = {}

    async def typed(self, who: str, room_id: str, label: str, command: str, expected: str) -> Any:
        before = await records(self.hub)
        audit_before = await audit_actions(self.hub)
        reply = await answer(self.hub, who, room_id, command)
        got = N if kind_of(reply) == "command.error" else Y
        self.cells += 1
        self.results[(label, who)] = got
        where = f"{who} × {command!r}"
        if got != expected:
            self.failures.append(f"{where}: expected {expected}, got {got}: {reply.body[:160]!r}")
            return reply
        if expected == N:
            # "seul le gestionnaire de cas…", "seul le pilote…", "seul·e le·la référent·e…"
            if "seul" not in reply.body:
                self.failures.append(f"{where}: refused, but not for want of the right: {reply.body[:160]!r}")
            after = await records(self.hub)
            changed = [t for t in RECORD_TABLES if before[t] != after[t]]
            if changed:
                self.failures.append(f"{where}: refused but changed {changed}")
        else:
            # SPEC §4: every accepted command is audited, the reading ones too (who read the file).
            new = (await audit_actions(self.hub))[len(audit_before):]
            expected_audit = [(self.hub.user(who), audit_name(label, command))]
            if new != expected_audit:
                self.failures.append(f"{where}: audit {new} instead of {expected_audit}")
        return reply

    async def outside(self, who: str, room_id: str, label: str, command: str) -> None:
        client = await self.hub.client(who)
        status = await raw_send(client, room_id, command)
        self.cells += 1
        self.results[(label, who)] = OUT if status == 403 else f"HTTP {status}"
        if status != 403:
            self.failures.append(f"{who} × {command!r}: the homeserver answered {status}, not 403")


def audit_name(label: str, command: str) -> str:
    """The audit log's name of the command typed (the canonical English words)."""
    if label == "!consentement informe":
        return {"informe": "consent informed", "donne": "consent given", "refuse": "consent refused"}[
            command.split()[1]]
    return {"!equipe": "team", "!plan": "plan", "!consentement": "consent", "!eval": "eval", "!id": "id",
            "!aide": "help", "!equipe ajouter": "team add", "!equipe retirer": "team remove",
            "!plan ajouter": "plan add",
            "!eval faite": "eval done", "!lieu": "move", "!consentement informe": "consent informed",
            "!rupture": "break", "!id ajouter": "id add", "!cloturer": "close", "!file-active": "caseload",
            "!nouveau": "new", "!transferer": "transfer", "!rapport": "report", "!droits": "rights"}[label]


async def _join(hub: Hub, room_id: str, who: str, role: str) -> nio.AsyncClient:
    client = await hub.client(who)
    reply = await answer(hub, "cm", room_id, f"!equipe ajouter {hub.user(who)} {role}")
    assert kind_of(reply) == "team.update", reply.body
    await accept_invite(client, room_id)
    return client


async def test_access_matrix_and_a_removed_member_reads_nothing_new(hub: Hub) -> None:
    await hub.setup(case_managers=("cm", "cm2", "cm3"), pilots=("pilot",))
    await hub.start()
    desks = {who: await hub.desk(who) for who in DESK_ORDER}
    case_ref, room_id = await hub.open_case(desk=desks["cm"], text=MAIN)
    for who, role in (("gp", "gp"), ("cm2", "case_manager"), ("nurse", "nurse")):
        await _join(hub, room_id, who, role)
    for who in ("stranger", *(f"add{n}" for n in IN_ROOM)):
        await hub.client(who)  # registered, so that they could be invited
    m = Matrix(hub)

    # --- people outside the team: never invited, the homeserver refuses their join and messages
    members = await member_ids(hub, room_id)
    for who in OUTSIDE:
        client = await hub.client(who)
        await sync(client)
        if hub.user(who) in members or room_id in client.invited_rooms:
            m.failures.append(f"{who} has a membership in the person's room: {members.get(hub.user(who))}")
        if not await join_refused(client, room_id):
            m.failures.append(f"{who} could join the person's room")
        m.cells += 1
    stranger = await hub.client("stranger")
    for who, desk in desks.items():  # nor can anyone enter someone else's desk
        if not await join_refused(stranger, desk) or await raw_send(stranger, desk, '!nouveau "X"') != 403:
            m.failures.append(f"stranger got into {who}'s desk")
        m.cells += 1

    # --- the person's room
    second_ref = ""
    for label, row in ROOM_MATRIX:
        if label == "!cloturer":
            continue
        for who in IN_ROOM:
            command = room_command(hub, label, who)
            await m.typed(who, room_id, label, command, row[who])
        for who in OUTSIDE:
            await m.outside(who, room_id, label, room_command(hub, label, "gp"))

    # --- desks
    for label, row in DESK_MATRIX:
        for who in DESK_ORDER:
            if label == "!transferer":
                ref = second_ref if who == "cm" else case_ref
                target = hub.user("cm3") if who != "cm3" else hub.user("cm2")
                command = f"!transferer {ref} {target}"
            elif label == "!nouveau":
                command = f'!nouveau "Paul Martin {who}"'
            else:
                command = label
            reply = await m.typed(who, desks[who], label, command, row[who])
            if label == "!nouveau" and who == "cm":
                second_ref = str(content_of(reply).get("fr.relais.case") or "")
    async with hub.relais.db.unit() as uow:  # type: ignore[union-attr]
        main, second = await uow.persons.get(case_ref), await uow.persons.get(second_ref)
    assert main is not None and main.referent == hub.user("cm")  # the refused transfers left it
    assert second is not None and second.referent == hub.user("cm3")  # the allowed one moved it

    # --- a removed professional cannot read what the bot posts afterwards
    nurse = await hub.client("nurse")
    cm = await hub.client("cm")
    await skip_seen(nurse, room_id)
    before = await hub.command("cm", room_id, "!equipe")  # posted while the nurse is a member
    seen_before = await wait_for_event(nurse, room_id, lambda e: e.event_id == before.event_id)
    assert isinstance(seen_before, nio.RoomMessageNotice), seen_before  # the nurse decrypted it
    removed = await answer(hub, "cm", room_id, f"!equipe retirer {hub.user('nurse')}")
    assert kind_of(removed) != "command.error", removed.body
    for _ in range(60):
        joined = await nurse.joined_rooms()
        if isinstance(joined, nio.JoinedRoomsResponse) and room_id not in joined.rooms:
            break
        await sync(nurse)
    else:
        raise AssertionError("the removed nurse is still in the room")
    after = await hub.command("cm", room_id, "!equipe")  # posted after the removal
    assert not shows(after, hub.user("nurse")) and hub.user("nurse") not in after.body
    await sync(nurse)  # whatever the homeserver still gives the nurse: timeline and to-device keys
    await sync(nurse)
    nurse_ids = {getattr(e, "event_id", None) for e in _SEEN.get(nurse, {}).get(room_id, [])}
    assert before.event_id in nurse_ids and after.event_id not in nurse_ids
    fetched = await nurse.room_get_event(room_id, after.event_id)
    assert isinstance(fetched, nio.RoomGetEventError), fetched  # the homeserver does not hand it over
    # Even with the ciphertext (taken from a member), the nurse's keys do not open it, while they
    # do open the notice sent before the removal: the bot's megolm session was replaced.
    decrypted = 0
    for event_id in (before.event_id, after.event_id):
        encrypted = nio.MegolmEvent.from_dict(await raw_event(cm, room_id, event_id))
        assert isinstance(encrypted, nio.MegolmEvent), encrypted
        encrypted.room_id = room_id
        try:
            nurse.decrypt_event(encrypted)
            decrypted += 1
            assert event_id == before.event_id, "the removed nurse decrypted a later notice"
        except nio.EncryptionError:
            assert event_id == after.event_id, "the nurse could not decrypt a notice sent while a member"
    assert decrypted == 1
    m.cells += 1

    # --- closing comes last: refused to the GP, then done by the referent
    for who in ("gp", "cm"):
        await m.typed(who, room_id, "!cloturer", "!cloturer autre", ROOM_MATRIX[-1][1][who])

    assert not m.failures, "\n".join(m.failures)
    assert m.cells == cell_count(), (m.cells, cell_count())
    for (label, who), got in m.results.items():
        print(f"  {label:24} {who:9} {got}")
    print(f"access-matrix cells checked: {m.cells}")


def room_command(hub: Hub, label: str, who: str) -> str:
    """The command of a row as `who` types it (the allowed ones must each succeed on their own)."""
    added = hub.user(f"add{who}")
    return {
        "!equipe ajouter": f"!equipe ajouter {added} physio",
        "!equipe retirer": f"!equipe retirer {hub.user('addcm') if who == 'gp' else added}",
        "!plan ajouter": f'!plan ajouter "Toilette {who}" "Passage SSIAD"',
        "!lieu": {"gp": "!lieu urgences", "cm": '!lieu hopital "CHU X"', "cm2": "!lieu domicile"}[who],
        "!consentement informe": {"gp": "!consentement refuse", "cm": "!consentement informe",
                                  "cm2": "!consentement donne"}[who],
        "!rupture": f'!rupture "Le SSIAD a suspendu ses passages ({who})"',
        "!id ajouter": f"!id ajouter CHU-Y:4200{IN_ROOM.index(who)}",
    }.get(label, label)


async def test_invites_off_the_allowed_servers_are_refused_and_nothing_is_sent(hub: Hub) -> None:
    await hub.setup()
    await hub.start()
    case_ref, room_id = await hub.open_case()
    before = await records(hub)
    for command in ("!equipe ajouter @x:elsewhere.example gp", "!team add @nurse:elsewhere.example nurse",
                    f"!equipe ajouter @x:{hub.synapse.server_name}.elsewhere.example gp"):
        reply = await hub.command("cm", room_id, command)
        assert kind_of(reply) == "command.error", (command, reply.body)
        assert "serveur autorisé" in reply.body, reply.body
    assert await records(hub) == before
    members = await member_ids(hub, room_id)
    assert not [u for u in members if "elsewhere.example" in u], members  # nobody was invited
    listing = await hub.command("cm", room_id, "!equipe")
    assert "elsewhere" not in listing.body and case_ref in listing.body


async def test_strangers_are_refused_at_the_mllp_and_fhir_doors_and_nothing_is_kept(hub: Hub) -> None:
    # Only 127.0.0.2 may talk MLLP: the tests connect from 127.0.0.1 (refused) and 127.0.0.2 (allowed).
    await hub.setup(alerts={"ins_test_oids": True, "mllp": {"allowed_peers": ["127.0.0.2"]}},
                    http={"fhir_token": TOKEN})
    relais = await hub.start()
    case_ref, _room = await hub.open_case(text=MAIN)
    assert relais.mllp_port is not None

    async def stored() -> int:
        async with relais.db.unit() as uow:
            return await uow.alerts.count_messages()

    async def setting() -> str:
        async with relais.db.unit() as uow:
            person = await uow.persons.get(case_ref)
        assert person is not None
        return person.setting.value

    # MLLP from a peer outside the allow-list: closed without a byte of answer, nothing kept.
    stranger = await MllpClient.connect(relais.mllp_port)
    try:
        await stranger.write(frame(sample("ADT-A01-01.hl7")))
        assert await stranger.closed_by_peer()  # b"" read: no ACK of any kind came first
    finally:
        await stranger.close()
    assert await stored() == 0 and await setting() == "home"
    # The same frame from the allowed address is acknowledged and kept (so the refusal was the peer's).
    reader, writer = await asyncio.open_connection("127.0.0.1", relais.mllp_port, local_addr=("127.0.0.2", 0))
    allowed = MllpClient(reader, writer)
    try:
        assert msa(await allowed.send(sample("ADT-A01-01.hl7")))[0] == "AA"
    finally:
        await allowed.close()
    assert await stored() == 1

    # FHIR: no token, a wrong token, a token in the wrong scheme → 401, nothing kept.
    url = f"http://127.0.0.1:{relais.http_port}/fhir/$process-message"
    bundle = (SAMPLES / "fhir" / "admit-notification-message-bundle-01.json").read_bytes()
    plain = {"Content-Type": "application/fhir+json"}
    async with aiohttp.ClientSession() as http:
        for headers in (plain, {**plain, "Authorization": "Bearer not-the-token"},
                        {**plain, "Authorization": f"Bearer {TOKEN}x"}, {**plain, "Authorization": TOKEN}):
            async with http.post(url, data=bundle, headers=headers) as resp:
                assert resp.status == 401, (headers, resp.status)
                assert json.loads(await resp.text())["resourceType"] == "OperationOutcome"
        assert await stored() == 1
        async with http.post(url, data=bundle, headers={**plain, "Authorization": f"Bearer {TOKEN}"}) as resp:
            assert resp.status == 200, await resp.text()
    assert await stored() == 2
