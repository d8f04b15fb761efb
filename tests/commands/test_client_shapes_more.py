"""Shapes real clients and keyboards send that issue 16's own examples did not cover (review r16):
display names that are also words of the command, ids as people type them, French dates, code
spans, notices and emotes, emoji sequences, trailing punctuation. Pure reading and parsing."""

from __future__ import annotations

import time
from datetime import date
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.commands.normalise import Message, read_message
from hub.commands.parser import Invocation, UsageError, parse
from hub.commands.registry import build_registry

SPECS = build_registry().specs
HTML = "org.matrix.custom.html"
GP = "@gp:example.org"


def run(content: dict[str, Any] | str) -> Invocation:
    message = read_message({"msgtype": "m.text", "body": content} if isinstance(content, str) else content)
    return parse(message.text, SPECS)


def pill(body: str, html: str, user: str = GP) -> dict[str, Any]:
    """Element Web: the display name in body, the pill in formatted_body, m.mentions."""
    return {"msgtype": "m.text", "body": body, "format": HTML, "formatted_body": html,
            "m.mentions": {"user_ids": [user]}}


def a(shown: str, user: str = GP) -> str:
    return f'<a href="https://matrix.to/#/{user}">{shown}</a>'


# --- display names: the pill is where the HTML puts it, not the first matching text ------------

@pytest.mark.parametrize(("body", "html", "expected"), [
    # a display name that is a command word
    ("!equipe ajouter equipe medecin", f"!equipe ajouter {a('equipe')} medecin", ("team add", {"user": GP})),
    ("!equipe ajouter ajouter medecin", f"!equipe ajouter {a('ajouter')} medecin", ("team add", {"user": GP})),
    # a display name that is also a word of a free text before it
    ('!plan ajouter "Soins Anne" "Passage" --intervenant Anne',
     f'!plan ajouter "Soins Anne" "Passage" --intervenant {a("Anne")}',
     ("plan add", {"need": "Soins Anne", "action": "Passage"})),
    ("!rupture Anne dit que Anne ne vient plus", f"!rupture Anne dit que {a('Anne')} ne vient plus",
     ("break", {"text": f"Anne dit que {GP} ne vient plus"})),
    # quotes, apostrophes and NFD accents in a display name
    ('!equipe ajouter Paul "Doc" M medecin', f'!equipe ajouter {a("Paul &quot;Doc&quot; M")} medecin',
     ("team add", {"user": GP})),
    ("!equipe ajouter Dr O’Neil medecin", f"!equipe ajouter {a('Dr O’Neil')} medecin", ("team add", {"user": GP})),
    ("!equipe ajouter He\u0301le\u0300ne medecin", f"!equipe ajouter {a('Hélène')} medecin",
     ("team add", {"user": GP})),
])
def test_a_display_name_that_is_also_another_word_of_the_command(
        body: str, html: str, expected: tuple[str, dict[str, Any]]) -> None:
    inv = run(pill(body, html))
    name, args = expected
    assert inv.spec.name == name
    assert {k: v for k, v in inv.args.items() if k in args} == args
    if name == "plan add":
        assert inv.opts["provider"] == GP


@pytest.mark.parametrize("content", [
    pill("!equipe ajouter @alice:example.org medecin",
         f"!equipe ajouter {a('@alice:example.org', '@mallory:x.org')} medecin", "@mallory:x.org"),
    {"msgtype": "m.text", "body": "!equipe ajouter [@alice:example.org](https://matrix.to/#/@mallory:x.org) medecin"},
    pill("!equipe ajouter Alice medecin", f"!equipe ajouter {a('Alice', '@mallory:x.org')} medecin", "@mallory:x.org"),
])
def test_the_link_not_the_text_shown_says_who(content: dict[str, Any]) -> None:
    assert run(content).args["user"] == "@mallory:x.org"


def test_thousands_of_pills_are_read_quickly() -> None:
    content = pill("!rupture " + "Anne " * 5000, "!rupture " + f"{a('Anne')} " * 5000)
    started = time.monotonic()
    with pytest.raises(UsageError):
        run(content)
    assert time.monotonic() - started < 2.0


# --- user ids as people type them --------------------------------------------------------------

@pytest.mark.parametrize("typed", ["@GP:example.org", "@Gp:Example.ORG", "<@gp:example.org>", "@gp:example.org,",
                                   "@gp:example.org:", "@gp:example.org;"])
def test_user_ids_as_typed_on_a_phone(typed: str) -> None:
    assert run(f"!equipe ajouter {typed} medecin").args == {"user": GP, "role": "gp"}


