"""Continuity breaks, closing a file, and the pure content builders they need."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from hub.bots.content import power_moved
from hub.bots.intake import membership_change
from hub.domain import closure, continuity
from hub.domain.continuity import Category
from hub.domain.effects import Kick, Notify
from hub.domain.errors import DomainError
from hub.domain.persons import Person
from hub.domain.team import Member, Role

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(("text", "expected"), [
    ("Le médecin traitant part à la retraite en juin, pas de remplaçant", Category.RELATIONAL),
    ("L'infirmière a quitté le cabinet", Category.RELATIONAL),
    ("Sortie d'hôpital sans lettre de sortie : le médecin n'a pas été prévenu", Category.INFORMATIONAL),
    ("Personne n'était au courant du retour à domicile ; aucun compte rendu", Category.INFORMATIONAL),
    ("Le SSIAD a mis fin aux passages, liste d'attente de trois mois", Category.APPROACH),
    ("Aide à domicile inadaptée aux besoins actuels", Category.APPROACH),
    ("The GP retired and nobody replaced him: no GP now", Category.RELATIONAL),
    ("Ras", None),
])
def test_the_category_is_inferred_from_french_and_english_words(text: str, expected: Category | None) -> None:
    assert continuity.infer_category(text) is expected


def test_a_reported_break_reaches_the_room_and_the_pilot_without_its_text() -> None:
    record, effects = continuity.report("R-2026-0001", "  Le SSIAD   a arrêté ", None, by="@cm:x", now=NOW,
                                        pilots=("@pilot:x",))
    assert record.category is Category.APPROACH and record.description == "Le SSIAD a arrêté"
    room, pilot = effects
    assert isinstance(room, Notify) and room.params["how"] == {"key": "break.inferred"}
    assert isinstance(pilot, Notify) and pilot.desk == "@pilot:x" and pilot.case_ref == ""
    assert "SSIAD" not in repr(pilot.params)
    chosen, _ = continuity.report("R-2026-0001", "Ras", "informational", by="@cm:x", now=NOW, pilots=())
    assert chosen.category is Category.INFORMATIONAL
    for text, key in (("   ", "error.break_empty"), ("Ras", "error.break_category"),
                      ("x" * 2001, "error.break_too_long")):
        with pytest.raises(DomainError, match=key.replace(".", r"\.")):
            continuity.report("R-2026-0001", text, None, by="@cm:x", now=NOW, pilots=())


def test_closing_ends_every_record_tells_the_team_then_removes_everyone() -> None:
    person = Person("R-2026-0001", "Jeanne Dupont", "@cm:x", NOW)
    team = [Member("@cm:x", Role.CASE_MANAGER, NOW), Member("@gp:x", Role.GP, NOW),
            Member("@old:x", Role.NURSE, NOW, until=NOW)]
    closed, ended, effects = closure.close(person, team, closure.CloseReason.DEATH, by="@cm:x", now=NOW)
    assert closed.closed_at == NOW and closed.close_reason == "death" and not closed.is_open
    assert [(m.user_id, m.end_reason) for m in ended] == [("@cm:x", "closed"), ("@gp:x", "closed")]
    assert isinstance(effects[0], Notify) and effects[0].kind == "case.closed"
    assert effects[1:] == [Kick("R-2026-0001", "@cm:x", "kick.closed"), Kick("R-2026-0001", "@gp:x", "kick.closed")]
    with pytest.raises(DomainError, match=r"error\.case_closed"):
        closure.close(closed, team, closure.CloseReason.OTHER, by="@cm:x", now=NOW)


def test_power_moves_to_the_new_case_manager_and_only_when_there_is_one_to_move() -> None:
    levels = {"users": {"@relais:x": 100, "@cm:x": 25}, "users_default": 0, "kick": 100}
    moved = power_moved(levels, "@cm:x", "@cm2:x")
    assert moved == {"users": {"@relais:x": 100, "@cm2:x": 25}, "users_default": 0, "kick": 100}
    assert levels["users"] == {"@relais:x": 100, "@cm:x": 25}  # the input is not changed
    assert power_moved(levels, "@nobody:x", "@cm2:x") is None
    assert power_moved({"users": {"@cm:x": 25, "@cm2:x": 50}}, "@cm:x", "@cm2:x") == {"users": {"@cm2:x": 50}}


@pytest.mark.parametrize(("sender", "membership", "prev", "expected"), [
    ("@u:x", "leave", "join", "left"),
    ("@u:x", "leave", "invite", "declined"),
    ("@relais:x", "leave", "join", "kicked"),
    ("@relais:x", "ban", "join", "banned"),
    ("@u:x", "join", "invite", "join"),
])
def test_membership_changes_tell_own_leaves_from_removals(sender: str, membership: str, prev: str,
                                                          expected: str) -> None:
    assert membership_change(sender, "@u:x", membership, prev) == expected
