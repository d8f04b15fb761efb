"""Helpers for tests talking to the real Synapse with matrix-nio (E2EE enabled)."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from weakref import WeakKeyDictionary

import aiohttp
import nio

from hub.devserver import DevSynapse

#: Timeline events seen by each client, per room, across calls.
_SEEN: WeakKeyDictionary[nio.AsyncClient, dict[str, list[Any]]] = WeakKeyDictionary()
#: Event ids already returned by wait_for_event, per client.
_CONSUMED: WeakKeyDictionary[nio.AsyncClient, set[str]] = WeakKeyDictionary()


def _record(client: nio.AsyncClient, response: Any) -> None:
    if not isinstance(response, nio.SyncResponse):
        return
    seen = _SEEN.setdefault(client, {})
    for room_id, info in response.rooms.join.items():
        # nio decrypts megolm events in place during receive_response().
        seen.setdefault(room_id, []).extend(info.timeline.events)


async def sync(client: nio.AsyncClient, timeout_ms: int = 1000) -> nio.SyncResponse:
    """One /sync, remembering its timeline events and handling key housekeeping."""
    response = await client.sync(timeout=timeout_ms, full_state=False)
    if not isinstance(response, nio.SyncResponse):
        raise AssertionError(f"sync failed for {client.user_id}: {response}")
    _record(client, response)
    # What sync_forever() would do between syncs: keep olm keys flowing.
    if client.should_upload_keys:
        await client.keys_upload()
    if client.should_query_keys:
        await client.keys_query()
    if client.should_claim_keys:
        await client.keys_claim(client.get_users_for_key_claiming())
    await client.send_to_device_messages()
    return response


async def make_client(
    synapse: DevSynapse,
    localpart: str,
    tmp_path: Path,
    *,
    max_limit_exceeded: int | None = 0,
    cross_signed: bool = True,
) -> nio.AsyncClient:
    """Register ``localpart`` and return a logged-in, synced, E2EE-enabled client.

    Its device is cross-signed, as Element does at first login (the bot's default trust policy
    shares room keys only with such devices); ``cross_signed=False`` makes a legacy client.
    ``max_limit_exceeded=0`` turns a 429 into an error response (nio's default,
    None, sleeps and retries forever, hiding rate limiting from the tests).
    """
    password = secrets.token_urlsafe(16)
    user_id = await synapse.register(localpart, password)
    store = tmp_path / f"nio-{localpart}-{secrets.token_hex(4)}"
    store.mkdir(parents=True)
    config = nio.AsyncClientConfig(
        encryption_enabled=True,
        store_sync_tokens=True,
        max_limit_exceeded=max_limit_exceeded,
    )
    client = nio.AsyncClient(synapse.url, user_id, store_path=str(store), config=config)
    try:
        login = await client.login(password, device_name=f"{'test' if cross_signed else 'legacy'}-{localpart}")
        if not isinstance(login, nio.LoginResponse):
            # Idempotent registration keeps the first password; fail loudly.
            raise AssertionError(f"login of {user_id} failed: {login}")
        if client.should_upload_keys:
            await client.keys_upload()
        if cross_signed:
            await cross_sign(client)
        await sync(client, timeout_ms=0)
    except BaseException:
        await client.close()
        raise
    return client


async def wait_for_event(
    client: nio.AsyncClient,
    room_id: str,
    predicate: Callable[[Any], bool],
    timeout: float = 30.0,  # noqa: ASYNC109 - a deadline spanning many syncs
) -> Any:
    """Sync until a timeline event in ``room_id`` matches ``predicate``; return it.

    Events received by earlier syncs (of this helper or of ``sync``) are checked
    first. An event already returned once is not returned again.
    """
    consumed = _CONSUMED.setdefault(client, set())
    deadline = time.monotonic() + timeout
    while True:
        events = _SEEN.setdefault(client, {}).get(room_id, [])
        for event in events:
            event_id = getattr(event, "event_id", None)
            if event_id in consumed:
                continue
            if predicate(event):
                if event_id is not None:
                    consumed.add(event_id)
                return event
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            summary = [
                f"{type(e).__name__}({getattr(e, 'sender', '?')}: "
                f"{getattr(e, 'body', None) or getattr(e, 'type', '')})"
                for e in events
            ]
            raise AssertionError(
                f"no matching event in {room_id} for {client.user_id} after {timeout}s; "
                f"seen: {summary}"
            )
        await sync(client, timeout_ms=int(min(remaining, 1.0) * 1000))


async def accept_invite(
    client: nio.AsyncClient,
    room_id: str,
    timeout: float = 30.0,  # noqa: ASYNC109 - a deadline spanning many syncs
) -> None:
    """Sync until ``client`` is invited to ``room_id``, then join it."""
    deadline = time.monotonic() + timeout
    while room_id not in client.invited_rooms and room_id not in client.rooms:
        if time.monotonic() > deadline:
            raise AssertionError(f"{client.user_id} was never invited to {room_id}")
        await sync(client)
    if room_id in client.rooms and room_id not in client.invited_rooms:
        return
    response = await client.join(room_id)
    if not isinstance(response, nio.JoinResponse):
        raise AssertionError(f"{client.user_id} could not join {room_id}: {response}")
    # Let the join come back down /sync so the room (and its encryption) is known.
    while room_id not in client.rooms:
        if time.monotonic() > deadline:
            raise AssertionError(f"{client.user_id} joined {room_id} but never synced it")
        await sync(client)


async def send_text(client: nio.AsyncClient, room_id: str, body: str) -> str:
    """Send an m.text message (encrypted if the room is), trusting every device.

    Returns the event id.
    """
    return await send_content(client, room_id, {"msgtype": "m.text", "body": body})


async def send_content(client: nio.AsyncClient, room_id: str, content: dict[str, Any]) -> str:
    """Send an m.room.message with exactly this content, as a client would; returns the event id."""
    # Sync first: nio rotates the outbound megolm session when it sees a membership
    # event in /sync, or when keys_query reports a newly tracked user. A joiner whose
    # devices nio already tracks (e.g. from another shared room) is caught only by
    # the former; joined_members() alone does not invalidate the session.
    await sync(client, timeout_ms=0)
    room = client.rooms[room_id]
    if room.encrypted:
        # Make sure every member (and every device of theirs) is known before nio
        # decides who gets the megolm session.
        members = await client.joined_members(room_id)
        if not isinstance(members, nio.JoinedMembersResponse):
            raise AssertionError(f"joined_members({room_id}) failed: {members}")
        if client.should_query_keys:
            await client.keys_query()
    response = await client.room_send(
        room_id,
        "m.room.message",
        dict(content),
        ignore_unverified_devices=True,
    )
    if not isinstance(response, nio.RoomSendResponse):
        raise AssertionError(f"room_send to {room_id} failed: {response}")
    return str(response.event_id)


async def skip_seen(client: nio.AsyncClient, room_id: str) -> None:
    """Sync, then mark every event seen so far in the room as consumed (wait for new ones only)."""
    await sync(client, timeout_ms=0)
    consumed = _CONSUMED.setdefault(client, set())
    for event in _SEEN.setdefault(client, {}).get(room_id, []):
        event_id = getattr(event, "event_id", None)
        if event_id is not None:
            consumed.add(event_id)


async def cross_sign(client: nio.AsyncClient) -> str:
    """Give a test client's account cross-signing and sign its device, as Element does at first
    login; returns the master public key. (A first upload needs no password: MSC3967.)
    An account that already has cross-signing is left as it is."""
    from hub.bots import crosssigning as xs

    user_id, device_id = client.user_id, client.device_id
    existing = (await xs.query_keys(client, [user_id])).get("master_keys", {}).get(user_id)
    if existing is not None:
        return str(next(iter(existing["keys"].values())))
    keys = xs.CrossSigningKeys.generate()
    status, body = await xs.matrix_request(client, "POST", "/_matrix/client/v3/keys/device_signing/upload",
                                           xs.device_signing_body(user_id, keys))
    if status != 200:
        raise AssertionError(f"device_signing/upload for {user_id} failed: {status} {body}")
    device = (await xs.query_keys(client, [user_id]))["device_keys"][user_id][device_id]
    status, body = await xs.matrix_request(client, "POST", "/_matrix/client/v3/keys/signatures/upload",
                                           xs.signatures_body(user_id, device, keys.self_signing))
    if status != 200 or body.get("failures"):
        raise AssertionError(f"signatures/upload for {user_id} failed: {status} {body}")
    return keys.master.public


async def make_unsigned_client(synapse: DevSynapse, localpart: str, tmp_path: Path) -> nio.AsyncClient:
    """Like make_client, but the device is certainly not cross-signed (a legacy client)."""
    return await make_client(synapse, localpart, tmp_path, cross_signed=False)


# --- the homeserver administrator (Synapse admin API) -----------------------------------

async def admin_token(synapse: DevSynapse) -> str:
    """A homeserver administrator's access token (an admin registered with the shared secret)."""
    name, password = f"admin{secrets.token_hex(3)}", secrets.token_urlsafe(12)
    user = await synapse.register(name, password, admin=True)
    async with aiohttp.ClientSession() as http, http.post(
            f"{synapse.url}/_matrix/client/v3/login",
            json={"type": "m.login.password", "identifier": {"type": "m.id.user", "user": user},
                  "password": password}) as resp:
        assert resp.status == 200, await resp.text()
        return str((await resp.json())["access_token"])


