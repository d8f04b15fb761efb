"""Commands as busy professionals type them on Element, Element X and phone keyboards (review r25):
an impossible date written in words, an emphatic `‼️` opening chat. Pure reading and parsing; the
dispatcher's answer on a real database is in test_busy_people_dispatch.py."""

from __future__ import annotations

import time
from datetime import date
from typing import Any

import pytest

from hub.commands.handlers_plan import _review
from hub.commands.normalise import normalise, read_message
from hub.commands.parser import Arg, Invocation, UsageError, is_command, parse
from hub.commands.registry import build_registry
from hub.commands.usage import explain
from hub.i18n.catalog import Catalog

SPECS = build_registry().specs
TODAY = date(2026, 3, 1)


def run(content: dict[str, Any] | str) -> Invocation:
    message = read_message({"msgtype": "m.text", "body": content} if isinstance(content, str) else content)
    return parse(message.text, SPECS, today=TODAY)


def refused(text: str) -> UsageError:
    with pytest.raises(UsageError) as err:
        run(text)
    return err.value


def shown(err: UsageError, language: str = "fr") -> str:
    catalog = Catalog(language)
    params = explain(dict(err.params), err.spec, catalog)
    return catalog.text(err.key, **params) + "\n" + catalog.text("usage", usage=params.get("usage", ""))


# --- an impossible date in words is a bad date, named whole, with the usage -------------------------

IMPOSSIBLE = ["31 avril 2026", "30 février 2026", "31/04/2026", "29 février 2027", "32 mars 2026", "31 avr. 2026",
              "ven. 31 avril 2026", "le 31 avril 2026", "31 Avril 2026", "29/02/2027", "31.06.2026", "2026-04-31"]
#: Every command taking a date, with where the date goes.
WITH_A_DATE = [
    ("!eval faite {d}", "date"), ("!eval faite {d} --outil AGGIR", "date"), ("!lieu domicile --date {d}", "date"),
    ('!plan ajouter "Toilette" "Passage" --revision {d}', "review"),
    ('!plan ajouter "Toilette" "Passage" --debut {d} --revision 1er mai 2026', "start"),
    ("!nouveau « Paulette Exemple » --naissance {d}", "born"), ("!new 'Paulette Exemple' --born {d}", "born"),
    ("!rapport --du {d}", "from"), ("!report --from 1er mars 2026 --to {d}", "to"),
    ("!concertation {d} 14 h 30 --lieu « Salle 2 »", "date"), ("!consentement donne {d}", "date"),
    ("!plan au {d}", "date"), ("!eval faite {d} merci", "date"),
]


@pytest.mark.parametrize("typed", IMPOSSIBLE)
@pytest.mark.parametrize(("command", "arg"), WITH_A_DATE)
def test_an_impossible_date_is_named_as_a_bad_date_not_too_many_arguments(typed: str, command: str, arg: str) -> None:
    """`!eval faite 31 avril 2026` answered "argument en trop : « avril »"."""
    err = refused(command.format(d=typed))
    assert err.key == "error.bad_date" and err.params["value"] == typed and err.params["arg"] == arg
    assert err.spec is not None
    text = shown(err)
    assert f"« {typed} »" in text and "ce jour n'existe pas" in text and "Usage : !" in text


@pytest.mark.parametrize(("typed", "days"), [("31 avril 2026", 30), ("29 février 2027", 28), ("30/02/2028", 29),
                                             ("32 mars 2026", 31)])
def test_the_error_says_how_many_days_the_month_has(typed: str, days: int) -> None:
    err = refused(f"!eval faite {typed}")
    assert f"le mois a {days} jours" in shown(err)
    assert f"that month has {days} days" in shown(err, "en")


def test_a_leap_day_that_exists_is_a_date() -> None:
    assert run("!eval faite 29 février 2028").args["date"] == date(2028, 2, 29)


@pytest.mark.parametrize("typed", ["12 mars", "31 avril", "1er mai", "12/03", "ven. 12 mars"])
def test_a_date_without_its_year_is_a_bad_date_that_says_so(typed: str) -> None:
    err = refused(f"!eval faite {typed}")
    assert err.key == "error.bad_date" and err.params["value"] == typed
    assert "l'année manque" in shown(err) and "the year is missing" in shown(err, "en")


