"""Commands as Element, Element X and phone keyboards send them (issue 16): pure reading and parsing."""

from __future__ import annotations

import re
from html import escape as html_escape
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.commands.normalise import Message, read_message, strip_reply_fallback, user_in_link
from hub.commands.parser import Invocation, UsageError, parse
from hub.commands.registry import build_registry
from hub.domain import limits

SPECS = build_registry().specs
HTML = "org.matrix.custom.html"


def run(content: dict[str, Any] | str) -> Invocation:
    message = read_message({"msgtype": "m.text", "body": content} if isinstance(content, str) else content)
    return parse(message.text, SPECS)


# --- 1. mentions ------------------------------------------------------------------------------

def test_element_web_pill_display_name_in_body_user_id_in_formatted_body() -> None:
    inv = run({"msgtype": "m.text", "body": "!equipe ajouter Dr Paul Martin medecin", "format": HTML,
               "formatted_body": '!equipe ajouter <a href="https://matrix.to/#/@gp:example.org">Dr Paul Martin</a> '
                                 "medecin",
               "m.mentions": {"user_ids": ["@gp:example.org"]}})
    assert inv.spec.name == "team add" and inv.args == {"user": "@gp:example.org", "role": "gp"}


def test_element_x_markdown_link_in_body() -> None:
    inv = run("!equipe ajouter [@kine:example.org](https://matrix.to/#/@kine:example.org) kine")
    assert inv.args == {"user": "@kine:example.org", "role": "physio"}


@pytest.mark.parametrize("href", [
    "https://matrix.to/#/@gp:example.org?via=example.org",
    "https://matrix.to/#/%40gp%3Aexample.org",
    "https://matrix.to/#/%40gp:example.org?via=example.org&via=other.org",
    "https://app.element.io/#/user/@gp:example.org",
    "matrix:u/gp:example.org",
    "matrix:u/gp:example.org?action=chat",
])
def test_other_permalink_forms(href: str) -> None:
    assert user_in_link(href) == "@gp:example.org"
    inv = run({"body": "!equipe ajouter Paul Martin medecin", "format": HTML,
               "formatted_body": f'!equipe ajouter <a href="{href}">Paul Martin</a> medecin'})
    assert inv.args["user"] == "@gp:example.org"
    assert run(f"!equipe ajouter [Paul Martin]({href}) medecin").args["user"] == "@gp:example.org"


@pytest.mark.parametrize(("body", "shown"), [
    ("!equipe ajouter @Paul Martin medecin", "Paul Martin"),  # body with the typed @
    ("!equipe ajouter Paul Martin medecin", "@Paul Martin"),  # pill text with an @
    ("!equipe ajouter Paul Martin: medecin", "Paul Martin"),  # older Element: "Name: "
])
def test_display_names_with_or_without_at(body: str, shown: str) -> None:
    inv = run({"body": body, "format": HTML,
               "formatted_body": f'!equipe ajouter <a href="https://matrix.to/#/@gp:example.org">{shown}</a> medecin'})
    assert inv.args["user"].startswith("@gp:example.org")


def test_a_pill_not_in_the_body_is_read_from_the_html() -> None:
    inv = run({"body": "!equipe ajouter Someone medecin", "format": HTML,
               "formatted_body": '<p>!equipe ajouter <a href="https://matrix.to/#/@gp:example.org">Dr P</a>'
                                 " medecin</p>"})
    assert inv.args["user"] == "@gp:example.org"


def test_pills_in_options_and_several_pills() -> None:
    inv = run({"body": "!equipe retirer Anne Infirmière --successeur Bob Kiné", "format": HTML,
               "formatted_body": '!equipe retirer <a href="https://matrix.to/#/@ide:example.org">Anne Infirmière</a>'
                                 ' --successeur <a href="https://matrix.to/#/@kine:example.org">Bob Kiné</a>'})
    assert inv.args["user"] == "@ide:example.org" and inv.opts["successor"] == "@kine:example.org"


def test_room_and_event_links_stay_text() -> None:
    text = read_message({"body": "!rupture voir [ce message](https://matrix.to/#/!room:x/$ev)"}).text
    assert text == "!rupture voir [ce message](https://matrix.to/#/!room:x/$ev)"


# --- 2. typographic quotes and dashes ---------------------------------------------------------

