"""Closing a file (SPEC §4 `!close`): the room empties, the record stays, read-only. Pure."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from enum import StrEnum

from hub.domain import team
from hub.domain.effects import Effect, Kick, Notify
from hub.domain.errors import DomainError
from hub.domain.persons import Person
from hub.domain.team import Member

KIND = "case.closed"


class CloseReason(StrEnum):
    DEATH = "death"
    INSTITUTION = "institution"
    STABILISED = "stabilised"
    REFUSAL = "refusal"
    MOVED_AWAY = "moved_away"
    OTHER = "other"


REASON_ALIASES = {
    "deces": "death", "décès": "death", "etablissement": "institution", "établissement": "institution",
    "ehpad": "institution", "stabilise": "stabilised", "stabilisé": "stabilised", "stabilisee": "stabilised",
    "stabilisée": "stabilised", "stabilized": "stabilised", "refus": "refusal", "demenagement": "moved_away",
    "déménagement": "moved_away", "autre": "other",
    # as the notices write them (typed back in several words: hub/commands/parser.py)
    "entrée en établissement": "institution", "situation stabilisée": "stabilised",
    "refus de la personne": "refusal", "autre motif": "other", "entry into an institution": "institution",
    "situation stabilised": "stabilised", "the person's refusal": "refusal", "moved away": "moved_away",
    "other reason": "other",
}


def close(person: Person, members: list[Member], reason: CloseReason, *, by: str,
          now: datetime) -> tuple[Person, list[Member], list[Effect]]:
    """The notice first (everyone still reads it), then every member but the bot is removed.

    Team records end with the reason `closed`; nothing is deleted.
    """
    if not person.is_open:
        raise DomainError("error.case_closed", case=person.case_ref)
    closed = replace(person, closed_at=now, close_reason=reason.value)
    ended = [replace(m, until=now, end_reason="closed") for m in team.active(members)]
    effects: list[Effect] = [Notify(KIND, person.case_ref, "case.closed", {
        "case": person.case_ref, "why": {"key": f"close_reason.{reason.value}"}, "by": by,
        "date": now.isoformat(),
    }, team.mentions_for(members, person.referent))]
    effects += [Kick(person.case_ref, m.user_id, "kick.closed") for m in ended]
    return closed, ended, effects
