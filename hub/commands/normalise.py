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
  marks) are never part of a word; a look-alike of `!` opening the message (`！`, `﹗`, `ǃ`, `❗`, `‼`,
  or doubled, `!!`) is the command's `!`;
- typographic quotes (“ ” „ ‟ « » ‹ › ‘ ’ ‚ ‛, with or without no-break spaces inside) are the
  ASCII quotes the person meant; an apostrophe inside a word is text (`l'aide`);
- a typographic dash (— – ― − …) in front of an option name is `--` (phones turn `--` into `—`);
- a pill is the n-th occurrence of its shown text, as in the HTML (a display name may also be a
  command word); a permalink pasted as a word (`https://matrix.to/#/@u:server`, `matrix:u/…`) is
  that user; a command wrapped as code (`` `!plan` ``, a fenced block) or pasted as a list item
  (`- !plan ajouter …`, `1. !equipe`) is the command;
- an option written with an equals sign (`--date=12/03/2026`, `--statut="en place"`) is the
  option followed by its value;
- `m.notice` (what bots send) and `m.emote` (`/me`) are never commands, nor a file's name (an
  image's caption is what the person typed); a command quoted in a reply fallback never runs.
Who may edit what is not read here: the dispatcher runs an edit only for its command's own
sender and room (Matrix lets anyone send an `m.replace`).
"""

from __future__ import annotations

import bisect
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
#: The end of a markdown link, `](target)`; its text, up to the `[` that opens it, is found by
#: walking back at most LINK_TEXT_MAX characters (Synapse keeps display names to 256): a regex
#: looking forward from every `[` costs a scan of the message each, a minute for 60 kB of `[\]`.
_LINK_TARGET = re.compile(r"\]\(\s*<?([^()\s<>]+)>?\s*\)")
LINK_TEXT_MAX = 512
#: A permalink pasted as a word (Element's "Share profile" / "Copy link"), maybe `<…>` and followed
#: by sentence punctuation.
_BARE_LINK = re.compile(r"(?<!\S)<?((?:https?://|matrix:)[^\s<>]+?)>?([.,;:!?…]*)(?!\S)")
_FALLBACK_LINE = re.compile(r"^>.*$")
#: What a keyboard or an emoji picker puts where the person meant the `!` of a command: full-width
#: `！` (Chinese/Japanese input), small `﹗`, the look-alike letter `ǃ` (U+01C3, offered by some
#: keyboards' long press), the emoji `❗`/`❕` (with or without their variation selector); a doubled
#: mark (`!!equipe`, `‼equipe`, the one-character `‼` some keyboards offer) is one.
_COMMAND_MARK = re.compile("^((?:[!\uff01\ufe57\u01c3\u2757\u2755\u203c][\ufe0e\ufe0f]?)+)( *)")
#: How an emphatic mark (`❗`, `‼️`, `!!`) opening a message is written once normalised: a command
#: word after it runs only when the whole command reads without a mistake (hub/commands/parser.py
#: `is_command`); `‼️ Plan B pour samedi` is chat, never answered.
EMPHATIC = "!! "
#: Past this many pills, they are read from the HTML alone (placing each in `body` costs a scan
#: of the message: a 60 kB message of pills must not hold the sync loop for seconds).
MAX_PILLS = 64


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


def read_message(content: Mapping[str, Any], *, bot: str | None = None) -> Message:
    """Event content (`m.room.message`) → Message. Never raises on odd content. A command addressed
    to `bot` (the bot's user id) by a mention before it is that command (see `addressed`)."""
    relation = content.get("m.relates_to")
    relation = relation if isinstance(relation, Mapping) else {}
    rel_type = relation.get("rel_type")
    target = relation.get("event_id") if isinstance(relation.get("event_id"), str) else None
    in_reply = relation.get("m.in_reply_to")
    reply_to = in_reply.get("event_id") if isinstance(in_reply, Mapping) else None
    reply_to = reply_to if isinstance(reply_to, str) else None
    if rel_type == "m.replace" and target:
        new = content.get("m.new_content")
        if not isinstance(new, Mapping) or _not_typed({"msgtype": content.get("msgtype")} | dict(new)):
            return Message("", replaces=target)
        return Message(addressed(command_text(new), bot), replaces=target)
    if _not_typed(content):
        return Message("", reply_to=reply_to)
    thread_root = target if rel_type == "m.thread" else None
    if thread_root and relation.get("is_falling_back") is True:
        reply_to = None  # the "reply" only helps clients without threads: not a real reply
    return Message(addressed(command_text(content), bot), thread_root=thread_root, reply_to=reply_to)


#: Message types whose `body` is a file's name unless a `filename` says otherwise.
MEDIA = frozenset({"m.image", "m.file", "m.audio", "m.video"})


def _not_typed(content: Mapping[str, Any]) -> bool:
    """`m.notice` is what bots send and must never be answered (Matrix spec, "m.notice": it
    prevents loops between bots); `m.emote` is `/me …`, an action, not a command. A file's `body`
    is its name (`!plan.jpg` answered « commande inconnue plan.jpg »), unless `filename` is given
    and differs: then `body` is the caption the person typed (Matrix spec v1.10, "Media captions");
    an `m.location`'s is what the client wrote of the place."""
    msgtype = content.get("msgtype")
    if msgtype in MEDIA:
        filename = content.get("filename")
        return not isinstance(filename, str) or filename == content.get("body")
    return msgtype in ("m.notice", "m.emote", "m.location")


def command_text(content: Mapping[str, Any]) -> str:
    """The text typed, fallback stripped, pills as user ids, normalised (see the module doc)."""
    body = content.get("body")
    body = strip_reply_fallback(body) if isinstance(body, str) else ""
    formatted = content.get("formatted_body")
    if content.get("format") == "org.matrix.custom.html" and isinstance(formatted, str):
        body = unescape_markdown(body)
        html_reader = _HtmlReader()
        try:
            html_reader.feed(formatted)
            html_reader.close()
        except Exception:  # malformed HTML: the body alone is read
            html_reader = _HtmlReader()
        if html_reader.pills:
            placed = _pills_in_body(body, html_reader.pills) if len(html_reader.pills) <= MAX_PILLS else None
            body = placed or html_reader.text()
    body = _BARE_LINK.sub(_bare_pill, _markdown_pills(body))
    return unwrap_list(unwrap_code(normalise(body)))


#: What may follow a mention that addresses someone: `Relais: !equipe`, `Relais, !equipe`, `Relais — !equipe`.
_ADDRESS_END = re.compile(f"^[:,{re.escape(DASHES)}]?\\s*")


def addressed(text: str, bot: str | None) -> str:
    """A command after a mention of the bot (`@relais:server !equipe`: Element's mention of the bot
    picked in the list, a pill, then the command, as one addresses a colleague) is the command.
    A mention of anyone else, or of the bot before chat, leaves the text as it is."""
    if not bot or text[:len(bot)].lower() != bot.lower():
        return text
    after = text[len(bot):]
    if after[:1] not in ("", " ", "\n", ":", ",", *DASHES):
        return text  # `@relais:server.org`: another id that starts like the bot's
    command = unwrap_list(unwrap_code(normalise(_ADDRESS_END.sub("", after, count=1))))
    return command if command.startswith("!") else text


#: A markdown list item's mark (`- `, `* `, `+ `, `• `, `1. `, `1) `; a phone's `– ` for `- `).
_LIST_MARK = re.compile(f"^(?:[{re.escape(DASHES)}*+•]|\\d{{1,2}}[.)])[ \t]+(?=\\S)")


#: ASCII punctuation, which a markdown backslash escapes (CommonMark 2.4).
_ESCAPABLE = frozenset("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
#: A run of backticks, which opens or closes a code span (CommonMark 6.1).
_TICKS = re.compile("`+")
_SPECIAL = re.compile(r"[\\`]")


def unescape_markdown(body: str) -> str:
    """The markdown `body` of an HTML message without its backslash escapes, as the person typed and
    sees it: the rich text editor of Element X and Element Web (matrix-rich-text-editor, 2023)
    escaped ASCII punctuation in `body` (`\\!equipe`, `\\-\\-statut en\\_place`, `!aide\\?`) while
    `formatted_body` kept `!equipe`; Element Web's markdown drops the escapes a person types. Inside a
    code span a backslash is text."""
    # One pass, with each run length's closing runs looked up (never a scan per opening run: a
    # regular expression backtracked, 60 000 backticks held the sync loop for half an hour).
    if "\\" not in body:
        return body
    closers: dict[int, list[int]] = {}
    for run in _TICKS.finditer(body):
        closers.setdefault(run.end() - run.start(), []).append(run.start())
    out: list[str] = []
    i, n = 0, len(body)
    while i < n:
        ch = body[i]
        if ch == "\\" and i + 1 < n and body[i + 1] in _ESCAPABLE:
            out.append(body[i + 1])
            i += 2
        elif ch == "`":
            ticks = _TICKS.match(body, i)
            length = ticks.end() - i if ticks is not None else 1
            starts = closers.get(length, [])
            found = bisect.bisect_left(starts, i + length)
            end = starts[found] + length if found < len(starts) else i + length  # unclosed: text
            out.append(body[i:end])
            i = end
        else:
            special = _SPECIAL.search(body, i + 1)
            j = special.start() if special is not None else n
            out.append(body[i:j])
            i = j
    return "".join(out)


def unwrap_list(text: str) -> str:
    """A command pasted as a list item (`- !plan ajouter …`, from notes or a help notice) is the
    command; a list of commands becomes one per line (refused by the parser: one per message).
    A list whose items are not all commands is text."""
    lines = [line for line in text.split("\n") if line.strip()]
    if not lines:
        return text
    unmarked = [_LIST_MARK.sub("", line.strip(), count=1) for line in lines]
    if all(a != b and b.startswith("!") for a, b in zip(lines, unmarked, strict=True)):
        return "\n".join(unmarked)
    return text


def unwrap_code(text: str) -> str:
    """A command sent as code (`` `!plan` ``, or a ``` fenced block: Element sends `<code>`) is the
    command: people paste what a help notice shows as code. Only a wrapped `!…` is unwrapped."""
    fenced = re.fullmatch(r"```[^\n`]*\n(.*?)\n?```", text, re.DOTALL)
    inner = fenced.group(1) if fenced else None
    if inner is None and len(text) > 2 and text[0] == text[-1] == "`" and "`" not in text[1:-1]:
        inner = text[1:-1]
    if inner is not None and inner.strip().startswith("!"):
        return inner.strip()
    return text


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
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n"))
    for index, char in enumerate(text):
        category = unicodedata.category(char)
        if category == "Cf" and not _in_emoji(text, index, out):
            continue
        if char in "\n\r\t" or category in ("Zs", "Zl", "Zp"):
            out.append("\n" if char in "\n\r" or category in ("Zl", "Zp") else " ")
        elif char == "！":
            out.append("!")
        else:
            out.append(char)
    return _COMMAND_MARK.sub(_command_mark, "".join(out).translate(_QUOTE_MAP).strip()).rstrip()


#: The marks one types for `!` itself (`!`, full-width `！`, small `﹗`, the letter `ǃ`); the others
#: (`❗`, `❕`, `‼`, a doubled mark) are also how people open an exclamation in chat.
_PLAIN_MARKS = frozenset("!\uff01\ufe57\u01c3")


def _command_mark(found: re.Match[str]) -> str:
    """`!` for one plain mark (`! ` when a space follows it); EMPHATIC for an emphatic one (`❗`,
    `‼️`, `!!`, with or without a space): `❗Vu le médecin ce matin` is chat, `❗vu` the command.
    Normalising twice gives the same text."""
    mark, space = found.group(1, 2)
    if len(mark) == 1 and mark in _PLAIN_MARKS:
        return "! " if space else "!"
    return EMPHATIC


def _in_emoji(text: str, index: int, out: list[str]) -> bool:
    """A zero-width joiner between two emoji (👩‍⚕️, 👨‍👩‍👧) or a tag character after one (🏴 flags of
    regions) is part of the emoji, not an invisible mark (Unicode TS #51)."""
    char = text[index]
    after_emoji = bool(out) and (_emoji_like(out[-1]) or 0xE0020 <= ord(out[-1]) <= 0xE007F)
    if char == "\u200d":
        return after_emoji and index + 1 < len(text) and _emoji_like(text[index + 1])
    return 0xE0020 <= ord(char) <= 0xE007F and after_emoji


def _emoji_like(char: str) -> bool:
    return unicodedata.category(char) in ("So", "Sk") or char in "\ufe0f\u2640\u2642\u2695" or (
        0x1F3FB <= ord(char) <= 0x1F3FF)


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
        word = text[start:i]
        equals = word.find("=")
        if equals > 0 and option_name(Token(word[:equals], False, start, start + equals)) is not None:
            # `--date=12/03/2026`, `--statut="en place"`: the option, then its value as a word of its own.
            tokens.append(Token(word[:equals], False, start, start + equals))
            i = start + equals + 1
            continue
        tokens.append(Token(word, False, start, i))
    return tokens


def _closing_single(text: str, i: int) -> int | None:
    while True:
        close = text.find("'", i)
        if close < 0:
            return None
        if close + 1 == len(text) or text[close + 1].isspace():
            return close
        i = close + 1


def _bare_pill(found: re.Match[str]) -> str:
    user = user_in_link(found.group(1))
    return user + found.group(2) if user is not None else found.group(0)


def _markdown_pills(body: str) -> str:
    """Each markdown link to a user (`[Name](https://matrix.to/#/@u:server)`, Element X) as the
    user id; other links stay text. At most MAX_PILLS links are read."""
    out: list[str] = []
    cursor = done = 0
    for found in _LINK_TARGET.finditer(body):
        if done >= MAX_PILLS:
            break
        user = user_in_link(found.group(1))
        floor = max(cursor, found.start() - LINK_TEXT_MAX)
        start = None if user is None else _link_text_start(body, found.start(), floor)
        if user is None or start is None:
            continue
        out += [body[cursor:start], user]
        cursor, done = found.end(), done + 1
    out.append(body[cursor:])
    return "".join(out)


def _link_text_start(body: str, close: int, floor: int) -> int | None:
    """Where the `[` opening the link text that `body[close]` (a `]`) ends is: nested brackets
    (`Dr [P]`) and escaped ones (`\\[`) are text. None before `floor` or across a new line."""
    depth, i = 0, close - 1
    while i >= floor:
        char = body[i]
        if char == "\n":
            return None
        if char in "[]" and i > floor and body[i - 1] == "\\":
            i -= 2
            continue
        if char == "]":
            depth += 1
        elif char == "[":
            if depth == 0:
                return i
            depth -= 1
        i -= 1
    return None


def _pills_in_body(body: str, pills: list[tuple[str, str, str]]) -> str | None:
    """Each pill's shown text replaced by its user id; None when one cannot be placed.

    A pill is the n-th occurrence of its shown text in the HTML (`prefix` is the HTML's text
    before it, earlier pills as their shown text), so it is the n-th occurrence in `body` too:
    a display name that is also a command word or a word of a free text (`equipe`, `Anne` in
    `"Soins Anne"`) is never taken for the pill."""
    out: list[str] = []
    cursor = 0
    for shown, user, prefix in pills:
        shown = shown.removeprefix("@") if not _USER_ID.match(shown) else shown
        if not shown:
            return None
        at, skip = -1, prefix.count(shown)
        for _ in range(skip + 1):
            at = body.find(shown, at + 1)
            if at < 0:
                return None
        if at < cursor:
            return None
        start, end = at, at + len(shown)
        link = re.compile(r"\[@?" + re.escape(shown) + r"\]\([^)\s]*\)")
        by_link = link.match(body, start - 2 if body[start - 2:start] == "[@" else start - 1)
        if start > cursor and by_link is not None and by_link.start() >= cursor:
            start, end = by_link.start(), by_link.end()
        elif start > cursor and body[start - 1] == "@" and not shown.startswith("@"):
            start -= 1
        out.append(body[cursor:start])
        cursor = end
        if body.startswith(": ", cursor):  # older Element Web: "Name: " for a mention
            cursor += 1
        out.append(user)
    out.append(body[cursor:])
    return "".join(out)


class _HtmlReader(HTMLParser):
    """formatted_body → its pills (shown text, user id) and its text with pills as user ids."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.pills: list[tuple[str, str, str]] = []  # (shown text, user id, text before it)
        self._parts: list[str] = []
        self._plain: list[str] = []  # the text with pills as their shown text
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
            self._plain.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "mx-reply":
            self._in_reply = max(0, self._in_reply - 1)
        elif self._in_reply:
            return
        elif tag == "a" and self._link is not None:
            shown = "".join(self._shown).strip()
            prefix = "".join(self._plain) if len(self.pills) < MAX_PILLS else ""
            self.pills.append((shown, self._link, prefix))
            self._parts.append(self._link)
            self._plain.append(shown)
            self._link = None

    def handle_data(self, data: str) -> None:
        if self._in_reply:
            return
        if self._link is not None:
            self._shown.append(data)
        else:
            self._parts.append(data)
            self._plain.append(data)

    def text(self) -> str:
        return "".join(self._parts)