@pytest.mark.parametrize("quoted", [
    '"Paulette Exemple"', "“Paulette Exemple”", "« Paulette Exemple »", "«\u00a0Paulette Exemple\u00a0»",
    "«\u202fPaulette Exemple\u202f»", "„Paulette Exemple“", "„Paulette Exemple”", "‹Paulette Exemple›",
    "‘Paulette Exemple’", "‚Paulette Exemple‘", "'Paulette Exemple'", "»Paulette Exemple«", "”Paulette Exemple”",
    "Paulette Exemple",
])
@pytest.mark.parametrize("dashes", ["--", "—", "–", "―", "−", "-–", "‐‐"])
def test_new_person_whatever_the_quotes_and_dashes(quoted: str, dashes: str) -> None:
    inv = run(f"!nouveau {quoted} {dashes}naissance 1938-07-14")
    assert inv.spec.name == "new" and inv.args["name"] == "Paulette Exemple"
    assert inv.opts["born"].isoformat() == "1938-07-14"


@pytest.mark.parametrize("text", [
    "!rupture l'aide à domicile ne passe plus", "!rupture l’aide à domicile ne passe plus",
    "!rupture “l’aide à domicile ne passe plus”", "!rupture « l'aide à domicile ne passe plus »",
])
def test_an_apostrophe_inside_free_text_is_text(text: str) -> None:
    inv = run(text)
    assert inv.spec.name == "break" and inv.args["text"] == "l'aide à domicile ne passe plus"


def test_an_unclosed_double_quote_is_still_an_error() -> None:
    with pytest.raises(UsageError) as err:
        run('!nouveau "Paulette Exemple --naissance 1938-07-14')
    assert err.value.key == "error.quotes"


def test_a_typographic_dash_before_an_unknown_word_is_text_but_two_hyphens_are_an_option() -> None:
    assert run("!rupture aide —depuis lundi").args["text"] == "aide —depuis lundi"
    with pytest.raises(UsageError) as err:
        run("!rupture aide --depuis lundi")
    assert err.value.key == "error.unknown_option"


def test_free_text_option_takes_the_words_up_to_the_next_option() -> None:
    inv = run("!equipe retirer @ide:example.org —raison départ à la retraite —successeur @b:example.org")
    assert inv.opts["reason"] == "départ à la retraite" and inv.opts["successor"] == "@b:example.org"


def test_extra_words_after_a_choice_are_still_refused() -> None:
    with pytest.raises(UsageError) as err:
        run("!equipe ajouter @a:example.org medecin generaliste")
    assert err.value.key == "error.too_many_arguments"
    # "médecin traitant" is the role as the notices write it: one choice in two words (review r23)
    assert run("!equipe ajouter @a:example.org medecin traitant").args["role"] == "gp"


# --- 3. invisible characters ------------------------------------------------------------------

SPACES = ["\u00a0", "\u1680", "\u2000", "\u2001", "\u2002", "\u2003", "\u2004", "\u2005", "\u2006", "\u2007",
          "\u2008", "\u2009", "\u200a", "\u202f", "\u205f", "\u3000", "\t", "\n", "  "]
INVISIBLE = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u200e", "\u200f", "\u202a", "\u202c", "\u2066",
             "\u2069", "\u00ad", "\u061c"]


@pytest.mark.parametrize("space", SPACES)
def test_every_unicode_space_separates(space: str) -> None:
    inv = run(f"!equipe{space}ajouter{space}@pharma:example.org{space}pharmacien")
    assert inv.args == {"user": "@pharma:example.org", "role": "pharmacist"}


@pytest.mark.parametrize("mark", INVISIBLE)
def test_invisible_characters_are_never_part_of_an_argument(mark: str) -> None:
    inv = run(f"{mark}!equipe ajouter {mark}@pharma:example.org{mark} pharma{mark}cien{mark}")
    assert inv.args == {"user": "@pharma:example.org", "role": "pharmacist"}


# --- 4. replies and threads -------------------------------------------------------------------

REPLY_FALLBACK = {
    "msgtype": "m.text",
    "body": "> <@relais:example.org> Identifiants du dossier R-2026-0001 :\n\n!equipe",
    "format": HTML,
    "formatted_body": '<mx-reply><blockquote><a href="https://matrix.to/#/!r:example.org/$ev">In reply to</a> '
                      '<a href="https://matrix.to/#/@relais:example.org">@relais:example.org</a><br>Identifiants'
                      "</blockquote></mx-reply>!equipe",
    "m.relates_to": {"m.in_reply_to": {"event_id": "$ev"}},
}


def test_reply_with_fallback() -> None:
    message = read_message(REPLY_FALLBACK)
    assert message == Message("!equipe", reply_to="$ev")
    assert parse(message.text, SPECS).spec.name == "team"