# --- trailing punctuation ----------------------------------------------------------------------

@pytest.mark.parametrize(("text", "name"), [
    ("!equipe.", "team"), ("!aide ?", "help"), ("!aide?", "help"), ("!equipe !", "team"), ("!plan…", "plan"),
    ("!equipe ajouter @gp:example.org medecin.", "team add"), ("!equipe ajouter @gp:example.org medecin !", "team add"),
])
def test_sentence_punctuation_after_a_command(text: str, name: str) -> None:
    assert run(text).spec.name == name


def test_punctuation_stays_in_free_text() -> None:
    assert run("!rupture l'aide ne passe plus.").args["text"] == "l'aide ne passe plus."
    assert run("!rupture l'aide ne passe plus ?").args["text"] == "l'aide ne passe plus ?"


# --- French dates (SPEC §6: French dates are accepted as input) --------------------------------

@pytest.mark.parametrize(("typed", "expected"), [
    ("27/11/2026", date(2026, 11, 27)), ("1/2/2026", date(2026, 2, 1)), ("01/02/2026", date(2026, 2, 1)),
    ("27.11.2026", date(2026, 11, 27)), ("27-11-2026", date(2026, 11, 27)), ("2026-11-27", date(2026, 11, 27)),
    ("2026‑11‑27", date(2026, 11, 27)), ("2026–11–27", date(2026, 11, 27)), ("２０２６-11-27", date(2026, 11, 27)),
    ("27/11/2026.", date(2026, 11, 27)),
])
def test_dates_as_french_people_type_them(typed: str, expected: date) -> None:
    assert run(f"!nouveau « Paulette Exemple » --naissance {typed}").opts["born"] == expected


@pytest.mark.parametrize("typed", ["31/02/2026", "27/11/26", "11/27/2026x", "2026/11/27", "27/11-2026", "0/1/2026",
                                   "12/03/0026", "0026-03-12", "12/03/1026"])
def test_impossible_or_ambiguous_dates_are_refused(typed: str) -> None:
    with pytest.raises(UsageError) as err:
        run(f"!nouveau « Paulette Exemple » --naissance {typed}")
    assert err.value.key == "error.bad_date"


@pytest.mark.parametrize(("typed", "expected"), [
    ("12 mars 2026", date(2026, 3, 12)), ("1er avril 2026", date(2026, 4, 1)), ("1ᵉʳ avril 2026", date(2026, 4, 1)),
    ("3 août 2026", date(2026, 8, 3)), ("3 aout 2026", date(2026, 8, 3)), ("3 févr. 2026", date(2026, 2, 3)),
    ("27 Novembre 2026", date(2026, 11, 27)), ("ven. 27/11/2026", date(2026, 11, 27)),
    ("vendredi 27 novembre 2026", date(2026, 11, 27)), ("Vendredi, 27/11/2026", date(2026, 11, 27)),
    ("12 mars 2026.", date(2026, 3, 12)), ("aujourd’hui", date(2026, 3, 18)), ("hier", date(2026, 3, 17)),
    ("demain", date(2026, 3, 19)), ("après-demain", date(2026, 3, 20)), ("avant‑hier", date(2026, 3, 16)),
])
def test_dates_in_words_as_relais_writes_them_and_relative_to_today(typed: str, expected: date) -> None:
    """`ven. 27/11/2026` is how Relais writes a date: copied back, it is that date; the month in
    words; `hier`/`demain` against the territory's date the dispatcher passes (review r23)."""
    today = date(2026, 3, 18)
    assert parse(f"!eval faite {typed} --outil AGGIR", SPECS, today=today).args["date"] == expected
    assert parse(f"!lieu domicile --date {typed}", SPECS, today=today).opts["date"] == expected
    inv = parse(f"!concertation {typed} 14 h 30 --lieu « Salle 2 »", SPECS, today=today)
    assert (inv.args["date"], inv.args["time"], inv.opts["place"]) == (expected, "14:30", "Salle 2")
    assert parse(f"!plan modifier 1 --revision {typed}", SPECS, today=today).opts["review"] is not None


@pytest.mark.parametrize("typed", ["lun. 27/11/2026", "12 mars", "12/03", "lundi", "32 mars 2026", "12 marsh 2026"])
def test_a_date_in_words_that_is_wrong_or_has_no_year_is_refused(typed: str) -> None:
    with pytest.raises(UsageError) as err:
        parse(f"!lieu domicile --date {typed}", SPECS, today=date(2026, 3, 18))
    assert err.value.key in ("error.bad_date", "error.date_weekday")


