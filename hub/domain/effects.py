"""Effects: what the domain asks the outside world to do.

Domain functions never touch Matrix or the database; they return these values and a service
persists them in the outbox in the same transaction as the state change, so nothing is lost
or done twice when a process dies in between.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Notify:
    """Post an m.notice built from a catalog message into a case room (or a desk)."""

    kind: str  # fr.relais.kind, e.g. "team.update"
    case_ref: str  # fr.relais.case; "" for desk messages not about one person
    message: str  # catalog key
    params: dict[str, Any] = field(default_factory=dict)
    mentions: tuple[str, ...] = ()
    room_id: str | None = None  # explicit target room; else the desk below, else the case room
    desk: str | None = None  # post in this user's desk (its room may not exist yet)
    replaces: str | None = None  # outbox key of an earlier notice to edit (m.replace)
    thread_root: str | None = None  # post in this thread (m.thread): a command typed there
    in_reply_to: str | None = None  # with thread_root: the event answered in the thread


@dataclass(frozen=True)
class CreateRoom:
    case_ref: str


@dataclass(frozen=True)
class Invite:
    case_ref: str
    user_id: str


@dataclass(frozen=True)
class Kick:
    case_ref: str
    user_id: str
    reason_key: str = "kick.reason"


@dataclass(frozen=True)
class CreateDesk:
    """Open the direct encrypted room of a case manager or pilot with the bot."""

    user_id: str


@dataclass(frozen=True)
class RenewDesk:
    """Open a new desk for `user_id` in place of `lost_room`, a desk the bot lost (removed from
    it, the room gone) or left (someone else entered it). Done as `create_desk`, but in a lane of
    its own: the notices still pending in the desk's lane wait for it, then go to the new room."""

    user_id: str
    lost_room: str


@dataclass(frozen=True)
class CreateTriage:
    """Open the triage room of the integrated access point (SPEC §9), inviting `members`.
    Its room is kept as the desk named `TRIAGE_DESK`, so notices reach it with `desk=`.
    `lost_room`: made anew in place of that room, which the bot lost (as `RenewDesk`)."""

    members: tuple[str, ...]
    lost_room: str | None = None


@dataclass(frozen=True)
class InviteToDesk:
    """Invite a user into a room that is not a person's (the triage room)."""

    desk: str
    user_id: str


@dataclass(frozen=True)
class KickFromDesk:
    """Remove a user from a room that is not a person's (the triage room: rights follow the config)."""

    desk: str
    user_id: str
    reason_key: str = "kick.reason"


@dataclass(frozen=True)
class Redact:
    """Redact a notice the bot sent, named by its outbox key (erasure: SPEC §9). Where it was sent
    is `room_id`, else the desk `desk`. Nothing happens when the notice was never sent."""

    notice_key: str
    room_id: str | None = None
    desk: str | None = None
    reason_key: str = "redact.reason"


@dataclass(frozen=True)
class LeaveRoom:
    """The bot leaves a room (a desk whose owner is no longer configured)."""

    room_id: str


@dataclass(frozen=True)
class MovePower:
    """Hand a case room's power level from one user to another (a file changing case manager)."""

    case_ref: str
    from_user: str
    to_user: str


@dataclass(frozen=True)
class SendFile:
    """Post a small text file (an iCalendar invitation) in a case room as an encrypted m.file
    attachment; it carries fr.relais.kind and fr.relais.case like a notice."""

    kind: str
    case_ref: str
    filename: str
    mimetype: str
    data: str  # the file's text, sent as UTF-8


Effect = (Notify | CreateRoom | CreateDesk | RenewDesk | CreateTriage | Invite | InviteToDesk | Kick | KickFromDesk
          | LeaveRoom | MovePower | Redact | SendFile)

#: The desk row holding the triage room: not a Matrix id, so it never names a person's desk.
TRIAGE_DESK = "triage"