@pytest.mark.parametrize("typed", ["0 avril 2026", "12 mars 0026"])
def test_other_wrong_dates_in_words_are_named_whole(typed: str) -> None:
    err = refused(f"!lieu domicile --date {typed}")
    assert (err.key, err.params["value"]) == ("error.bad_date", typed)
    assert "n'existe pas" not in shown(err) and f"« {typed} » n'est pas une date valide." in shown(err)


@pytest.mark.parametrize("typed", IMPOSSIBLE[:6])
def test_dates_read_by_their_handler_say_the_same(typed: str) -> None:
    """`!plan modifier --revision` (a text: `aucune` clears it) and `!orienter --naissance` read
    their date in the handler: the same error, with the command's usage."""
    with pytest.raises(UsageError) as err:
        _review(run(f"!plan modifier 2 --revision {typed}"), typed, TODAY)
    assert err.value.key == "error.bad_date" and err.value.spec is not None
    assert "ce jour n'existe pas" in shown(err.value)
    with pytest.raises(UsageError) as err:
        Arg("born", "date").convert(typed, TODAY)
    assert err.value.params["why"]["key"] == "error.date_no_such_day"


def test_a_plain_bad_date_reads_as_before() -> None:
    err = refused("!eval faite 27/11/26")
    assert "why" not in err.params
    assert shown(err).startswith("« 27/11/26 » n'est pas une date valide. Écrivez JJ/MM/AAAA")


# --- an emphatic mark opening chat is chat, whatever word follows ----------------------------------

EMPHATIC_CHAT = [
    "‼️ Plan B pour samedi",  # answered "argument en trop : « pour »" with the usage of !plan
    "‼ Plan B", "!! Plan B pour samedi", "!!Plan B pour samedi", "❗️Plan de soins revu", "❗ Equipe au complet",
    "‼️ Équipe au complet ce week-end", "❗️ Lieu de RDV changé", "‼️ Rapport demain", "!!! Plan B", "❕ Plan B",
    "❗️❗️ Plan B pour samedi", "‼️\u00a0Plan B", "❗️Attention", "!! on y va", "‼️ Eval à refaire",
]


@pytest.mark.parametrize("typed", EMPHATIC_CHAT)
def test_an_emphatic_mark_before_a_command_word_and_chat_is_never_answered(typed: str) -> None:
    assert not is_command(read_message({"msgtype": "m.text", "body": typed}).text, SPECS)
    html = {"msgtype": "m.text", "body": typed, "format": "org.matrix.custom.html", "formatted_body": f"<p>{typed}</p>"}
    assert not is_command(read_message(html).text, SPECS)


@pytest.mark.parametrize(("typed", "name"), [
    ("‼️equipe", "team"), ("‼️ equipe", "team"), ("!! plan clore 2", "plan close"), ("❗️ vu", "ack"),
    ("!!plan clore n°2", "plan close"), ('‼️ rupture "l\'aide ne passe plus"', "break"),
])
def test_an_emphatic_mark_before_a_whole_command_still_runs_it(typed: str, name: str) -> None:
    assert is_command(read_message({"msgtype": "m.text", "body": typed}).text, SPECS)
    assert run(typed).spec.name == name


@pytest.mark.parametrize("typed", ["! equipe ajoute @u:x medecin", "!plan B pour samedi"])
def test_the_plain_mark_before_a_command_word_and_a_mistake_is_still_answered(typed: str) -> None:
    """`! ` is a keyboard's space after the mark the person typed: they meant a command, and the
    usage line tells them what was wrong."""
    assert is_command(read_message({"msgtype": "m.text", "body": typed}).text, SPECS)
    assert refused(typed).spec is not None


@pytest.mark.parametrize("typed", ["‼️  equipe", "!!equipe", "! equipe", "!equipe", "!!!", "❗️❗️ plan"])
def test_the_mark_reads_the_same_when_read_again(typed: str) -> None:
    once = normalise(typed)
    assert normalise(once) == once


# --- a file's name is never a command; a caption is what the person typed -------------------------

@pytest.mark.parametrize("content", [
    {"msgtype": "m.image", "body": "!plan.jpg", "url": "mxc://x/y"},  # « commande inconnue plan.jpg »
    {"msgtype": "m.image", "body": "!plan.jpg", "filename": "!plan.jpg", "url": "mxc://x/y"},
    {"msgtype": "m.file", "body": "!equipe ajouter.pdf", "url": "mxc://x/y"},
    {"msgtype": "m.video", "body": "!vu.mp4", "url": "mxc://x/y"},
    {"msgtype": "m.audio", "body": "!vu.ogg", "url": "mxc://x/y"},
    {"msgtype": "m.location", "body": "!equipe", "geo_uri": "geo:48.85,2.35"},
])
def test_a_files_name_is_never_a_command(content: dict[str, Any]) -> None:
    assert not is_command(read_message(content).text, SPECS)


