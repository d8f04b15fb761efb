"""Parser additions used by the concertation and consent commands: accents, multi-value options."""

from __future__ import annotations

import pytest

from hub.commands.parser import UsageError, parse
from hub.commands.registry import build_registry
from hub.commands.usage import usage_line
from hub.i18n.catalog import Catalog

SPECS = build_registry().specs


def test_french_words_with_accents_find_their_command() -> None:
    assert parse('!décision "Passage infirmier" --action 2', SPECS).spec.name == "decision"
    inv = parse("!consentement donné 2026-03-01 --portée étendue", SPECS)
    assert inv.spec.name == "consent given" and inv.opts["scope"] == "extended"
    assert parse("!Équipe", SPECS).spec.name == "team"


def test_with_takes_every_user_up_to_the_next_option() -> None:
    inv = parse("!concertation 2026-03-10 14:00 --with @a:x @b:x --minutes 45", SPECS)
    assert inv.opts["with"] == ["@a:x", "@b:x"] and inv.opts["minutes"] == 45
    assert parse("!concertation 2026-03-10 14:00", SPECS).opts["with"] == []
    with pytest.raises(UsageError) as err:
        parse("!concertation 2026-03-10 14:00 --avec", SPECS)
    assert err.value.key == "error.option_needs_value"
    with pytest.raises(UsageError) as err:
        parse("!concertation 2026-03-10 14:00 --avec @a:x nobody", SPECS)
    assert err.value.key == "error.bad_user"
    assert err.value.spec is not None
    assert "[--avec @nom:serveur…]" in usage_line(err.value.spec, Catalog("fr"))


@pytest.mark.parametrize(("word", "role"), [("medecin", "gp"), ("Médecin", "gp"), ("infirmière", "nurse"),
                                            ("SSIAD", "home_nursing"), ("kiné", "physio"), ("aidant", "carer"),
                                            ("gp", "gp")])
def test_team_add_takes_french_role_words(word: str, role: str) -> None:
    assert parse(f"!equipe ajouter @u:x {word}", SPECS).args["role"] == role


def test_an_unknown_role_word_is_refused_with_the_choices() -> None:
    with pytest.raises(UsageError) as err:
        parse("!equipe ajouter @u:x plombier", SPECS)
    assert err.value.key == "error.bad_choice" and "nurse" in err.value.params["choices"]
