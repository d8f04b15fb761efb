"""Pure builders of Matrix event content: room creation, notices. Tested without a server."""

from __future__ import annotations

import json
import math
from typing import Any

MEGOLM = "m.megolm.v1.aes-sha2"
#: Synapse refuses a PDU over 65 536 bytes of canonical JSON (MAX_PDU_SIZE; Matrix spec "Size
#: limits"), measured on the event as stored: the encrypted content plus its envelope.
MAX_EVENT_BYTES = 65_536
#: The envelope around the encrypted content: room, sender, timestamps, auth and prev events,
#: hashes, signatures. About 1 KiB on a quiet room; kept generous for busy rooms (many prev_events).
ENVELOPE_BYTES = 4_096
#: Largest sender_key, session_id, device_id and m.relates_to copy of an m.room.encrypted content.
_ENCRYPTED_KEYS_BYTES = 600
ROOM_STATE_TYPE = "fr.relais.room"  # holds only the pseudonymous case reference or "desk"


def creators_privileged(room_version: str) -> bool:
    """From room version 12 the creator has unlimited power and must not be listed in users."""
    return room_version.isdigit() and int(room_version) >= 12


def _locked_power_levels(bot: str, room_version: str) -> dict[str, Any]:
    """Bot at 100; invite, kick, ban and every state change reserved to it (SPEC §3)."""
    return {
        "users": {} if creators_privileged(room_version) else {bot: 100},
        "users_default": 0,
        "events_default": 0,
        "state_default": 100,
        "invite": 100,
        "kick": 100,
        "ban": 100,
        "redact": 50,
        "events": {
            "m.room.name": 100, "m.room.topic": 100, "m.room.avatar": 100,
            "m.room.power_levels": 100, "m.room.encryption": 100, "m.room.history_visibility": 100,
            "m.room.join_rules": 100, "m.room.guest_access": 100, "m.room.canonical_alias": 100,
            "m.room.tombstone": 100, "m.room.server_acl": 100, "m.reaction": 0,
        },
        "notifications": {"room": 100},
    }


def _private_state(marker: dict[str, str]) -> list[dict[str, Any]]:
    return [
        {"type": "m.room.encryption", "state_key": "", "content": {"algorithm": MEGOLM}},
        {"type": "m.room.join_rules", "state_key": "", "content": {"join_rule": "invite"}},
        {"type": "m.room.guest_access", "state_key": "", "content": {"guest_access": "forbidden"}},
        {"type": "m.room.history_visibility", "state_key": "", "content": {"history_visibility": "invited"}},
        {"type": ROOM_STATE_TYPE, "state_key": "", "content": marker},
    ]


def case_room(case_ref: str, name: str, bot: str, room_version: str) -> dict[str, Any]:
    """Keyword arguments for createRoom: nothing personal, only the pseudonymous reference."""
    return {
        "name": name,
        "visibility": "private",
        "preset": "private_chat",
        "is_direct": False,
        "federate": True,
        "initial_state": _private_state({"case": case_ref}),
        "power_level_override": _locked_power_levels(bot, room_version),
        "room_version": room_version,
    }


def desk_room(owner: str, name: str, bot: str, room_version: str) -> dict[str, Any]:
    return {
        "name": name,
        "visibility": "private",
        "preset": "private_chat",  # trusted_private_chat makes invitees co-creators in v12
        "is_direct": True,
        "invite": [owner],
        "federate": True,
        "initial_state": _private_state({"desk": owner}),
        "power_level_override": _locked_power_levels(bot, room_version),
        "room_version": room_version,
    }


def triage_room(name: str, bot: str, room_version: str, members: list[str]) -> dict[str, Any]:
    """The integrated access point's triage room (SPEC §9): encrypted, invite-only, no name of anyone."""
    return {
        "name": name,
        "visibility": "private",
        "preset": "private_chat",
        "is_direct": False,
        "invite": members,
        "federate": True,
        "initial_state": _private_state({"triage": "referrals"}),
        "power_level_override": _locked_power_levels(bot, room_version),
        "room_version": room_version,
    }