@pytest.mark.parametrize("msgtype", ["m.image", "m.file", "m.video", "m.audio"])
def test_a_caption_on_a_file_is_read_as_typed(msgtype: str) -> None:
    """Matrix spec v1.10, "Media captions": `filename` present and different, `body` is the caption."""
    content = {"msgtype": msgtype, "body": "!rupture l’aide ne passe plus", "filename": "IMG_2041.jpg",
               "url": "mxc://x/y"}
    assert run(content).args["text"] == "l'aide ne passe plus"
    pill = '<a href="https://matrix.to/#/@gp:example.org">Dr P</a>'
    html = content | {"body": "!equipe ajouter Dr P medecin", "format": "org.matrix.custom.html",
                      "formatted_body": f"!equipe ajouter {pill} medecin"}
    assert run(html).args == {"user": "@gp:example.org", "role": "gp"}


def test_an_edited_caption_is_read_from_its_new_content() -> None:
    edit = {"msgtype": "m.image", "body": "* !equipe", "filename": "IMG_2041.jpg",
            "m.new_content": {"msgtype": "m.image", "body": "!equipe", "filename": "IMG_2041.jpg"},
            "m.relates_to": {"rel_type": "m.replace", "event_id": "$o"}}
    assert read_message(edit).text == "!equipe"
    renamed = edit | {"m.new_content": {"msgtype": "m.image", "body": "!equipe.jpg"}}
    assert read_message(renamed).text == ""


# --- markdown backslash escapes the rich text editor put in `body` ----------------------------------

HTML = "org.matrix.custom.html"


@pytest.mark.parametrize(("body", "html", "name", "args"), [
    # element-x-ios#1629, matrix-rust-sdk#2506: "body": "Oh yeah\\?", "formatted_body": "Oh yeah?"
    ("\\!equipe", "!equipe", "team", {}),
    ("!aide\\?", "!aide?", "help", {}),
    ("\\!plan modifier 2 \\-\\-statut en\\_place", "!plan modifier 2 --statut en_place", "plan set", {"n": 2}),
    ("\\!equipe ajouter \\@gp\\:example\\.org medecin", "!equipe ajouter @gp:example.org medecin", "team add",
     {"user": "@gp:example.org", "role": "gp"}),
    ("\\!equipe ajouter [Dr\\. P](https://matrix.to/#/@gp:example.org) medecin",
     '!equipe ajouter <a href="https://matrix.to/#/@gp:example.org">Dr. P</a> medecin', "team add",
     {"user": "@gp:example.org", "role": "gp"}),
    ("\\!lieu hopital \\-\\-date 12/03/2026\\.", "!lieu hopital --date 12/03/2026.", "move", {"setting": "hospital"}),
])
def test_markdown_escapes_in_the_body_of_an_html_message_are_not_typed(
        body: str, html: str, name: str, args: dict[str, Any]) -> None:
    inv = run({"msgtype": "m.text", "body": body, "format": HTML, "formatted_body": html})
    assert inv.spec.name == name
    assert {k: v for k, v in inv.args.items() if k in args} == args


def test_an_escaped_mark_in_free_text_is_the_mark_and_a_backslash_before_a_letter_stays() -> None:
    content = {"msgtype": "m.text", "body": "!rupture l'aide \\*ne passe plus\\* voir C:\\dossier `a\\_b`",
               "format": HTML, "formatted_body": "!rupture l'aide *ne passe plus* voir C:\\dossier <code>a\\_b</code>"}
    assert run(content).args["text"] == "l'aide *ne passe plus* voir C:\\dossier `a\\_b`"


@pytest.mark.parametrize(("body", "text"), [
    ("!rupture `a \\* b", "`a * b"),  # a backtick never closed is text: the escape after it is one
    ("!rupture ``a\\*`b`` \\*", "``a\\*`b`` *"),  # a span closed by a run of its own length
    ("!rupture ``a\\*` \\*", "``a*` *"),  # two backticks closed by one: no span
    ("!rupture \\`a\\*` \\*", "`a*` *"),  # an escaped backtick opens nothing
])
def test_code_spans_are_told_from_escapes_as_commonmark_does(body: str, text: str) -> None:
    content = {"msgtype": "m.text", "body": body, "format": HTML, "formatted_body": "-"}
    assert run(content).args["text"] == text


