"""The private Synapse harness: config, registration, E2EE exchange, rate limits."""

from __future__ import annotations

import secrets
from pathlib import Path

import aiohttp
import nio
import pytest

from hub.devserver import RATELIMIT_KEYS, DevSynapse, build_config
from tests.matrix_helpers import accept_invite, make_client, send_text, wait_for_event

MEGOLM = {
    "type": "m.room.encryption",
    "state_key": "",
    "content": {"algorithm": "m.megolm.v1.aes-sha2"},
}


def test_config_builder_binds_localhost_with_shared_secret(tmp_path: Path) -> None:
    config = build_config(tmp_path, 8448, "localhost", "s3cret")
    [listener] = config["listeners"]
    assert listener["bind_addresses"] == ["127.0.0.1"]
    assert listener["port"] == 8448
    assert listener["tls"] is False
    assert listener["x_forwarded"] is False
    assert [r["names"] for r in listener["resources"]] == [["client"]]
    assert config["registration_shared_secret"] == "s3cret"
    assert config["enable_registration"] is False
    assert config["database"]["name"] == "sqlite3"
    assert config["database"]["args"]["database"].startswith(str(tmp_path))
    assert config["presence"] == {"enabled": False}
    for key in RATELIMIT_KEYS:
        node = config
        for part in key.split("."):
            node = node[part]
        assert node["per_second"] >= 1000, key


@pytest.mark.matrix
async def test_registration_is_idempotent(synapse: DevSynapse) -> None:
    localpart = f"idem{secrets.token_hex(3)}"
    first = await synapse.register(localpart, "pw-one")
    again = await synapse.register(localpart, "pw-two")
    assert first == again == f"@{localpart}:localhost"
    admin = await synapse.register(f"adm{secrets.token_hex(3)}", "pw", admin=True)
    assert admin.endswith(":localhost")


@pytest.mark.matrix
async def test_encrypted_exchange_between_two_clients(synapse: DevSynapse, tmp_path: Path) -> None:
    alice = await make_client(synapse, f"alice{secrets.token_hex(3)}", tmp_path)
    bob = await make_client(synapse, f"bob{secrets.token_hex(3)}", tmp_path)
    try:
        created = await alice.room_create(
            name="care", invite=[bob.user_id], initial_state=[MEGOLM]
        )
        assert isinstance(created, nio.RoomCreateResponse), created
        room_id = created.room_id
        await accept_invite(bob, room_id)

        event_id = await send_text(alice, room_id, "Bonjour, ici Alice")
        got = await wait_for_event(bob, room_id, lambda e: getattr(e, "event_id", None) == event_id)
        assert isinstance(got, nio.RoomMessageText), got
        assert got.body == "Bonjour, ici Alice"
        assert got.decrypted

        # And back the other way.
        reply_id = await send_text(bob, room_id, "Bien reçu")
        reply = await wait_for_event(
            alice, room_id, lambda e: getattr(e, "event_id", None) == reply_id
        )
        assert isinstance(reply, nio.RoomMessageText) and reply.body == "Bien reçu"

        # On the server the event is opaque.
        async with aiohttp.ClientSession() as http:
            async with http.get(
                f"{synapse.url}/_matrix/client/v3/rooms/{room_id}/event/{event_id}",
                headers={"Authorization": f"Bearer {bob.access_token}"},
            ) as resp:
                raw = await resp.json()
        assert resp.status == 200, raw
        assert raw["type"] == "m.room.encrypted"
        assert "Alice" not in str(raw["content"])
    finally:
        await alice.close()
        await bob.close()


@pytest.mark.matrix
async def test_late_joiner_gets_the_key(synapse: DevSynapse, tmp_path: Path) -> None:
    """A session shared before someone joined must be rotated for them."""
    alice = await make_client(synapse, f"alice{secrets.token_hex(3)}", tmp_path)
    bob = await make_client(synapse, f"bob{secrets.token_hex(3)}", tmp_path)
    try:
        created = await alice.room_create(name="late", initial_state=[MEGOLM])
        assert isinstance(created, nio.RoomCreateResponse), created
        room_id = created.room_id
        await send_text(alice, room_id, "before bob")
        assert isinstance(await alice.room_invite(room_id, bob.user_id), nio.RoomInviteResponse)
        await accept_invite(bob, room_id)
        event_id = await send_text(alice, room_id, "after bob")
        got = await wait_for_event(bob, room_id, lambda e: getattr(e, "event_id", None) == event_id)
        assert isinstance(got, nio.RoomMessageText), got
        assert got.body == "after bob"
    finally:
        await alice.close()
        await bob.close()


@pytest.mark.matrix
async def test_burst_of_messages_is_not_rate_limited(synapse: DevSynapse, tmp_path: Path) -> None:
    sender = await make_client(synapse, f"burst{secrets.token_hex(3)}", tmp_path)
    # make_client sets max_limit_exceeded=0: a 429 comes back as an error response
    # (nio's default silently sleeps and retries).
    assert sender.config.max_limit_exceeded == 0
    try:
        created = await sender.room_create(name="burst", initial_state=[MEGOLM])
        assert isinstance(created, nio.RoomCreateResponse), created
        await wait_for_event(sender, created.room_id, lambda e: isinstance(e, nio.RoomCreateEvent))
        for i in range(60):
            # send_text raises on any error response, a 429 included.
            await send_text(sender, created.room_id, f"message {i}")
    finally:
        await sender.close()
