"""How long each free text may be, checked before anything is saved. Pure.

Two reasons for a limit: a column that PostgreSQL bounds (SQLite stores any length, PostgreSQL
raises, so the domain refuses first, on both backends alike), and a notice that must fit in
one Matrix event (65 536 bytes for the whole encrypted event, Matrix spec "Size limits"): every
text repeated in a notice is short enough that the longest notice still fits once escaped in
HTML and JSON and encrypted (see hub/bots/content.py, `encrypted_size`).

Limits are in characters (Unicode code points, after the input was normalised).
"""

from __future__ import annotations

from hub.domain.errors import DomainError

#: field → most characters. Keys are the names commands and records use for the field.
LIMITS: dict[str, int] = {
    "name": 120,  # persons.display_name String(120)
    "org": 120,  # team_members.organisation String(120)
    "reason": 255,  # team_members.end_reason String(255), handover reason
    "establishment": 120,  # settings history establishment String(120)
    "provider": 255,  # plan_items.provider_org String(255)
    "need": 300,
    "action": 500,
    "frequency": 120,
    "text": 2000,  # a reported break; a concertation decision has its own, shorter limit
    "note": 500,  # consent note (hub/domain/consent.py NOTE_MAX)
    "identifier": 129,  # authority String(64) ":" value String(64)
    "ins": 64,
    "subject": 255,  # continuity_breaks.subject String(255)
    "comment": 5000,  # what follows `!vu`: not kept, so only a bound on what is read
}
#: Any other free text typed in a command.
DEFAULT = 500


def limit(field: str) -> int:
    return LIMITS.get(field, DEFAULT)


def check(field: str, value: str | None) -> str | None:
    """`value` unchanged when it fits; DomainError("error.too_long") naming the field, its limit
    and the length typed otherwise."""
    if value is not None and len(value) > limit(field):
        raise DomainError("error.too_long", arg=field, max=limit(field), length=len(value))
    return value
