"""A professional added before their first login reads, once they can, what concerns them."""

from __future__ import annotations

import secrets

import nio

from tests.hub_harness import Hub, content_of, is_notice, kind_of, shows
from tests.matrix_helpers import accept_invite, cross_sign, send_text, sync, wait_for_event


async def _first_login(hub: Hub, localpart: str, password: str) -> nio.AsyncClient:
    """What Element does at a first login: a new device, its keys, cross-signing."""
    store = hub.tmp / f"nio-{localpart}-{secrets.token_hex(4)}"
    store.mkdir()
    client = nio.AsyncClient(hub.synapse.url, hub.synapse.user_id(localpart), store_path=str(store),
                             config=nio.AsyncClientConfig(encryption_enabled=True, store_sync_tokens=True))
    login = await client.login(password, device_name=f"element-{localpart}")
    assert isinstance(login, nio.LoginResponse), login
    if client.should_upload_keys:
        await client.keys_upload()
    await cross_sign(client)
    await sync(client, timeout_ms=0)
    return client


async def test_a_professional_added_before_their_first_login_gets_a_readable_catch_up(hub: Hub) -> None:
    await hub.setup()
    await hub.start()
    case_ref, room_id = await hub.open_case()
    cm = await hub.client("cm")
    # The GP's account exists; they have never logged in: no device at all.
    password = secrets.token_urlsafe(12)
    gp_id = await hub.synapse.register(f"gp{hub.tag}", password)
    await send_text(cm, room_id, f"!team add {gp_id} gp")
    await wait_for_event(cm, room_id, is_notice("team.update", hub.bot))
    told = await wait_for_event(cm, room_id, is_notice("encryption.unreachable", hub.bot))
    assert shows(told, gp_id)
    await send_text(cm, room_id, f'!plan add "Soins" "Pansements du mardi" --provider {gp_id}')
    planned = await wait_for_event(cm, room_id, is_notice("plan.update", hub.bot))

    gp = hub.clients["gp"] = await _first_login(hub, f"gp{hub.tag}", password)
    await accept_invite(gp, room_id)
    catch_up = await wait_for_event(gp, room_id, is_notice("encryption.readable", hub.bot), timeout=60)
    assert isinstance(catch_up, nio.RoomMessageNotice), type(catch_up)  # decrypted by the new device
    assert content_of(catch_up)["m.mentions"]["user_ids"] == [gp_id]
    assert content_of(catch_up)["fr.relais.case"] == case_ref
    assert shows(catch_up, gp_id) and "peut maintenant lire" in catch_up.body
    assert "action 1 du plan" in catch_up.body and "Pansements du mardi" in catch_up.body
    # What was sent before their first device stays unreadable: that is why the catch-up exists.
    before = await wait_for_event(gp, room_id, lambda e: getattr(e, "event_id", None) == planned.event_id)
    assert isinstance(before, nio.MegolmEvent)
    # The case manager reads it too, once.
    await wait_for_event(cm, room_id, is_notice("encryption.readable", hub.bot))
    await hub.command("cm", room_id, "!team")
    await sync(cm)
    seen = [e for e in _timeline(cm, room_id) if kind_of(e) == "encryption.readable"]
    assert len(seen) == 1


async def test_a_desk_welcome_waits_for_its_owner_first_readable_device(hub: Hub) -> None:
    password = secrets.token_urlsafe(12)
    await hub.setup(case_managers=())
    cm_id = await hub.synapse.register(f"cm{hub.tag}", password)
    assert hub.config is not None
    hub.config = hub.config.model_copy(update={"care": hub.config.care.model_copy(
        update={"case_managers": (cm_id,)})})
    relais = await hub.start()
    hub.clients["cm"] = await _first_login(hub, f"cm{hub.tag}", password)
    desk = await hub.desk()  # waits for the welcome, which the new device must decrypt
    timeline = _timeline(hub.clients["cm"], desk)
    assert [kind_of(e) for e in timeline if isinstance(e, nio.RoomMessageNotice)] == ["command.reply"]
    assert not [e for e in timeline if isinstance(e, nio.MegolmEvent)]  # nothing sent before the device
    assert relais.client.synced_once.is_set()


def _timeline(client: nio.AsyncClient, room_id: str) -> list[object]:
    from tests.matrix_helpers import _SEEN

    return list(_SEEN.get(client, {}).get(room_id, []))