@pytest.mark.parametrize("body", ["`" * 60000, "!rupture " + "`" * 60000, "``a" * 20000, "`" * 30000 + "\\!" * 15000,
                                  ("`" * 40 + "a") * 1400])
def test_a_60_kB_message_of_backticks_is_read_quickly(body: str) -> None:
    """Code spans were found by a regular expression that backtracked: 4 000 backticks in the
    body of an HTML message held the sync loop 0.7 s, 60 000 (one event) for half an hour."""
    started = time.monotonic()
    read_message({"msgtype": "m.text", "body": body, "format": HTML, "formatted_body": "-"})
    assert time.monotonic() - started < 2.0


def test_a_plain_body_keeps_its_backslashes() -> None:
    """Without HTML, the body is shown as typed: a backslash there is the person's."""
    assert not is_command(read_message({"msgtype": "m.text", "body": "\\!equipe"}).text, SPECS)


# --- an item number written as an ordinal ----------------------------------------------------------

@pytest.mark.parametrize("typed", ["3e", "3ème", "3eme", "3ᵉ", "3è", "3E", "3EME", "n°3e", "3e.", "3ème,"])
def test_an_item_number_written_as_an_ordinal(typed: str) -> None:
    """`!plan clore 3e` (« la 3e action ») answered « 3e n'est pas un nombre »."""
    assert run(f"!plan clore {typed}").args["n"] == 3
    assert run(f"!plan modifier {typed} --statut fait").args["n"] == 3
    assert run(f"!decision accord du médecin --action {typed}").opts["item"] == 3
    assert run(f"!droits fait {typed}").args["n"] == 3


@pytest.mark.parametrize("typed", ["1er", "1re", "1ère", "1ʳᵉ", "1st"])
def test_the_first_item_as_an_ordinal(typed: str) -> None:
    assert run(f"!plan {typed}").args["n"] == 1


@pytest.mark.parametrize("typed", ["e", "3x", "trois", "3ee", "ème"])
def test_a_word_that_is_no_ordinal_is_still_a_bad_number(typed: str) -> None:
    assert refused(f"!plan clore {typed}").key == "error.bad_int"


# --- a command addressed to the bot by its mention --------------------------------------------------

BOT = "@relais:example.org"


@pytest.mark.parametrize("content", [
    # Element Web: the bot picked in the mention list, then the command
    {"msgtype": "m.text", "body": "Relais !equipe", "format": HTML,
     "formatted_body": f'<a href="https://matrix.to/#/{BOT}">Relais</a> !equipe', "m.mentions": {"user_ids": [BOT]}},
    # older Element Web: "Name: " for a mention at the start
    {"msgtype": "m.text", "body": "Relais: !equipe", "format": HTML,
     "formatted_body": f'<a href="https://matrix.to/#/{BOT}">Relais</a>: !equipe'},
    # Element X: a markdown link in body
    {"msgtype": "m.text", "body": f"[Relais](https://matrix.to/#/{BOT}) !equipe"},
    {"msgtype": "m.text", "body": f"{BOT}, !equipe"}, {"msgtype": "m.text", "body": "@Relais:example.org\u00a0!équipe"},
    {"msgtype": "m.text", "body": f"[Relais](https://matrix.to/#/{BOT})\n!equipe"},
])
def test_a_command_after_a_mention_of_the_bot_is_the_command(content: dict[str, Any]) -> None:
    message = read_message(content, bot=BOT)
    assert message.text == "!equipe" or message.text == "!équipe"
    assert parse(message.text, SPECS).spec.name == "team"


@pytest.mark.parametrize("body", [
    f"[Relais](https://matrix.to/#/{BOT}) merci !",  # chat with the bot: not a command
    f"[Relais](https://matrix.to/#/{BOT}) ‼️ Plan B pour samedi",
    "[Dr P](https://matrix.to/#/@gp:example.org) !equipe",  # addressed to someone else
    "@relais:example.org.fr !equipe",  # another id that starts like the bot's
])
def test_a_mention_of_someone_else_or_of_the_bot_before_chat_is_not_a_command(body: str) -> None:
    assert not is_command(read_message({"msgtype": "m.text", "body": body}, bot=BOT).text, SPECS)
