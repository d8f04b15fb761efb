"""What a person meant to type, read from the event content a Matrix client really sent. Pure.

The one place where client and keyboard habits are undone before a command is parsed
(SPEC §4; STYLE 18):

- reply fallbacks are dropped: leading `> ` lines of `body`, `<mx-reply>` in `formatted_body`
  (Matrix spec, "Rich replies"; clients stopped sending them in v1.13, older ones still do);
- an edit (`m.replace`) is read from its `m.new_content`, never from the `* …` body;
- a user picked with the client's mention counts as that user: Element Web puts the display
  name in `body` and the pill `<a href="https://matrix.to/#/@u:server">Name</a>` in
  `formatted_body`; Element X puts a markdown link `[Name](https://matrix.to/#/@u:server)` in
  `body`. Permalinks may be URL-encoded (`%40`), carry `?via=`, use another permalink host
  (`…/#/user/@u:server`) or the `matrix:u/` URI scheme (MSC2312);
- every Unicode space (category Zs, tabs, new lines) separates words; invisible format
  characters (category Cf: zero-width spaces and joiners, U+2060, U+FEFF, soft hyphen, bidi
  marks) are never part of a word;
- typographic quotes (“ ” „ ‟ « » ‹ › ‘ ’ ‚ ‛, with or without no-break spaces inside) are the
  ASCII quotes the person meant; an apostrophe inside a word is text (`l'aide`);
- a typographic dash (— – ― − …) in front of an option name is `--` (phones turn `--` into `—`).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any
from urllib.parse import unquote

DOUBLE_QUOTES = "\"“”„‟«»〝〞＂″"
SINGLE_QUOTES = "'‘’‚‛‹›′＇"
DASHES = "-\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d"
_OPTION = re.compile(f"^([{re.escape(DASHES)}]{{1,2}})(\\w.*)$", re.DOTALL)
_QUOTE_MAP = {ord(c): '"' for c in DOUBLE_QUOTES} | {ord(c): "'" for c in SINGLE_QUOTES}
_USER_IN_LINK = re.compile(r"#/(?:user/)?(@[^/?#\s]+:[^/?#\s]+)|^matrix:u/([^@!#$/?\s][^/?#\s]*:[^/?#\s]+)")
_USER_ID = re.compile(r"^@[^:\s]+:[A-Za-z0-9.\-\[\]]+(:\d+)?$")
_MD_LINK = re.compile(r"\[([^\[\]\n]*)\]\(\s*<?([^()\s<>]+)>?\s*\)")
_FALLBACK_LINE = re.compile(r"^>.*$")


@dataclass(frozen=True)
class Message:
    """A message as its sender meant it.

    text: the command text, normalised, with mentioned users as their ids ("" for no text);
    thread_root: the thread it was typed in (`m.thread`), to answer there;
    reply_to: the event it answers (`m.in_reply_to`), None for a thread's fallback reply;
    replaces: the event id an edit (`m.replace`) corrects.
    """

    text: str
    thread_root: str | None = None
    reply_to: str | None = None
    replaces: str | None = None


@dataclass(frozen=True)
class Token:
    """One word of a command: its value, whether it was quoted, its span in the normalised text."""

    value: str
    quoted: bool
    start: int
    end: int


class QuoteError(ValueError):
    """An opening double quote without its closing one."""


def read_message(content: Mapping[str, Any]) -> Message:
    """Event content (`m.room.message`) → Message. Never raises on odd content."""
    relation = content.get("m.relates_to")
    relation = relation if isinstance(relation, Mapping) else {}
    rel_type = relation.get("rel_type")
    target = relation.get("event_id") if isinstance(relation.get("event_id"), str) else None
    in_reply = relation.get("m.in_reply_to")
    reply_to = in_reply.get("event_id") if isinstance(in_reply, Mapping) else None
    reply_to = reply_to if isinstance(reply_to, str) else None
    if rel_type == "m.replace" and target:
        new = content.get("m.new_content")
        if not isinstance(new, Mapping):
            return Message("", replaces=target)
        return Message(command_text(new), replaces=target)
    thread_root = target if rel_type == "m.thread" else None
    if thread_root and relation.get("is_falling_back") is True:
        reply_to = None  # the "reply" only helps clients without threads: not a real reply
    return Message(command_text(content), thread_root=thread_root, reply_to=reply_to)


def command_text(content: Mapping[str, Any]) -> str:
    """The text typed, fallback stripped, pills as user ids, normalised (see the module doc)."""
    body = content.get("body")
    body = strip_reply_fallback(body) if isinstance(body, str) else ""
    formatted = content.get("formatted_body")
    if content.get("format") == "org.matrix.custom.html" and isinstance(formatted, str):
        html_reader = _HtmlReader()
        try:
            html_reader.feed(formatted)
            html_reader.close()
        except Exception:  # malformed HTML: the body alone is read
            html_reader = _HtmlReader()
        if html_reader.pills:
            body = _pills_in_body(body, html_reader.pills) or html_reader.text()
    body = _MD_LINK.sub(_markdown_pill, body)
    return normalise(body)


def strip_reply_fallback(body: str) -> str:
    """Leading `> ` quote lines and the blank line after them (the legacy reply fallback)."""
    lines = body.split("\n")
    i = 0
    while i < len(lines) and _FALLBACK_LINE.match(lines[i]):
        i += 1
    if i == 0:
        return body
    while i < len(lines) and not lines[i].strip():
        i += 1
    return "\n".join(lines[i:])


def normalise(text: str) -> str:
    """Spaces, invisible characters and quotes as the person meant them (NFC, trimmed)."""
    out: list[str] = []
    for char in unicodedata.normalize("NFC", text):
        category = unicodedata.category(char)
        if category == "Cf":
            continue
        if char in "\n\r\t" or category in ("Zs", "Zl", "Zp"):
            out.append("\n" if char in "\n\r" or category in ("Zl", "Zp") else " ")
        elif char == "！":
            out.append("!")
        else:
            out.append(char)
    return "".join(out).translate(_QUOTE_MAP).strip()


def user_in_link(href: str) -> str | None:
    """The user id a permalink points to (matrix.to, another permalink host, matrix:u/), or None."""
    found = _USER_IN_LINK.search(unquote(href.strip()))
    if found is None:
        return None
    user = found.group(1) or "@" + found.group(2)
    return user if _USER_ID.match(user) else None


def option_name(token: Token) -> str | None:
    """`--born`, `—born`, `–born` → "born"; None for anything else (a quoted word, `-`, text)."""
    if token.quoted:
        return None
    found = _OPTION.match(token.value)
    if found is None:
        return None
    dashes = found.group(1)
    if dashes == "-":
        return None  # one ASCII hyphen: a word ("-", "-x"), not an option
    return found.group(2)


def typed_option(token: Token) -> bool:
    """True when the person typed the two ASCII hyphens themselves (an unknown one is an error)."""
    return not token.quoted and token.value.startswith("--")


def tokenise(text: str) -> list[Token]:
    """Normalised text → words. A double quote at the start of a word opens a quoted word that
    runs to the next double quote (QuoteError when there is none); a single quote does so only
    when a closing one ends a word, else it is an apostrophe. Spaces just inside quotes (French
    « guillemets ») are not part of the word."""
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        start = i
        if text[i] == '"':
            close = text.find('"', i + 1)
            if close < 0:
                raise QuoteError(text[i:])
            tokens.append(Token(text[i + 1:close].strip(), True, start, close + 1))
            i = close + 1
            continue
        if text[i] == "'":
            single = _closing_single(text, i + 1)
            if single is not None:
                tokens.append(Token(text[i + 1:single].strip(), True, start, single + 1))
                i = single + 1
                continue
        while i < n and not text[i].isspace():
            i += 1
        tokens.append(Token(text[start:i], False, start, i))
    return tokens


def _closing_single(text: str, i: int) -> int | None:
    while True:
        close = text.find("'", i)
        if close < 0:
            return None
        if close + 1 == len(text) or text[close + 1].isspace():
            return close
        i = close + 1


def _markdown_pill(found: re.Match[str]) -> str:
    user = user_in_link(found.group(2))
    return user if user is not None else found.group(0)


def _pills_in_body(body: str, pills: list[tuple[str, str]]) -> str | None:
    """Each pill's shown text replaced, in order, by its user id; None when one is missing."""
    out: list[str] = []
    cursor = 0
    for shown, user in pills:
        shown = shown.removeprefix("@") if not _USER_ID.match(shown) else shown
        link = re.compile(r"\[@?" + re.escape(shown) + r"\]\([^)\s]*\)")
        by_link = link.search(body, cursor)
        at = body.find(shown, cursor) if shown else -1
        if by_link is not None and (at < 0 or by_link.start() <= at):
            out.append(body[cursor:by_link.start()])
            cursor = by_link.end()
        elif at >= 0:
            before = at - 1 if at > cursor and body[at - 1] == "@" and not shown.startswith("@") else at
            out.append(body[cursor:before])
            cursor = at + len(shown)
        else:
            return None
        if body.startswith(": ", cursor):  # older Element Web: "Name: " for a mention
            cursor += 1
        out.append(user)
    out.append(body[cursor:])
    return "".join(out)


class _HtmlReader(HTMLParser):
    """formatted_body → its pills (shown text, user id) and its text with pills as user ids."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.pills: list[tuple[str, str]] = []
        self._parts: list[str] = []
        self._in_reply = 0
        self._link: str | None = None
        self._shown: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "mx-reply":
            self._in_reply += 1
        elif self._in_reply:
            return
        elif tag == "a":
            self._link = user_in_link(dict(attrs).get("href") or "")
            self._shown = []
        elif tag in ("br", "p", "div", "li"):
            self._parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "mx-reply":
            self._in_reply = max(0, self._in_reply - 1)
        elif self._in_reply:
            return
        elif tag == "a" and self._link is not None:
            self.pills.append(("".join(self._shown).strip(), self._link))
            self._parts.append(self._link)
            self._link = None

    def handle_data(self, data: str) -> None:
        if self._in_reply:
            return
        if self._link is not None:
            self._shown.append(data)
        else:
            self._parts.append(data)

    def text(self) -> str:
        return "".join(self._parts)
