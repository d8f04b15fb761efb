"""Hand effects to the durable outbox, and set aside what can never be done, in the caller's unit of work."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict
from datetime import datetime, tzinfo

from hub.domain import delivery
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
    RenewDesk,
    SendFile,
)
from hub.domain.transitions import PARIS
from hub.storage.database import UnitOfWork
from hub.storage.repositories import OutboxEntry

ACTIONS: dict[type, str] = {
    Notify: "notify", CreateRoom: "create_room", CreateDesk: "create_desk", Invite: "invite", Kick: "kick",
    MovePower: "move_power", SendFile: "send_file", CreateTriage: "create_triage", InviteToDesk: "invite_desk",
    KickFromDesk: "kick_desk", Redact: "redact", LeaveRoom: "leave", RenewDesk: "create_desk",
}


def effect_case(effect: Effect) -> str | None:
    return getattr(effect, "case_ref", None) or None


async def enqueue(uow: UnitOfWork, key_prefix: str, effects: Sequence[Effect], now: datetime, *,
                  lanes: Mapping[str, str | None] | None = None) -> int:
    """Keys are derived from what caused the effects, so a replay enqueues nothing new.
    `lanes`: room id → lane of the rooms the caller already looked up (OutboxRepo.add)."""
    added = 0
    for index, effect in enumerate(effects):
        payload = asdict(effect)
        if isinstance(effect, Notify):
            payload["mentions"] = list(effect.mentions)
        added += await uow.outbox.add(f"{key_prefix}:{index}", ACTIONS[type(effect)],
                                      effect_case(effect), payload, now, lanes=lanes)
    return added


async def dead_letter(uow: UnitOfWork, entry: OutboxEntry, error: str, now: datetime,
                      tz: tzinfo = PARIS, behind: Sequence[OutboxEntry] = ()) -> str | None:
    """Set an entry aside for good and tell a person (SPEC §5 `delivery.failed`: what kind of
    notice, which file, since when — no content): the file's referent in their desk; when that
    desk is the very place that fails, or there is no file (a desk's creation, the triage room,
    another room), the pilots in theirs (hub/domain/delivery.py). Returns whom it told (ids
    joined by ", "), or None when nobody can be: a report to a pilot that failed itself, or no
    pilot with a desk. `tz`: the territory's zone, for "since when".

    `behind`: the entries waiting behind it in its lane that fail with it (the room is gone): set
    aside too, and told in the same one report — how many, of which kinds — never one each.

    In the caller's unit of work, so the entry is never set aside without its report."""
    await uow.outbox.failed(entry.id, error)
    for other in behind:
        await uow.outbox.failed(other.id, error)
    kind = str(entry.payload.get("kind") or "")
    if entry.payload.get("message") in (delivery.TO_PILOT, delivery.TO_PILOT_MANY):
        return None  # the last resort failed: the error log and the metric keep it
    told = [e for e in (entry, *behind) if e.payload.get("message") not in (delivery.TO_PILOT, delivery.TO_PILOT_MANY)]
    what: str | list[str] = kind or entry.action
    if len(told) > 1:
        what = [str(e.payload.get("kind") or "") or e.action for e in told]
    desk = entry.payload.get("desk")
    room_id = entry.payload.get("room_id")
    owner = str(desk) if desk else None
    if owner is None and room_id and not entry.case_ref:
        found = await uow.desks.owner(str(room_id))  # a reply posted in a desk names its room
        owner = found[0] if found else None
    triage = owner == TRIAGE_DESK or entry.action == "create_triage"
    if entry.action in ("create_desk", "create_triage"):
        owner = None if triage else str(entry.payload.get("user_id") or "") or None
    referent: str | None = None
    if entry.case_ref:
        person = await uow.persons.get(entry.case_ref)
        referent = person.referent if person is not None else None
    elif owner and not triage and entry.action != "create_desk":
        referent = owner
    if referent is not None and referent != owner and kind != DELIVERY_FAILED:
        notice = failure_notice(referent, entry.case_ref or "", what, entry.created_at, tz, error)
        await enqueue(uow, f"dead:{entry.id}", [notice], now)
        return referent
    # The referent's own desk is what fails (or there is no referent): the pilots are told.
    place = delivery.where(entry.case_ref or "", owner if not triage else None, triage)
    pilots = sorted(user for user, role, room in await uow.desks.all() if role == "pilot" and room and user != owner)
    notices = [delivery.pilot_notice(p, entry.case_ref or "", what, place, entry.created_at, tz, error)
               for p in pilots]
    await enqueue(uow, f"dead:{entry.id}", notices, now)
    return ", ".join(pilots) or None
