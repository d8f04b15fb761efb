"""A bare matrix-nio client with E2EE, run as its own process: the baseline the Relais process is
measured against (restart, initial sync, resident memory, CPU per incoming event, command echo).

It imports nothing from Relais. It logs in once (or restores the device kept in --store), syncs
with the same filter as Relais, prints `READY` after its first sync, then keeps syncing; with
--echo it answers every `--trigger` message from someone else with the JSON content in the echo
file, encrypted, as an m.notice. SIGTERM stops it and keeps its sync token for the next start.

    python bench/bare_client.py --homeserver URL --user @u:hs --password P --store DIR [--echo FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
from pathlib import Path
from typing import Any

import nio

# nio logs every undecryptable event of a fresh device at warning level: noise here.
logging.getLogger("nio").setLevel(logging.ERROR)
# The same as hub.bots.client.SYNC_FILTER, copied on purpose: this baseline process must not
# import the hub (its start time and memory are what Relais is compared with).
SYNC_FILTER: dict[str, Any] = {
    "presence": {"not_types": ["*"]},
    "account_data": {"not_types": ["*"]},
    "room": {
        "state": {"lazy_load_members": True},
        "timeline": {"limit": 50, "lazy_load_members": True},
        "ephemeral": {"not_types": ["*"]},
        "account_data": {"not_types": ["*"]},
    },
}


def read_json(path: Path) -> Any:
    """Small files read once at start (blocking is harmless before the first sync)."""
    return json.loads(path.read_text()) if path.exists() else None


async def login(args: argparse.Namespace) -> nio.AsyncClient:
    store = Path(args.store)
    config = nio.AsyncClientConfig(encryption_enabled=True, store_sync_tokens=False)
    session = store / "session.json"
    saved = read_json(session)
    if saved is not None:
        client = nio.AsyncClient(args.homeserver, args.user, device_id=saved["device_id"],
                                 store_path=str(store), config=config)
        client.restore_login(args.user, saved["device_id"], saved["access_token"])
    else:
        client = nio.AsyncClient(args.homeserver, args.user, store_path=str(store), config=config)
        resp = await client.login(args.password, device_name="bare-baseline")
        if not isinstance(resp, nio.LoginResponse):
            raise SystemExit(f"login failed: {resp}")
        write_text(session, json.dumps({"device_id": resp.device_id, "access_token": resp.access_token}))
    if client.should_upload_keys:
        await client.keys_upload()
    return client


def write_text(path: Path, text: str) -> None:
    path.write_text(text)


async def housekeeping(client: nio.AsyncClient) -> None:
    if client.should_upload_keys:
        await client.keys_upload()
    if client.should_query_keys:
        await client.keys_query()
    if client.should_claim_keys:
        await client.keys_claim(client.get_users_for_key_claiming())
    await client.send_to_device_messages()


async def echo(client: nio.AsyncClient, resp: nio.SyncResponse, trigger: str, reply: dict[str, Any]) -> None:
    for room_id, info in resp.rooms.join.items():
        for event in info.timeline.events:
            if isinstance(event, nio.RoomMessageText) and event.sender != client.user_id and event.body == trigger:
                await client.room_send(room_id, "m.room.message", reply, ignore_unverified_devices=True)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--homeserver", required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--store", required=True)
    parser.add_argument("--echo", help="JSON content to answer with")
    parser.add_argument("--trigger", default="!equipe")
    args = parser.parse_args()
    await asyncio.to_thread(Path(args.store).mkdir, parents=True, exist_ok=True)
    client = await login(args)
    reply = read_json(Path(args.echo)) if args.echo else None
    token_file = Path(args.store) / "token.json"
    token: str | None = read_json(token_file)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    first = True
    while not stop.is_set():
        sync = asyncio.create_task(client.sync(timeout=0 if first else 30_000, sync_filter=SYNC_FILTER,
                                               since=token, full_state=False))
        stopped = asyncio.create_task(stop.wait())
        await asyncio.wait({sync, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if not sync.done():
            sync.cancel()
            break
        stopped.cancel()
        resp = sync.result()
        if not isinstance(resp, nio.SyncResponse):
            await asyncio.sleep(1)
            continue
        await housekeeping(client)
        if reply is not None:
            await echo(client, resp, args.trigger, reply)
        token = resp.next_batch
        if first:
            print("READY", flush=True)
            first = False
    if token:
        write_text(token_file, json.dumps(token))
    await client.close()


if __name__ == "__main__":
    asyncio.run(main())
