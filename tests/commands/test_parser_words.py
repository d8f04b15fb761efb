"""Parser additions used by the concertation and consent commands: accents, multi-value options."""

from __future__ import annotations

import re

import pytest

from hub.commands.parser import UsageError, parse
from hub.commands.registry import build_registry
from hub.commands.usage import usage_line
from hub.i18n.catalog import Catalog, entries

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


# --- a choice typed as the bot writes it (review r23) --------------------------------------------

#: Where each group of words the bot shows is typed back, and where the choice lands.
_TYPED_BACK = {
    "role": ("!equipe ajouter @u:x {}", "args", "role"),
    "setting": ("!lieu {}", "args", "setting"),
    "status": ("!plan modifier 1 --statut {}", "opts", "status"),
    "reason": ("!eval faite --motif {}", "opts", "reason"),
    "close_reason": ("!cloturer {}", "args", "reason"),
    "category": ("!rupture x --categorie {}", "opts", "category"),
}


def _shown_words() -> list[tuple[str, str, str]]:
    """(group, choice, words) for each word the bot shows for a choice, in both languages: the
    label without its parenthesis (`hôpital`), and what the parenthesis holds (`MCO`)."""
    out = []
    for language in ("fr", "en"):
        for key in entries(language):
            group, _, choice = key.rpartition(".")
            if group not in _TYPED_BACK:
                continue
            label = Catalog(language).text(key)
            outside = re.sub(r"\s*\(.*?\)", "", label).strip()
            out += [(group, choice, words) for words in {outside, *re.findall(r"\((.*?)\)", label)}]
    return out


@pytest.mark.parametrize(("group", "choice", "words"), _shown_words())
def test_every_word_the_bot_shows_for_a_choice_is_accepted_as_typed(group: str, choice: str, words: str) -> None:
    """`!lieu accueil de jour`, `--statut réalisée`, `!cloturer refus de la personne`,
    `assistant·e social·e`: the words of the notices, unquoted, in either language."""
    template, where, name = _TYPED_BACK[group]
    inv = parse(template.format(words), SPECS)
    assert getattr(inv, where)[name] == choice
    assert inv.args.get("establishment") is None  # `!lieu autre lieu` names no establishment "lieu"


@pytest.mark.parametrize(("typed", "expected"), [
    ("!lieu hébergement temporaire « Les Lilas »", ("temporary_stay", "Les Lilas")),
    ("!lieu accueil-de-jour Les Lilas", ("day_care", "Les Lilas")),
    ("!lieu EHPAD Les Lilas", ("nursing_home", "Les Lilas")),
    ("!lieu hôpital CHU de Nantes", ("hospital", "CHU de Nantes")),
])
def test_a_choice_in_several_words_leaves_the_rest_to_the_next_argument(typed: str,
                                                                       expected: tuple[str, str]) -> None:
    inv = parse(typed, SPECS)
    assert (inv.args["setting"], inv.args["establishment"]) == expected


def test_several_words_that_name_no_choice_are_still_refused() -> None:
    with pytest.raises(UsageError) as err:
        parse("!plan modifier 1 --statut en attente", SPECS)
    assert err.value.key == "error.too_many_arguments"
    with pytest.raises(UsageError) as err:
        parse("!lieu chez sa fille", SPECS)
    assert err.value.key == "error.bad_choice"


# --- times as French people write them (review r23) -----------------------------------------------

@pytest.mark.parametrize(("typed", "expected"), [
    ("14:30", "14:30"), ("14h30", "14:30"), ("14H30", "14:30"), ("14 h 30", "14:30"), ("14\u202fh\u202f30", "14:30"),
    ("14h", "14:00"), ("9h", "09:00"), ("9 h", "09:00"), ("9h05", "09:05"), ("14.30", "14:30"), ("14h30.", "14:30"),
    ("midi", "12:00"), ("１４ｈ３０", "14:30"), ("9:00", "09:00"),
    # `9 heures` answered "too many arguments", `9am` "bad time" (review r27)
    ("9 heures", "09:00"), ("9 heures 30", "09:30"), ("14 Heures", "14:00"), ("à 9 heures", "09:00"),
    ("9am", "09:00"), ("2:30 pm", "14:30"), ("2 p.m.", "14:00"), ("12 pm", "12:00"),
])
def test_a_concertation_time_as_french_people_write_it(typed: str, expected: str) -> None:
    """Relais itself writes `à 14 h 30`; people type `14h`, `14h30`, `14 h 30`."""
    inv = parse(f"!concertation 12/12/2026 {typed} --lieu « Salle 2 »", SPECS)
    assert inv.args["time"] == expected and inv.opts["place"] == "Salle 2"
    assert parse(f"!concertation deplacer 12/12/2026 {typed}", SPECS).args["time"] == expected


@pytest.mark.parametrize("typed", ["25h", "14", "14h60", "14 h 30 salle", "14:3", "h30", "13pm", "25 heures",
                                   "9 heures 75"])
def test_a_time_that_is_none_is_refused_with_the_usage(typed: str) -> None:
    with pytest.raises(UsageError) as err:
        parse(f"!concertation 12/12/2026 {typed}", SPECS)
    assert err.value.key in ("error.bad_time", "error.too_many_arguments") and err.value.spec is not None


@pytest.mark.parametrize(("typed", "setting", "establishment"), [
    ("!lieu autre Lieu de vie Les Tilleuls", "other", "Lieu de vie Les Tilleuls"),  # was « de vie Les Tilleuls »
    ("!lieu autre lieu", "other", None),
    ("!lieu autre lieu --date 12/03/2026", "other", None),
    ("!lieu accueil de jour Les Lilas", "day_care", "Les Lilas"),
])
def test_a_choice_before_an_establishment_never_takes_a_word_of_it(
        typed: str, setting: str, establishment: str | None) -> None:
    inv = parse(typed, SPECS)
    assert (inv.args["setting"], inv.args["establishment"]) == (setting, establishment)
