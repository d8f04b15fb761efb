"""Encrypted attachments: the pure m.file content builder and the send step the outbox runs.

Per the Matrix spec an attachment to an encrypted room is itself encrypted (AES-256-CTR, key as
a JWK, SHA-256 of the ciphertext) and the event carries a `file` object instead of a top-level
`url`. The upload is done once per outbox entry: its mxc URI and keys are kept (in the
database's key-value table) before the event is sent, so a retried entry re-sends the same
event with the same transaction id and never uploads twice.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from hub.bots.client import BotClient
from hub.storage.database import Database
from hub.storage.repositories import OutboxEntry


def file_message(kind: str, case_ref: str, filename: str, mimetype: str, size: int, url: str,
                 keys: dict[str, Any]) -> dict[str, Any]:
    """m.file content for an encrypted attachment; `keys` as nio's encrypt_attachment returns them."""
    return {
        "msgtype": "m.file",
        "body": filename,
        "filename": filename,
        "info": {"mimetype": mimetype, "size": size},
        "file": {"url": url, "key": keys["key"], "iv": keys["iv"], "hashes": keys["hashes"], "v": keys["v"]},
        "fr.relais.kind": kind,
        "fr.relais.case": case_ref,
    }


def upload_marker(outbox_key: str) -> str:
    """Key-value key holding an entry's upload (fits the 64-character key column)."""
    return "upload:" + hashlib.sha256(outbox_key.encode()).hexdigest()[:40]


async def send_file(db: Database, client: BotClient, entry: OutboxEntry, room_id: str, txn_id: str) -> str:
    payload = entry.payload
    data = str(payload["data"]).encode("utf-8")
    marker = upload_marker(entry.key)
    async with db.unit() as uow:
        stored = await uow.kv.get(marker)
    if stored is None:
        url, keys = await client.upload_encrypted(data)
        uploaded: dict[str, Any] = {"url": url, "keys": keys}
        async with db.unit() as uow:
            await uow.kv.set(marker, json.dumps(uploaded))
    else:
        uploaded = json.loads(stored)
    content = file_message(payload["kind"], payload["case_ref"], payload["filename"], payload["mimetype"],
                           len(data), uploaded["url"], uploaded["keys"])
    return await client.send(room_id, content, txn_id)
