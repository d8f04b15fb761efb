"""Issue 3 on a real Synapse: the bot's cross-signed identity and the device trust policy."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import nio
import pytest

from hub.app import Relais
from hub.bots.crosssigning import KEYS_FILE, CrossSigningConflict, query_keys
from hub.config import EncryptionConfig
from tests.bots.test_crosssigning import independent_verify
from tests.hub_harness import Hub, content_of, is_notice, kind_of, shows
from tests.matrix_helpers import _SEEN, accept_invite, cross_sign, make_unsigned_client, send_text, sync, wait_for_event

pytestmark = [pytest.mark.matrix, pytest.mark.db]


def _only_key(key_obj: dict[str, Any]) -> str:
    (public,) = key_obj["keys"].values()
    return str(public)


async def _bot_identity(hub: Hub) -> tuple[str, str, dict[str, Any]]:
    """(master, self-signing, bot device keys) as another user's /keys/query shows them."""
    observer = await hub.client("observer")
    response = await query_keys(observer, [hub.bot])
    master = response["master_keys"][hub.bot]
    ssk = response["self_signing_keys"][hub.bot]
    assert master["usage"] == ["master"] and ssk["usage"] == ["self_signing"]
    assert independent_verify(ssk, hub.bot, _only_key(master)), "self-signing key not signed by master"
    assert hub.relais is not None
    device_id = hub.relais.client.api.device_id
    return _only_key(master), _only_key(ssk), response["device_keys"][hub.bot][device_id]


async def test_bot_device_is_cross_signed_and_keeps_its_identity_across_restarts(
        hub: Hub, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="hub.bots.crosssigning")
    await hub.setup()
    await hub.start()
    first_start = [r.getMessage() for r in caplog.records]
    assert any("keys published" in m for m in first_start) and any("signed by" in m for m in first_start)
    master, ssk, device = await _bot_identity(hub)
    assert independent_verify(device, hub.bot, ssk), "bot device carries no valid self-signing signature"
    device_key = device["keys"][f"ed25519:{device['device_id']}"]
    assert independent_verify(device, hub.bot, device_key, device["device_id"])

    assert hub.config is not None
    store = Path(hub.config.matrix.store_path)
    keys_file = store / KEYS_FILE
    assert keys_file.stat().st_mode & 0o777 == 0o600
    saved = keys_file.read_text()
    assert json.loads(saved)["public"]["master"] == master

    await hub.stop()
    caplog.clear()
    await hub.start()
    assert await _bot_identity(hub) == (master, ssk, device)
    assert not [r.getMessage() for r in caplog.records if r.name == "hub.bots.crosssigning"]  # nothing re-sent
    assert keys_file.read_text() == saved
    await hub.stop()

    # The store lost its keys while the homeserver kept them: refuse to start, explain the way out.
    keys_file.unlink()
    relais = Relais(hub.config)
    try:
        with pytest.raises(CrossSigningConflict) as raised:
            await relais.start()
    finally:
        await relais.client.close()
        await relais.db.close()
    message = str(raised.value)
    assert "reset_cross_signing = true" in message and "[encryption]" in message
    assert master[:8] in message and KEYS_FILE in message
    assert not keys_file.exists()  # nothing generated, nothing replaced
    assert (await _bot_identity_after_stop(hub))[0] == master

    # The explicit reset publishes a new identity and signs the device with it.
    hub.config = hub.config.model_copy(update={"encryption": EncryptionConfig(reset_cross_signing=True)})
    await hub.start()
    new_master, new_ssk, new_device = await _bot_identity(hub)
    assert new_master != master and new_ssk != ssk
    assert independent_verify(new_device, hub.bot, new_ssk)
    assert json.loads(keys_file.read_text())["public"]["master"] == new_master


async def _bot_identity_after_stop(hub: Hub) -> tuple[str, str]:
    observer = await hub.client("observer")
    response = await query_keys(observer, [hub.bot])
    return _only_key(response["master_keys"][hub.bot]), _only_key(response["self_signing_keys"][hub.bot])


async def _case_with_gp(hub: Hub, trust: str) -> tuple[str, str, nio.AsyncClient, nio.AsyncClient]:
    await hub.setup(encryption={"trust": trust})
    cm = await hub.client("cm")
    await cross_sign(cm)  # the case manager uses a cross-signed client, like Element
    # The GP's client has no cross-signing (a legacy client).
    gp = hub.clients["gp"] = await make_unsigned_client(hub.synapse, f"gp{hub.tag}", hub.tmp)
    await hub.start()
    case_ref, room_id = await hub.open_case()
    await send_text(cm, room_id, f"!team add {hub.user('gp')} gp")
    await wait_for_event(cm, room_id, is_notice("team.update", hub.bot))
    await accept_invite(gp, room_id)
    return case_ref, room_id, cm, gp


async def test_cross_signed_policy_withholds_keys_from_unsigned_devices_and_tells_the_case_manager(
        hub: Hub) -> None:
    case_ref, room_id, cm, gp = await _case_with_gp(hub, "cross_signed")
    told = await wait_for_event(cm, room_id, is_notice("encryption.unreachable", hub.bot))
    assert shows(told, hub.user("gp")) and "signature croisée" in told.body
    assert content_of(told)["m.mentions"]["user_ids"] == [hub.user("cm")]
    assert content_of(told)["fr.relais.case"] == case_ref

    sessions = set()
    for _ in range(2):
        reply = await hub.command("cm", room_id, "!team")
        assert kind_of(reply) == "command.reply" and shows(reply, hub.user("gp"))
        # The GP receives the very same event, and cannot decrypt it: no room key was sent.
        locked = await wait_for_event(gp, room_id, lambda e, r=reply: getattr(e, "event_id", None) == r.event_id)
        assert isinstance(locked, nio.MegolmEvent), type(locked)
        assert gp.olm is not None
        assert gp.olm.inbound_group_store.get(room_id, locked.sender_key, locked.session_id) is None
        sessions.add(locked.session_id)
    assert len(sessions) == 1, "the room key must not be rotated at every message"

    await sync(cm)
    notices = [e for e in _timeline(cm, room_id) if kind_of(e) == "encryption.unreachable"]
    assert len(notices) == 1, "the case manager is told once per member"

    # The operator switches to "all": the devices withheld so far get the next room key.
    await hub.stop()
    assert hub.config is not None
    hub.config = hub.config.model_copy(update={"encryption": EncryptionConfig(trust="all")})
    await hub.start()
    reply = await hub.command("cm", room_id, "!team")
    readable = await wait_for_event(gp, room_id, lambda e: getattr(e, "event_id", None) == reply.event_id)
    assert isinstance(readable, nio.RoomMessageNotice) and shows(readable, hub.user("gp"))


async def test_all_policy_shares_with_every_device(hub: Hub) -> None:
    _case_ref, room_id, cm, gp = await _case_with_gp(hub, "all")
    reply = await hub.command("cm", room_id, "!team")
    readable = await wait_for_event(gp, room_id, lambda e: getattr(e, "event_id", None) == reply.event_id)
    assert isinstance(readable, nio.RoomMessageNotice) and shows(readable, hub.user("gp"))
    assert not [e for e in _timeline(cm, room_id) if kind_of(e) == "encryption.unreachable"]


def _timeline(client: nio.AsyncClient, room_id: str) -> list[Any]:
    return list(_SEEN.get(client, {}).get(room_id, []))
