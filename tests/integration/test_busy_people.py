"""Commands as busy professionals send them from Element, Element X and phone keyboards (review r25),
with the exact event content, on the real Synapse, through the bot's real encryption and sync."""

from __future__ import annotations

from typing import Any

import pytest

from tests.hub_harness import Hub, content_of, kind_of
from tests.matrix_helpers import send_content, skip_seen, wait_for_event

pytestmark = [pytest.mark.matrix, pytest.mark.db]

HTML = "org.matrix.custom.html"
ANSWERS = ("command.reply", "command.error")
#: An attachment as a client sends it in an encrypted room (Matrix spec, "Sending encrypted
#: attachments"); the bot never downloads it.
FILE = {"url": "mxc://relais.test/photo", "v": "v2", "iv": "AAAAAAAAAAAAAAAAAAAAAA",
        "hashes": {"sha256": "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU"},
        "key": {"kty": "oct", "key_ops": ["encrypt", "decrypt"], "alg": "A256CTR", "ext": True,
                "k": "qcHVMSgYg-71CauWBezXI5qkaRb0LuIy-Wx5kIaHMIA"}}
IMAGE = {"msgtype": "m.image", "file": FILE, "info": {"mimetype": "image/jpeg", "size": 1, "w": 1, "h": 1}}


async def _say(hub: Hub, room_id: str, content: dict[str, Any]) -> Any:
    """Send `content` as is; return the bot's first answer after it."""
    client = await hub.client("cm")
    await skip_seen(client, room_id)
    await send_content(client, room_id, content)
    return await wait_for_event(client, room_id,
                                lambda e: getattr(e, "sender", None) == hub.bot and kind_of(e) in ANSWERS)


async def _quiet_then(hub: Hub, room_id: str, content: dict[str, Any]) -> Any:
    """Send `content`, then `!aide`: the first answer is the help's when `content` got none."""
    client = await hub.client("cm")
    await skip_seen(client, room_id)
    await send_content(client, room_id, content)
    return await _say(hub, room_id, {"msgtype": "m.text", "body": "!aide"})


async def test_busy_people_s_messages_are_read_as_they_meant_them(hub: Hub) -> None:
    await hub.setup()
    relais = await hub.start()
    desk = await hub.desk()

    # An impossible date in words: the date named, the day said not to exist, the usage; no file.
    refused = await _say(hub, desk, {"msgtype": "m.text",
                                     "body": "!nouveau « Paulette Exemple » --naissance 31 avril 1938"})
    assert kind_of(refused) == "command.error", refused.body
    assert "« 31 avril 1938 »" in refused.body and "ce jour n'existe pas" in refused.body
    assert "Usage : !nouveau" in refused.body
    async with relais.db.unit() as uow:
        assert await uow.persons.next_sequence(2026) == 1

    # Chat opened by an emphatic mark, and an image whose name looks like a command: no answer.
    for quiet in ({"msgtype": "m.text", "body": "‼️ Plan B pour samedi"},
                  IMAGE | {"body": "!plan.jpg"}):
        helped = await _quiet_then(hub, desk, quiet)
        assert kind_of(helped) == "command.reply" and "!nouveau" in helped.body, (quiet, helped.body)

    # A caption on an image (Matrix v1.10: `filename` differs from `body`) is read as typed.
    caseload = await _say(hub, desk, IMAGE | {"body": "!file-active", "filename": "IMG_2041.jpg"})
    assert kind_of(caseload) == "command.reply" and content_of(caseload)["fr.relais.kind"] == "command.reply"
    assert "!nouveau" not in caseload.body

    # The bot addressed by its mention, then the command (Element Web's pill; older "Name: ").
    addressed = await _say(hub, desk, {
        "msgtype": "m.text", "body": "Relais: !file-active", "format": HTML,
        "formatted_body": f'<a href="https://matrix.to/#/{hub.bot}">Relais</a>: !file-active',
        "m.mentions": {"user_ids": [hub.bot]}})
    assert kind_of(addressed) == "command.reply" and addressed.body == caseload.body

    # The rich text editor's escapes in body, formatted_body as typed.
    escaped = await _say(hub, desk, {"msgtype": "m.text", "body": "\\!file\\-active", "format": HTML,
                                     "formatted_body": "!file-active"})
    assert kind_of(escaped) == "command.reply" and escaped.body == caseload.body
