"""Hand effects to the durable outbox, and set aside what can never be done, in the caller's unit of work."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime

from hub.domain.delivery import KIND as DELIVERY_FAILED
from hub.domain.delivery import failure_notice
from hub.domain.effects import (
    TRIAGE_DESK,
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
from hub.storage.repositories import OutboxEntry

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


#: Kinds whose failure is not reported again (the report itself).
_NOT_REPORTED = frozenset({DELIVERY_FAILED})


async def dead_letter(uow: UnitOfWork, entry: OutboxEntry, error: str, now: datetime) -> str | None:
    """Set an entry aside for good and tell the file's referent in their desk (SPEC §5
    `delivery.failed`: what kind of notice, which file, since when — no content). Returns whom
    it told, or None when nobody can be told (a desk's own creation, a report that failed itself).

    In the caller's unit of work, so the entry is never set aside without its report."""
    await uow.outbox.failed(entry.id, error)
    kind = str(entry.payload.get("kind") or "")
    if kind in _NOT_REPORTED or entry.action in ("create_desk", "create_triage"):
        return None
    if entry.payload.get("desk") == TRIAGE_DESK:
        return None  # the triage room is no one's desk: nobody to mention (the error log and metric say it)
    referent: str | None = None
    if entry.case_ref:
        person = await uow.persons.get(entry.case_ref)
        referent = person.referent if person is not None else None
    elif entry.payload.get("desk"):
        referent = str(entry.payload["desk"])
    if referent is None:
        return None
    notice = failure_notice(referent, entry.case_ref or "", kind or entry.action, entry.created_at)
    await enqueue(uow, f"dead:{entry.id}", [notice], now)
    return referent