def test_relative_dates_need_the_territory_s_today() -> None:
    with pytest.raises(UsageError) as err:
        run("!lieu domicile --date demain")
    assert err.value.key == "error.bad_date"


# --- code, Windows newlines, emoji, notices and emotes ----------------------------------------

@pytest.mark.parametrize("content", [
    {"msgtype": "m.text", "body": "`!equipe ajouter @gp:example.org medecin`", "format": HTML,
     "formatted_body": "<code>!equipe ajouter @gp:example.org medecin</code>"},
    {"msgtype": "m.text", "body": "```\n!equipe ajouter @gp:example.org medecin\n```", "format": HTML,
     "formatted_body": "<pre><code>!equipe ajouter @gp:example.org medecin\n</code></pre>"},
    {"msgtype": "m.text", "body": "```text\n!equipe ajouter @gp:example.org medecin\n```"},
    {"msgtype": "m.text", "body": "!equipe ajouter Dr P medecin", "format": HTML,
     "formatted_body": f"<p><strong>!equipe ajouter {a('Dr P')} medecin</strong></p>"},
])
def test_a_command_sent_as_code_or_in_html_formatting(content: dict[str, Any]) -> None:
    assert run(content).args == {"user": GP, "role": "gp"}


def test_code_that_is_not_a_command_is_left_alone() -> None:
    assert read_message({"msgtype": "m.text", "body": "`x`"}).text == "`x`"


def test_windows_new_lines_are_one_new_line() -> None:
    assert run("!rupture l'aide\r\nne passe plus\r\n").args["text"] == "l'aide\nne passe plus"


SCOTLAND = "🏴\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f"


@pytest.mark.parametrize("emoji", ["👩\u200d⚕️", "👨\u200d👩\u200d👧", SCOTLAND, "👍🏽", "🧑🏿\u200d🦯"])
def test_an_emoji_sequence_in_free_text_is_kept_whole(emoji: str) -> None:
    assert run(f"!rupture {emoji} absente\u200b").args["text"] == f"{emoji} absente"


@pytest.mark.parametrize("msgtype", ["m.notice", "m.emote"])
def test_notices_and_emotes_are_never_commands(msgtype: str) -> None:
    assert read_message({"msgtype": msgtype, "body": "!equipe"}).text == ""
    edit = {"msgtype": "m.text", "body": "* !equipe", "m.new_content": {"msgtype": msgtype, "body": "!equipe"},
            "m.relates_to": {"rel_type": "m.replace", "event_id": "$o"}}
    assert read_message(edit) == Message("", replaces="$o")


# --- replies quoting someone else's command never run it --------------------------------------

@pytest.mark.parametrize("content", [
    {"msgtype": "m.text", "body": "> <@cm:x> !cloturer deces\n\nok merci", "format": HTML,
     "formatted_body": "<mx-reply><blockquote>!cloturer deces</blockquote></mx-reply>ok merci",
     "m.relates_to": {"m.in_reply_to": {"event_id": "$e"}}},
    {"msgtype": "m.text", "body": "> <@cm:x> !cloturer deces\nok",
     "m.relates_to": {"m.in_reply_to": {"event_id": "$e"}}},
    {"msgtype": "m.text", "body": "> <@cm:x> !cloturer deces\n> suite\n\nd'accord"},
])
def test_a_quoted_command_is_not_run(content: dict[str, Any]) -> None:
    assert not read_message(content).text.startswith("!")


# --- permalinks as people paste them ----------------------------------------------------------

LINK = "https://matrix.to/#/@gp:example.org"


@pytest.mark.parametrize("typed", [
    f"[Dr [P] M]({LINK})", f"[Dr \\[P\\] M]({LINK})", f"[Dr (P) M]({LINK})",  # brackets in a display name
    LINK, f"<{LINK}>", f"{LINK},", f"{LINK}?via=example.org", "matrix:u/gp:example.org?action=chat",
    "https://matrix.to/#/%40gp%3Aexample.org",
])
def test_a_user_given_as_a_link_or_a_pasted_permalink(typed: str) -> None:
    assert run(f"!equipe ajouter {typed} medecin").args == {"user": GP, "role": "gp"}


@pytest.mark.parametrize("text", ["!rupture voir https://matrix.to/#/!r:x/$e?via=x ok",
                                  "!rupture voir [ce message](https://matrix.to/#/!r:x/$e)",
                                  "!rupture voir https://example.org/page."])
def test_other_links_stay_text(text: str) -> None:
    assert read_message({"msgtype": "m.text", "body": text}).text == text