def test_reply_without_fallback_and_multi_line_quote() -> None:
    assert read_message({"body": "!equipe", "m.relates_to": {"m.in_reply_to": {"event_id": "$e"}}}).text == "!equipe"
    assert strip_reply_fallback("> <@a:x> one\n> two\n\n!plan") == "!plan"


def test_thread_message_with_and_without_falling_back() -> None:
    relation = {"rel_type": "m.thread", "event_id": "$root", "is_falling_back": True,
                "m.in_reply_to": {"event_id": "$last"}}
    assert read_message({"body": "!plan", "m.relates_to": relation}) == Message("!plan", thread_root="$root")
    relation["is_falling_back"] = False
    assert read_message({"body": "!plan", "m.relates_to": relation}) == Message(
        "!plan", thread_root="$root", reply_to="$last")


# --- 5. edits ---------------------------------------------------------------------------------

def test_an_edit_is_read_from_its_new_content() -> None:
    message = read_message({
        "msgtype": "m.text", "body": "* !equipe ajouter @gp:example.org medecin",
        "m.new_content": {"msgtype": "m.text", "body": "!equipe ajouter @gp:example.org medecin"},
        "m.relates_to": {"rel_type": "m.replace", "event_id": "$orig"},
    })
    assert message == Message("!equipe ajouter @gp:example.org medecin", replaces="$orig")
    assert read_message({"body": "* x", "m.relates_to": {"rel_type": "m.replace", "event_id": "$o"}}).text == ""


def test_an_edit_with_a_pill_in_new_content() -> None:
    inv = run({"body": "* !equipe ajouter Dr Paul Martin medecin",
               "m.new_content": {"body": "!equipe ajouter Dr Paul Martin medecin", "format": HTML,
                                 "formatted_body": '!equipe ajouter <a href="https://matrix.to/#/@gp:example.org">'
                                                   "Dr Paul Martin</a> medecin"},
               "m.relates_to": {"rel_type": "m.replace", "event_id": "$orig"}})
    assert inv.args["user"] == "@gp:example.org"


@pytest.mark.parametrize("content", [{}, {"body": 3}, {"body": "!x", "m.relates_to": "bad"},
                                     {"body": "!x", "format": HTML, "formatted_body": "<a href='"},
                                     {"body": "!x", "m.relates_to": {"rel_type": "m.replace", "event_id": 4}}])
def test_odd_content_never_raises(content: dict[str, Any]) -> None:
    assert isinstance(read_message(content), Message)


# --- 6. limits --------------------------------------------------------------------------------

def test_every_free_text_argument_has_a_limit_checked_by_the_parser() -> None:
    long = "x" * (limits.limit("need") + 1)
    with pytest.raises(UsageError) as err:
        run(f'!plan ajouter "{long}" "Passage"')
    assert err.value.key == "error.too_long" and err.value.params["max"] == limits.limit("need")
    assert err.value.spec is not None and err.value.spec.name == "plan add"
    with pytest.raises(UsageError):
        run(f"!equipe ajouter @a:example.org medecin --organisation {'o' * 121}")


# --- properties -------------------------------------------------------------------------------

VALID = [
    '!nouveau "Paulette Exemple" --naissance 1938-07-14',
    '!plan ajouter "Toilette" "Aide à domicile" --intervenant "SAD Les Lilas" --frequence "2 fois par semaine"',
    '!equipe retirer @ide:example.org --successeur @b:example.org --raison "départ en retraite"',
    "!equipe ajouter @pharma:example.org pharmacien --organisation 'Pharmacie du Centre'",
    '!rupture "l\'aide à domicile ne passe plus"',
]
OPENING = {'"': ["“", "«", "„", "»", "”", '"'], "'": ["‘", "‚", "‹", "'"]}
CLOSING = {'"': ["”", "»", "“", "«", '"'], "'": ["’", "‘", "›", "'"]}


