"""Hospital feeds as interface engines send them, on a real Synapse: one hub, several messages
over real MLLP, the notices read by the case manager's own client (issue 15)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.hub_harness import Hub, content_of, is_notice, kind_of
from tests.inbound.mllp_client import MllpClient
from tests.inbound.test_hospital_feeds import answers, message
from tests.matrix_helpers import wait_for_event

pytestmark = [pytest.mark.matrix, pytest.mark.db]


def fresh(kind: str, bot: str) -> Any:
    base = is_notice(kind, bot)
    return lambda e: base(e) and not (content_of(e).get("m.relates_to") or {}).get("rel_type")


async def test_blocks_batches_noise_and_oid_identifiers_reach_the_room_once_and_in_order(hub: Hub) -> None:
    await hub.setup()
    relais = await hub.start()
    desk = await hub.desk()
    refused = await hub.command("cm", desk, '!new "Jeanne Test" --id urn:isbn:978:F8001')
    assert kind_of(refused) == "command.error" and "Usage : !nouveau" in refused.body
    case_ref, room = await hub.open_case(desk=desk, text='!new "Jeanne Test" --id CHU-X:910028')
    added = await hub.command("cm", room, "!id add urn:oid:1.2.250.1.999.4.4:F8001")
    assert kind_of(added) == "command.reply"
    listing = await hub.command("cm", room, "!id")
    assert "urn:oid:1.2.250.1.999.4.4:F8001" in listing.body and "CHU-X:910028" in listing.body
    refused = await hub.command("cm", room, "!id add urn:oid:1.2.250..4:F8002")
    assert kind_of(refused) == "command.error" and "Usage : !id" in refused.body
    cm = await hub.client("cm")

    assert relais.mllp_port is not None
    client = await MllpClient.connect(relais.mllp_port)
    try:
        # An admission and a discharge concatenated in one block: both kept, both answered.
        assert answers(await client.send(message("a01-a03-one-block.hl7"))) == [("AA", "C28-1"), ("AA", "C28-2")]
        # An A08 with a null location, its block ended by 0x1C alone: answered at once, silent.
        null_a08 = message("a08-null-location.hl7").replace(b"910031", b"910028")
        await client.write(b"\x0b" + null_a08 + b"\x1c")
        assert answers(await client.ack(timeout=10)) == [("AA", "L-3")]
        # The same person by the OID of another facility, inside an HL7 batch without FHS.
        bhs = b"BHS|^~\\&|SIH|CHU-Z|RELAIS|DAC|20261206080000||||B-9\r"
        batch = bhs + message("a01-oid-authority.hl7") + b"BTS|1\r"
        block = await client.send(batch)
        assert block.startswith(b"BHS|") and answers(block) == [("AA", "O-1")]
        # The unacted A28 is acknowledged; the whole block resent posts nothing twice.
        assert answers(await client.send(message("a28-add-person.hl7"))) == [("AA", "U-28")]
        assert answers(await client.send(message("a01-a03-one-block.hl7", ends=b"\r\n"))) == [
            ("AA", "C28-1"), ("AA", "C28-2")]
    finally:
        await client.close()

    admission = await wait_for_event(cm, room, fresh("alert.admission", hub.bot))
    assert "CHU-X — GERIA" in admission.body and content_of(admission)["fr.relais.case"] == case_ref
    assert "À faire :" in admission.body  # the move's checklist, in the same message
    await wait_for_event(cm, room, fresh("alert.discharge", hub.bot))
    again = await wait_for_event(cm, room, fresh("alert.admission", hub.bot))
    assert "CHU-Z — SSR" in again.body
    response = await cm.room_messages(room, start="", limit=100)
    alerts = [kind_of(e) for e in reversed(response.chunk)
              if getattr(e, "sender", None) == hub.bot and str(kind_of(e)).startswith(("alert.", "handover."))]
    assert alerts == ["alert.admission", "alert.discharge", "alert.admission"]  # one message per event
    bodies = " ".join(getattr(e, "body", "") for e in response.chunk)
    assert '""' not in bodies