async def admin(synapse: DevSynapse, token: str, method: str, path: str, body: Any = None) -> dict[str, Any]:
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http, \
            http.request(method, synapse.url + path, json=body) as resp:
        data: dict[str, Any] = await resp.json()
        assert resp.status == 200, (resp.status, data)
        return data


async def delete_room(synapse: DevSynapse, token: str, room_id: str) -> None:
    """Synapse admin API: DELETE /_synapse/admin/v2/rooms/<id>: members removed, room blocked,
    then purged.

    On SQLite, Synapse's purge can fail ("FOREIGN KEY constraint failed", in its own
    `_purge_room_txn`) after the shutdown has removed every member, and fail again when asked
    again. The room is then gone for its members — the bot included, which is what the tests
    are about — so the delete is completed without the purge (`"purge": false`)."""
    for purge in (True, False):
        started = await admin(synapse, token, "DELETE", f"/_synapse/admin/v2/rooms/{room_id}", {"purge": purge})
        deadline = time.monotonic() + 60
        while True:
            status = await admin(synapse, token, "GET",
                                 f"/_synapse/admin/v2/rooms/delete_status/{started['delete_id']}")
            if status["status"] in ("complete", "failed"):
                break
            assert time.monotonic() < deadline, status
            await asyncio.sleep(0.2)
        if status["status"] == "complete":
            return
    raise AssertionError(status)