@pytest.mark.parametrize("body", ["!rupture " + "[\\]" * 20000 + f"]({LINK})", "!rupture [" + "[a]" * 20000,
                                  "!rupture " + "[a](" * 15000, "!rupture " + f"{LINK} " * 2000,
                                  "!rupture " + f"[a]({LINK}) " * 1800])
def test_a_60_kB_message_of_brackets_or_links_is_read_quickly(body: str) -> None:
    started = time.monotonic()
    read_message({"msgtype": "m.text", "body": body})
    assert time.monotonic() - started < 2.0


@pytest.mark.parametrize(("text", "key"), [
    ("!rupture ?", "error.missing_argument"), ("!rupture …", "error.missing_argument"),  # a final mark is dropped
    ("!plan ajouter ? ?", "error.missing_argument"), ("!nouveau « ? »", "error.bad_text"),  # marks dropped
    ("!rupture ?!", "error.missing_argument"), ('!plan ajouter "?" "Passage"', "error.bad_text"),
])
def test_punctuation_alone_is_no_free_text(text: str, key: str) -> None:
    with pytest.raises(UsageError) as err:
        run(text)
    assert err.value.key == key and err.value.spec is not None  # the usage line answers


def test_an_emoji_alone_is_free_text() -> None:
    assert run("!rupture 😡").args["text"] == "😡"


# --- properties -------------------------------------------------------------------------------

DASH = st.sampled_from(["-", "\u2010", "\u2011", "\u2013", "\u2014", "\u2212"])


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(st.dates(min_value=date(1900, 1, 1), max_value=date(2099, 12, 31)), DASH,
       st.sampled_from(["iso", "fr/", "fr.", "fr-"]), st.booleans(), st.sampled_from(["", ".", ","]))
def test_any_way_of_writing_a_date_gives_that_date(day: date, dash: str, form: str, padded: bool, mark: str) -> None:
    d, m = (f"{day.day:02d}", f"{day.month:02d}") if padded else (str(day.day), str(day.month))
    if form == "iso":
        typed = f"{day.year}{dash}{m}{dash}{d}"
    else:
        sep = dash if form == "fr-" else form[-1]
        typed = f"{d}{sep}{m}{sep}{day.year}"
    assert run(f"!nouveau « Paulette Exemple » —naissance {typed}{mark}").opts["born"] == day


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(st.sampled_from([GP, "@GP:example.org", f"<{GP}>", f"{GP},", LINK, f"<{LINK}>", f"[Dr [P]]({LINK})",
                        f"[{GP}]({LINK}?via=example.org)", "matrix:u/gp:example.org", "https://matrix.to/#/%40gp%3Aexample.org"]),
       st.sampled_from(["medecin", "médecin", "MEDECIN", "Médecin.", "medecin !"]))
def test_any_way_of_naming_a_user_gives_that_user(user: str, role: str) -> None:
    assert run(f"!équipe ajouter {user} {role}").args == {"user": GP, "role": "gp"}


# --- the command's `!` as keyboards and emoji pickers make it (review r23) ----------------------

@pytest.mark.parametrize("mark", ["！", "﹗", "ǃ", "❗", "❗\ufe0f", "❕", "❕\ufe0f", "\u200b！"])
def test_a_look_alike_exclamation_mark_opens_a_command(mark: str) -> None:
    assert run(f"{mark}equipe ajouter @gp:example.org medecin").args == {"user": GP, "role": "gp"}
    assert run({"msgtype": "m.text", "body": f"{mark}equipe", "format": HTML,
                "formatted_body": f"<p>{mark}equipe</p>"}).spec.name == "team"


def test_a_look_alike_exclamation_mark_inside_free_text_is_text() -> None:
    assert run("!rupture plus de passage ❗").args["text"] == "plus de passage ❗"


@pytest.mark.parametrize("typed", ["2", "n°2", "N°2", "nº2", "#2", "n°2."])
def test_an_item_number_as_french_people_write_it(typed: str) -> None:
    assert run(f"!plan clore {typed}").args["n"] == 2
    assert run(f"!plan modifier {typed} --statut réalisée").opts["status"] == "done"


@pytest.mark.parametrize("typed", ["99999999999999999999999", "2147483648", "00000000000000000001"])
def test_a_number_past_what_can_be_stored_is_a_bad_number(typed: str) -> None:
    """`!plan 99999999999999999999999` was accepted, to fail in storage: a bad number at once."""
    with pytest.raises(UsageError) as err:
        run(f"!plan clore {typed}")
    assert err.value.key == "error.bad_int"
    assert list(run("!plan clore 2147483647").args.values()) == [2147483647]