@st.composite
def typographic_variant(draw: st.DrawFn, text: str) -> str:
    """What a phone keyboard, a French layout and a copy-paste may make of `text`."""
    out: list[str] = []
    open_quote: str | None = None
    for index, char in enumerate(text):
        if char == " ":
            out.append(draw(st.sampled_from([*SPACES[:-3], " "])))
            if draw(st.booleans()):
                out.append(draw(st.sampled_from(INVISIBLE)))
        elif char in "\"'" and (open_quote in (None, char)) and (open_quote or index == 0 or text[index - 1] == " "):
            pool = CLOSING if open_quote else OPENING
            quote = draw(st.sampled_from(pool[char]))
            inner = draw(st.sampled_from(["", "\u00a0", "\u202f"])) if quote in "«»" else ""
            out.append(inner + quote if open_quote else quote + inner)
            open_quote = None if open_quote else char
        elif char == "-" and text[index:index + 2] == "--":
            out.append(draw(st.sampled_from(["—", "–", "-"])))  # the second hyphen is dropped below
        elif char == "-" and index and text[index - 1] == "-" and out[-1] != "-":
            continue
        elif char == "'":
            out.append(draw(st.sampled_from(["'", "’"])))
        else:
            out.append(char)
    return "".join(out)


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(st.sampled_from(VALID).flatmap(lambda text: st.tuples(st.just(text), typographic_variant(text))))
def test_any_typographic_variant_of_a_valid_command_gives_the_same_invocation(pair: tuple[str, str]) -> None:
    plain, variant = pair
    assert run(variant) == run(plain), variant


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                    max_leaves=10)
KEYS = st.sampled_from(["body", "format", "formatted_body", "m.relates_to", "m.new_content", "m.mentions",
                        "rel_type", "event_id", "m.in_reply_to", "is_falling_back"])


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(st.dictionaries(KEYS, JSON | st.just(HTML) | st.text(alphabet="<>/a=\"'!@:#[]()mx-reply ", max_size=60)),
       st.dictionaries(KEYS, JSON, max_size=4))
def test_any_content_is_read_without_raising_and_parsed_to_an_answer(content: dict[str, Any],
                                                                     nested: dict[str, Any]) -> None:
    content.setdefault("m.relates_to", nested)
    message = read_message(content)
    if message.text.startswith("!"):
        try:
            parse(message.text, SPECS)
        except UsageError as exc:
            assert exc.key.startswith("error.")


USER = re.compile(r"@[a-z0-9.]+:example\.org")


@st.composite
def client_content(draw: st.DrawFn, text: str) -> dict[str, Any]:
    """`text` as Element Web (pill), Element X (markdown link) or a plain client sends it; as a reply
    with its fallback, a thread message or an edit."""
    body, html, mentions = text, html_escape(text, quote=False), []
    for user in USER.findall(text):
        form = draw(st.sampled_from(["typed", "pill", "link"]))
        name = draw(st.sampled_from(["Dr Paul Martin", "Anne", user]))
        href = draw(st.sampled_from([f"https://matrix.to/#/{user}", f"https://matrix.to/#/{user}?via=example.org",
                                     "https://matrix.to/#/" + user.replace("@", "%40").replace(":", "%3A")]))
        if form == "pill":
            body = body.replace(user, name, 1)
            html = html.replace(user, f'<a href="{href}">{html_escape(name)}</a>', 1)
            mentions.append(user)
        elif form == "link":
            body = body.replace(user, f"[{name}]({href})", 1)
            html = html.replace(user, f'<a href="{href}">{html_escape(name)}</a>', 1)
    content: dict[str, Any] = {"msgtype": "m.text", "body": body}
    if mentions or draw(st.booleans()):
        content |= {"format": HTML, "formatted_body": html, "m.mentions": {"user_ids": mentions}}
    shape = draw(st.sampled_from(["plain", "reply", "thread", "edit"]))
    if shape == "reply":
        content["body"] = "> <@relais:example.org> Identifiants du dossier\n> R-2026-0001\n\n" + content["body"]
        if "formatted_body" in content:
            content["formatted_body"] = "<mx-reply><blockquote>Identifiants</blockquote></mx-reply>" + html
        content["m.relates_to"] = {"m.in_reply_to": {"event_id": "$q"}}
    elif shape == "thread":
        content["m.relates_to"] = {"rel_type": "m.thread", "event_id": "$root", "is_falling_back": True,
                                   "m.in_reply_to": {"event_id": "$root"}}
    elif shape == "edit":
        content = {"msgtype": "m.text", "body": "* " + body, "m.new_content": content,
                   "m.relates_to": {"rel_type": "m.replace", "event_id": "$orig"}}
    return content


PILL_COMMANDS = [
    "!equipe ajouter @gp:example.org medecin --organisation 'Cabinet du Parc'",
    '!equipe retirer @ide:example.org --successeur @kine:example.org --raison "départ en retraite"',
    '!plan ajouter "Soins" "Pansements" --intervenant @ide:example.org',
]


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(st.sampled_from(PILL_COMMANDS).flatmap(lambda text: st.tuples(st.just(text), client_content(text))))
def test_any_client_shape_of_a_valid_command_gives_the_same_invocation(pair: tuple[str, dict[str, Any]]) -> None:
    plain, content = pair
    assert run(content) == run(plain), content
