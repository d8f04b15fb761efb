"""Commands as people really finish, start and lay them out (review r24): courtesy after a command,
the `!` and the `n°` as keyboards write them, a weekday that contradicts its date, options written
`--date=…`, a second command or a list bullet. Pure reading and parsing."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from babel.dates import format_date

from hub.commands.handlers_plan import NONE_WORDS, _review
from hub.commands.normalise import read_message
from hub.commands.parser import Invocation, UsageError, is_command, parse
from hub.commands.registry import build_registry
from hub.commands.usage import explain
from hub.i18n.catalog import Catalog
from hub.i18n.formats import Formats

SPECS = build_registry().specs
TODAY = date(2026, 3, 1)


def run(content: dict[str, Any] | str) -> Invocation:
    message = read_message({"msgtype": "m.text", "body": content} if isinstance(content, str) else content)
    return parse(message.text, SPECS, today=TODAY)


def refused(text: str) -> UsageError:
    with pytest.raises(UsageError) as err:
        run(text)
    # the usage line answers, except where no command could be chosen
    assert err.value.spec is not None or err.value.key in ("error.unknown_command", "error.one_command")
    return err.value


# --- courtesy and emoji after a command ----------------------------------------------------------

@pytest.mark.parametrize(("typed", "name", "args"), [
    ("!equipe merci", "team", {}), ("!equipe 👍", "team", {}), ("!equipe merci beaucoup 🙏🏼", "team", {}),
    ("!eval ok", "eval", {}), ("!plan merci", "plan", {"n": None}), ("!plan 2 merci !", "plan", {"n": 2}),
    ("!plan clore 2, merci !", "plan close", {"n": 2}), ("!plan clore 2 :)", "plan close", {"n": 2}),
    ("!cloturer deces merci", "close", {"reason": "death"}),
    ("!equipe ajouter @u:x medecin merci d'avance", "team add", {"user": "@u:x", "role": "gp"}),
    ("!team thanks", "team", {}), ("!consentement Merci.", "consent", {}),
])
def test_courtesy_words_and_emoji_after_a_command_are_not_arguments(typed: str, name: str,
                                                                   args: dict[str, Any]) -> None:
    inv = run(typed)
    assert inv.spec.name == name
    assert {k: v for k, v in inv.args.items() if k in args} == args


@pytest.mark.parametrize(("typed", "text"), [
    ("!rupture elle a dit merci", "elle a dit merci"), ("!rupture 😡", "😡"),
    ('!decision "Passage infirmier" merci', '"Passage infirmier" merci'),
])
def test_a_free_text_keeps_its_courtesy(typed: str, text: str) -> None:
    assert run(typed).args["text"] == text


@pytest.mark.parametrize(("typed", "key", "extra"), [
    ("!plan clore 2 3", "error.too_many_arguments", "3"),
    ("!plan clore 2 et 3 merci", "error.too_many_arguments", "et"),
    ("!equipe ajoute @u:x medecin", "error.too_many_arguments", "ajoute"),
    ("!eval merci Anne", "error.too_many_arguments", "merci"),
    ("!plan modifier 2 --statut en attente merci", "error.too_many_arguments", "attente"),
])
def test_a_real_word_after_a_complete_command_is_still_refused(typed: str, key: str, extra: str) -> None:
    err = refused(typed)
    assert err.key == key and err.params["extra"] == extra


@pytest.mark.parametrize("typed", ["!plan clore merci", "!plan clore 👍", "!transferer R-2026-0001 merci"])
def test_courtesy_never_stands_for_a_missing_argument(typed: str) -> None:
    assert refused(typed).key == "error.missing_argument"


@pytest.mark.parametrize(("typed", "comment"), [
    ("!vu", None), ("!vu merci", "merci"), ("!vu 👍", "👍"), ("!ack ok thanks", "ok thanks"),
    ("!vu merci pour l’info, je passe jeudi", "merci pour l'info, je passe jeudi"), ("!vu\nBien reçu.", "Bien reçu."),
])
def test_an_acknowledgement_takes_the_persons_word_to_the_room(typed: str, comment: str | None) -> None:
    """`!vu` has no argument to mistype: whatever follows is the person's word to the room."""
    inv = run(typed)
    assert inv.spec.name == "ack" and inv.args["comment"] == comment


# --- the number sign and the command's `!` as keyboards write them --------------------------------

@pytest.mark.parametrize("typed", ["n° 2", "N° 2", "nº 2", "N°\u00a02", "# 2", "n°\u202f2",
                                   "n°2", "2"])
