"""Continuity breaks (SPEC §1, §6): relational, informational, approach. Pure.

A break is reported by hand (`!break`), or recorded when a member leaves the room on their own
or leaves without a successor. Reports count them by category for the territory's pilot.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from hub.domain import plan
from hub.domain.effects import Effect, Notify
from hub.domain.errors import DomainError
from hub.domain.plan import PlanItem

KIND = "continuity.break"


class Category(StrEnum):
    RELATIONAL = "relational"  # the GP retires, a nurse leaves
    INFORMATIONAL = "informational"  # the right person does not know
    APPROACH = "approach"  # services stop matching needs


class Source(StrEnum):
    REPORTED = "reported"  # !break
    LEFT = "left"  # left the room on their own (or their account was closed)
    DECLINED = "declined"  # refused the invitation to the team
    NO_SUCCESSOR = "no_successor"  # removed without a successor while holding plan items


CATEGORY_ALIASES = {
    "relationnelle": "relational", "relationnel": "relational", "relation": "relational",
    "informationnelle": "informational", "informationnel": "informational", "information": "informational",
    "approche": "approach", "d'approche": "approach",
}

# Word stems, accents removed, matched at the start of a word. French first, English too.
_KEYWORDS: dict[Category, tuple[str, ...]] = {
    Category.RELATIONAL: (
        "retraite", "depart", "part ", "quitte", "demenage", "remplac", "successeur", "plus de medecin",
        "sans medecin traitant", "changement de poste", "change de poste", "mutation", "arret maladie",
        "conge", "absent", "injoignable", "retire", "left", "leaves", "leaving", "retire", "replacement",
        "no gp", "new job",
    ),
    Category.INFORMATIONAL: (
        # Naming the GP or a discharge says nothing of the category; what was not passed on does.
        "pas informe", "pas prevenu", "pas ete informe", "pas ete prevenu", "non informe", "non prevenu",
        "informe", "prevenu", "au courant", "lettre de liaison", "sans lettre", "sans courrier", "sans nouvelles",
        "courrier", "compte rendu", "compte-rendu", "lettre de sortie", "transmission", "information", "nouvelles",
        "ordonnance", "dmp", "message", "not informed", "not told", "discharge letter", "letter", "summary",
        "unaware",
    ),
    Category.APPROACH: (
        "inadapt", "ne correspond", "correspond plus", "plus adapte", "arret du", "arret des", "interromp",
        "suspendu", "liste d'attente", "pas de place", "plus de place", "refus", "besoin", "insuffisant",
        "ne repond", "service", "ssiad", "saad", "aide a domicile", "not suited", "waiting list", "stopped",
        "no longer", "unmet", "need",
    ),
}


@dataclass(frozen=True)
class Break:
    case_ref: str
    category: Category
    source: Source
    reported_by: str
    at: datetime
    description: str | None = None  # free text: kept in the file, never logged nor in the report
    subject: str | None = None  # the professional concerned, for automatic breaks
    id: int | None = None


def _fold(text: str) -> str:
    """Lower case, accents removed, apostrophes unified: what keyword matching compares."""
    folded = unicodedata.normalize("NFKD", text.lower().replace("’", "'"))
    return " ".join("".join(c for c in folded if not unicodedata.combining(c)).split()) + " "


def infer_category(text: str) -> Category | None:
    """The category whose keywords the text names most; None when none or a tie."""
    folded = _fold(text)
    scores = {
        category: sum(1 for word in words if re.search(r"(?<![a-z])" + re.escape(_fold(word).rstrip()), folded))
        for category, words in _KEYWORDS.items()
    }
    best = max(scores.values())
    if best == 0:
        return None
    winners = [c for c, s in scores.items() if s == best]
    return winners[0] if len(winners) == 1 else None


def report(case_ref: str, text: str, category: str | None, *, by: str, now: datetime,
           pilots: tuple[str, ...]) -> tuple[Break, list[Effect]]:
    """`!break "<what happened>" [--category …]`: stored for the pilot's report.

    The room is told; each pilot's desk gets the category only — never the text nor the case.
    """
    description = " ".join(text.split())
    if not description:
        raise DomainError("error.break_empty")
    if len(description) > 2000:
        raise DomainError("error.break_too_long", limit=2000)
    chosen = Category(category) if category else infer_category(description)
    if chosen is None:
        raise DomainError("error.break_category")
    record = Break(case_ref, chosen, Source.REPORTED, by, now, description)
    effects: list[Effect] = [
        Notify(KIND, case_ref, "break.reported",
               {"by": by, "category": {"key": f"category.{chosen.value}"},
                "how": {"key": "break.chosen" if category else "break.inferred"}, "text": description}),
    ]
    effects += [Notify(KIND, "", "break.to_pilot", {"category": {"key": f"category.{chosen.value}"},
                                                    "date": now.isoformat()}, desk=p) for p in pilots]
    return record, effects


def member_left(case_ref: str, user: str, role: str, source: Source, items: list[PlanItem], *,
                mentions: tuple[str, ...], now: datetime) -> tuple[Break, Notify]:
    """A member left the room on their own, or declined the invitation: the team is told once."""
    message = "break.declined" if source is Source.DECLINED else "break.left"
    if not items:
        message += "_none"
    notice = Notify(KIND, case_ref, message, {
        "user": user, "role": role, "items": [plan.item_as_params(i) for i in items],
        "count": len(items),
    }, mentions)
    return Break(case_ref, Category.RELATIONAL, source, user, now, subject=user), notice