#: Kinds that call for someone's action (SPEC §5): sent as m.text so that the default push rule
#: `.m.rule.suppress_notices`, which silences every m.notice before `.m.rule.is_user_mention` is
#: reached, lets the people in `m.mentions` be notified (highlight and sound).
ACTION_KINDS = frozenset({
    "alert.admission", "alert.discharge", "alert.transfer", "alert.cancelled",
    "handover.professional", "handover.setting",
    "reevaluation.due", "reevaluation.overdue",
    "delivery.failed", "referral.decision", "rights.review",
})


def msgtype_of(kind: str) -> str:
    return "m.text" if kind in ACTION_KINDS else "m.notice"


def notice(kind: str, case_ref: str, body: str, formatted: str,
           mentions: tuple[str, ...] = ()) -> dict[str, Any]:
    """A bot message: m.text for the kinds that call for action, m.notice for the rest.

    `m.mentions` is always present: with it, the legacy push rules that match display names
    and user ids in `body` are skipped (MSC3952), so naming a person never notifies them; only
    the ids listed here are mentions.
    """
    content: dict[str, Any] = {
        "msgtype": msgtype_of(kind),
        "body": body,
        "format": "org.matrix.custom.html",
        "formatted_body": formatted,
        "fr.relais.kind": kind,
        "fr.relais.case": case_ref,
        "m.mentions": {"user_ids": sorted(set(mentions))} if mentions else {},
    }
    return content


def in_thread(content: dict[str, Any], root: str, reply_to: str | None) -> dict[str, Any]:
    """`content` posted in the thread of `root` (Matrix spec "Threading"); clients without
    threads show it as a reply to `reply_to` (`is_falling_back`)."""
    relation: dict[str, Any] = {"rel_type": "m.thread", "event_id": root, "is_falling_back": True,
                                "m.in_reply_to": {"event_id": reply_to or root}}
    return {**content, "m.relates_to": relation}


def power_moved(current: dict[str, Any], from_user: str, to_user: str) -> dict[str, Any] | None:
    """The room's power levels with `from_user`'s level handed to `to_user`; None when nothing changes.

    The receiver keeps a higher level they may already hold; the giver is left at the default.
    """
    users = dict(current.get("users") or {})
    if from_user not in users:
        return None
    level = users.pop(from_user)
    users[to_user] = max(level, users.get(to_user, current.get("users_default", 0)))
    return {**current, "users": users}


def replacement(original_event_id: str, new_content: dict[str, Any]) -> dict[str, Any]:
    """An m.replace edit: clients show the new content in place of the original notice."""
    fallback = dict(new_content)
    fallback["body"] = "* " + new_content["body"]
    fallback["formatted_body"] = "* " + new_content["formatted_body"]
    fallback["m.new_content"] = new_content
    fallback["m.mentions"] = {}  # an edit notifies nobody again (MSC3952)
    fallback["m.relates_to"] = {"rel_type": "m.replace", "event_id": original_event_id}
    return fallback


def encrypted_size(content: dict[str, Any], room_id: str) -> int:
    """Bytes the m.room.encrypted event carrying `content` takes once stored, at most.

    The plaintext is the JSON matrix-nio encrypts (`{"type", "content", "room_id"}`, ASCII with
    `\\uXXXX` escapes: an accent costs 6 bytes, an emoji 12); Megolm pads it to AES blocks and
    adds a version, index, MAC and Ed25519 signature (olm's megolm.md), then base64 (4/3)."""
    plaintext = json.dumps({"type": "m.room.message", "content": content, "room_id": room_id},
                           separators=(",", ":"))
    blocks = 16 * (len(plaintext) // 16 + 1)
    megolm = 1 + 6 + 4 + blocks + 8 + 64
    return math.ceil(megolm * 4 / 3) + _ENCRYPTED_KEYS_BYTES + ENVELOPE_BYTES


def fits(content: dict[str, Any], room_id: str) -> bool:
    return encrypted_size(content, room_id) <= MAX_EVENT_BYTES
