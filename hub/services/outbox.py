"""Hand effects to the durable outbox, in the caller's unit of work."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime

from hub.domain.effects import (
    CreateDesk,
    CreateRoom,
    CreateTriage,
    Effect,
    Invite,
    InviteToDesk,
    Kick,
    KickFromDesk,
    LeaveRoom,
    MovePower,
    Notify,
    Redact,
    SendFile,
)
from hub.storage.database import UnitOfWork

ACTIONS: dict[type, str] = {
    Notify: "notify", CreateRoom: "create_room", CreateDesk: "create_desk", Invite: "invite", Kick: "kick",
    MovePower: "move_power", SendFile: "send_file", CreateTriage: "create_triage", InviteToDesk: "invite_desk",
    KickFromDesk: "kick_desk", Redact: "redact", LeaveRoom: "leave",
}


def effect_case(effect: Effect) -> str | None:
    return getattr(effect, "case_ref", None) or None


async def enqueue(uow: UnitOfWork, key_prefix: str, effects: Sequence[Effect], now: datetime) -> int:
    """Keys are derived from what caused the effects, so a replay enqueues nothing new."""
    added = 0
    for index, effect in enumerate(effects):
        payload = asdict(effect)
        if isinstance(effect, Notify):
            payload["mentions"] = list(effect.mentions)
        added += await uow.outbox.add(f"{key_prefix}:{index}", ACTIONS[type(effect)],
                                      effect_case(effect), payload, now)
    return added