def test_an_item_number_after_its_sign_and_a_space(typed: str) -> None:
    assert run(f"!plan clore {typed}").args["n"] == 2
    assert run(f"!plan modifier {typed} --statut fait").args["n"] == 2
    assert run(f"!decision x --action {typed}").opts["item"] == 2


def test_a_sign_does_not_join_two_numbers() -> None:
    assert refused("!plan clore n° 2 3").params["extra"] == "3"


@pytest.mark.parametrize(("typed", "name"), [
    ("‼equipe", "team"), ("!!equipe", "team"), ("! equipe", "team"), ("!\u00a0equipe", "team"),
    ("! Équipe", "team"), ("!! plan clore 2", "plan close"), ("❗ vu", "ack"), ("！ plan", "plan"),
    ("‼️equipe", "team"),
])
def test_a_doubled_mark_or_a_space_after_it_is_the_commands_mark(typed: str, name: str) -> None:
    text = read_message({"msgtype": "m.text", "body": typed}).text
    assert is_command(text, SPECS)
    assert run(typed).spec.name == name


@pytest.mark.parametrize("typed", ["!!!", "!!! urgent : Mme est tombée", "! attention à la marche", "!?", "!1",
                                   "‼", "! ", "!", "!:)"])
def test_an_exclamation_is_not_a_command(typed: str) -> None:
    """Nothing to answer: the bot does not reply "unknown command" to a person who exclaims."""
    assert not is_command(read_message({"msgtype": "m.text", "body": typed}).text, SPECS)


def test_a_typo_after_the_mark_is_still_answered() -> None:
    assert is_command("!equipx", SPECS) and refused("!equipx").key == "error.unknown_command"


# --- a date as Relais writes it, and one whose weekday contradicts it -----------------------------

_WEEK = [date(2026, 11, 23) + timedelta(days=n) for n in range(7)]  # Monday to Sunday
_YEAR = [date(2026, month, 12) for month in range(1, 13)]


@pytest.mark.parametrize("language", ["fr", "en"])
@pytest.mark.parametrize("day", _WEEK + _YEAR, ids=str)
def test_every_date_relais_writes_is_read_back(language: str, day: date) -> None:
    """`mar. 24/11/2026` (every Tuesday a notice shows) was refused: `mar` was read as March only."""
    shown = Formats(language, ZoneInfo("Europe/Paris")).date(day)
    assert run(f"!eval faite {shown}").args["date"] == day
    assert run(f"!eval faite le {shown}").args["date"] == day
    words = format_date(day, "EEEE d MMMM y", locale=language)  # `mardi 24 novembre 2026`
    assert run(f"!eval faite {words} merci").args["date"] == day


@pytest.mark.parametrize("language", ["fr", "en"])
def test_a_moment_relais_writes_is_read_back_as_date_and_time(language: str) -> None:
    """A concertation notice writes `le ven. 27/11/2026 de 14 h 30 à 15 h 30`, a moment `ven.
    27/11/2026 à 14 h 30`: copied into `!concertation deplacer`, they give that date and time."""
    moment = datetime(2026, 11, 24, 13, 30, tzinfo=UTC)  # 14:30 in Paris
    shown = Formats(language, ZoneInfo("Europe/Paris")).moment(moment)
    inv = run(f"!concertation deplacer {shown}")
    assert (inv.args["date"], inv.args["time"]) == (date(2026, 11, 24), "14:30")
    inv = run("!concertation le mar. 24/11/2026 de 14 h 30 --lieu « Salle 2 »")
    assert (inv.args["date"], inv.args["time"], inv.opts["place"]) == (date(2026, 11, 24), "14:30", "Salle 2")


@pytest.mark.parametrize(("typed", "value"), [
    ("!eval faite lun. 27/11/2026", "lun. 27/11/2026"),
    ("!eval faite lundi 27 novembre 2026 merci", "lundi 27 novembre 2026"),
    ("!eval faite Mon 27/11/2026", "Mon 27/11/2026"),
    ("!lieu hopital --date mer. 27/11/2026", "mer. 27/11/2026"),
    ("!nouveau « Paulette Exemple » --naissance mar. 14/07/1938", "mar. 14/07/1938"),
    ("!concertation le lun. 27/11/2026 à 14h", "lun. 27/11/2026"),
])
def test_a_weekday_that_contradicts_its_date_is_named(typed: str, value: str) -> None:
    """Which did they mean, the Monday or the 27th? Not "too many arguments": the date error,
    with the day the date really is."""
    err = refused(typed)
    assert err.key == "error.date_weekday" and value in err.params["value"]
    text = Catalog("fr").text(err.key, **explain(dict(err.params), err.spec, Catalog("fr")))
    day = date.fromisoformat(err.params["date"])
    assert Formats("fr", ZoneInfo("Europe/Paris")).date(day) in text and "ne correspond pas" in text


def test_a_weekday_that_contradicts_a_date_typed_as_text_is_named() -> None:
    """`--revision` of `!plan modifier` (a text: `aucune` clears it) and `--naissance` of
    `!orienter` are read as dates by their handler, with the same error."""
    with pytest.raises(UsageError) as err:
        _review(run("!plan modifier 2 --revision lun. 27/11/2026"), "lun. 27/11/2026", TODAY)
    assert err.value.key == "error.date_weekday"


@pytest.mark.parametrize(("language", "examples"), [
    ("fr", ["01/12/2026", "1er décembre 2026", "mar. 01/12/2026", "aujourd'hui", "hier", "demain"]),
    ("en", ["01/12/2026", "1 December 2026", "Tue 01/12/2026", "today", "yesterday", "tomorrow"]),
])
def test_the_bad_date_error_shows_forms_that_are_accepted(language: str, examples: list[str]) -> None:
    text = Catalog(language).text("error.bad_date", value="31/02/2026")
    for example in examples:
        assert example in text
        assert isinstance(run(f"!eval faite {example}").args["date"], date), example


# --- options written `--name=value` ---------------------------------------------------------------

@pytest.mark.parametrize(("typed", "where", "name", "value"), [
    ("!plan modifier 2 --statut=fait", "opts", "status", "done"),
    ("!plan modifier 2 --Statut=en place", "opts", "status", "in_place"),
    ('!plan modifier 2 --statut="en place"', "opts", "status", "in_place"),
    ("!plan modifier 2 --statut=« en place »", "opts", "status", "in_place"),
    ("!lieu hopital --date=12/03/2026", "opts", "date", date(2026, 3, 12)),
    ("!lieu hopital —date=12/03/2026", "opts", "date", date(2026, 3, 12)),
    ("!lieu hopital \u2014date=\u00a012/03/2026", "opts", "date", date(2026, 3, 12)),
    ("!eval faite --outil=AGGIR --grille=ABCABCAAAB", "opts", "grid", ["ABCABCAAAB"]),
    ('!plan ajouter "Toilette" "Passage" --intervenant="SSIAD du Val"', "opts", "provider", "SSIAD du Val"),
])
def test_an_option_written_with_an_equals_sign(typed: str, where: str, name: str, value: object) -> None:
    assert getattr(run(typed), where)[name] == value


@pytest.mark.parametrize(("typed", "key"), [
    ("!plan modifier 2 --inconnu=3", "error.unknown_option"), ("!lieu hopital --date=", "error.option_needs_value"),
])
def test_an_equals_sign_does_not_hide_a_mistake(typed: str, key: str) -> None:
    assert refused(typed).key == key


def test_an_equals_sign_in_text_or_a_criterion_is_text() -> None:
    assert run("!rupture voir a=b, —x=y").args["text"] == "voir a=b, —x=y"
    inv = run("!orientation criteres O-2026-0001 autonomie=oui aides=non")
    assert inv.args["autonomy=yes|no"] == "autonomie=oui"


# --- lists, and one command per message -----------------------------------------------------------

@pytest.mark.parametrize("mark", ["- ", "* ", "+ ", "• ", "1. ", "2) ", "– ", "-\u00a0"])
def test_a_command_pasted_as_a_list_item_is_the_command(mark: str) -> None:
    inv = run(f'{mark}!plan ajouter "Toilette" "Passage" --intervenant SSIAD')
    assert (inv.spec.name, inv.args["need"], inv.opts["provider"]) == ("plan add", "Toilette", "SSIAD")


def test_a_list_item_command_with_a_pill_element_web_sends() -> None:
    content = {"msgtype": "m.text", "body": "- !equipe ajouter Dr Paul Martin medecin",
               "format": "org.matrix.custom.html",
               "formatted_body": '<ul>\n<li>!equipe ajouter <a href="https://matrix.to/#/@gp:example.org">Dr Paul '
                                 'Martin</a> medecin</li>\n</ul>\n'}
    assert run(content).args == {"user": "@gp:example.org", "role": "gp"}


@pytest.mark.parametrize("typed", ["- une note", "- !plan\n- à revoir", "1. appeler le médecin"])
def test_a_list_that_is_not_all_commands_is_text(typed: str) -> None:
    assert not is_command(read_message({"msgtype": "m.text", "body": typed}).text, SPECS)


@pytest.mark.parametrize(("typed", "second"), [
    ("!vu\n!equipe", "!equipe"),
    ('!plan ajouter "Toilette" "Passage"\n!plan ajouter "Repas" "Portage"', '!plan ajouter "Repas" "Portage"'),
    ("!rupture l'aide ne passe plus\n!equipe", "!equipe"),
    ("- !plan clore 2\n- !plan clore 3", "!plan clore 3"),
    ("```\n!plan clore 2\n!plan clore 3\n```", "!plan clore 3"),
    ("!equipe\n! plan", "! plan"),
])
def test_a_second_command_on_another_line_is_refused_not_swallowed(typed: str, second: str) -> None:
    """Before, the second `!plan ajouter` became part of the first item's action, and `!rupture`
    recorded `!equipe` as part of the break: one command per message, nothing done."""
    err = refused(typed)
    assert err.key == "error.one_command" and err.params["command"] == second
    assert second in Catalog("fr").text(err.key, **err.params)


@pytest.mark.parametrize(("typed", "text"), [
    ("!rupture l'aide ne passe plus\ndepuis lundi", "l'aide ne passe plus\ndepuis lundi"),
    ("!rupture l'aide ne passe plus\n!!! urgent", "l'aide ne passe plus\n!!! urgent"),
])
def test_a_free_text_goes_on_over_lines_that_are_not_commands(typed: str, text: str) -> None:
    assert run(typed).args["text"] == text


# --- a dash standing alone before an option; `-` that clears a value ------------------------------

@pytest.mark.parametrize("dash", ["—", "–", "--", "—\u00a0", "——"])
def test_a_dash_a_space_then_an_option_name_is_the_option(dash: str) -> None:
    """`— date` (a keyboard's space after the dash it made of `--`) recorded the establishment
    « — date 12/03/2026 » and no date."""
    inv = run(f"!lieu hopital Clinique {dash} date 12/03/2026")
    assert (inv.args["establishment"], inv.opts["date"]) == ("Clinique", date(2026, 3, 12))
    assert run(f"!plan modifier 2 {dash} Statut fait").opts["status"] == "done"


def test_a_dash_before_a_word_that_is_no_option_stays_text() -> None:
    assert run("!rupture l'aide — date inconnue").args["text"] == "l'aide — date inconnue"
    assert run("!lieu hopital Clinique - date").args["establishment"] == "Clinique - date"  # one ASCII hyphen: a word


@pytest.mark.parametrize("typed", ["-", "—", "aucun", "Aucune", "none"])
def test_a_plan_value_is_cleared_with_a_dash_or_a_none_word(typed: str) -> None:
    """`--intervenant -` (a NONE word of `!plan modifier`) was refused as punctuation alone."""
    inv = run(f"!plan modifier 2 --intervenant {typed} --frequence {typed} --revision {typed}")
    for name in ("provider", "frequency", "review"):
        assert inv.opts[name].lower() in NONE_WORDS, name
    assert _review(inv, inv.opts["review"], TODAY) is None


# --- an emphatic mark before chat is not a command (final review) ----------------------------------

@pytest.mark.parametrize("typed", [
    "! Nouveau : la fille de Mme X a appelé",  # opened a file named « : la fille de Mme X a appelé »
    "❗ Rupture de traitement chez Mme X",  # recorded a break « de traitement chez Mme X »
    "❗Vu le médecin ce matin",  # acknowledged the room's alerts
    "!!! Décision du juge : tutelle",  # recorded a decision « du juge : tutelle »
    "‼️ Nouveau dossier",
])
def test_an_emphatic_mark_before_a_command_word_and_chat_is_not_a_command(typed: str) -> None:
    assert not is_command(read_message({"msgtype": "m.text", "body": typed}).text, SPECS)


@pytest.mark.parametrize(("typed", "name", "args"), [
    ('! rupture "l\'aide ne passe plus"', "break", {"text": "l'aide ne passe plus"}),
    ("❗ vu", "ack", {"comment": None}),
    ("❗vu", "ack", {"comment": None}),
    ("!! plan clore 2", "plan close", {"n": 2}),
])
def test_an_emphatic_mark_before_a_command_without_bare_text_is_the_command(
        typed: str, name: str, args: dict[str, Any]) -> None:
    assert is_command(read_message({"msgtype": "m.text", "body": typed}).text, SPECS)
    inv = run(typed)
    assert (inv.spec.name, inv.args) == (name, args)


@pytest.mark.parametrize(("typed", "second"), [("!vu\n‼equipe", "‼equipe"), ("!rupture x\n❗ vu", "❗ vu")])
def test_a_second_command_with_a_look_alike_mark_is_refused(typed: str, second: str) -> None:
    err = refused(typed)
    assert err.key == "error.one_command" and err.params["command"] == second
