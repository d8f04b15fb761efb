"""Command parsing: text → Invocation, or a UsageError saying what was wrong. Pure."""

from __future__ import annotations

import calendar
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from enum import StrEnum
from typing import Any

from hub.commands.normalise import DASHES, EMPHATIC, QuoteError, Token, normalise, option_name, tokenise, typed_option
from hub.domain import concertation, limits
from hub.domain.errors import DomainError

USER_ID = re.compile(r"^@[a-z0-9._=\-/+]+:[A-Za-z0-9.\-]+(:\d+)?$")
CASE_REF = re.compile(r"^R-\d{4}-\d{4,}$")


class Scope(StrEnum):
    DESK = "desk"
    ROOM = "room"
    TRIAGE = "triage"  # the integrated access point's triage room (SPEC §9)


class Who(StrEnum):
    CASE_MANAGER = "case_manager"  # the person's case managers (and, in a desk, its owner)
    MEMBER = "member"  # anyone in the room
    PILOT = "pilot"
    ANYONE = "anyone"  # whoever may talk in the scope, configured or not (a referrer: SPEC §9)
    TRIAGE = "triage"  # the coordinators and case managers, in the triage room


#: Sentence punctuation a person may put after a word (`!aide ?`, `@gp:example.org,`, `medecin.`):
#: never part of a command word, a user id, a choice, a number, a date or a case reference.
TRAILING = ".,;:!?…"
_ISO_DATE = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})")
_FRENCH_DATE = re.compile(r"(\d{1,2})([/.-])(\d{1,2})\2(\d{4})")
_DASH_MAP = {ord(c): "-" for c in DASHES}


_MONTHS = {word: number for number, words in enumerate((
    ("janvier", "janv", "jan", "january"), ("fevrier", "fevr", "fev", "february", "feb"), ("mars", "march", "mar"),
    ("avril", "avr", "april", "apr"), ("mai", "may"), ("juin", "june", "jun"), ("juillet", "juil", "july", "jul"),
    ("aout", "august", "aug"), ("septembre", "sept", "sep", "september"), ("octobre", "oct", "october"),
    ("novembre", "nov", "november"), ("decembre", "dec", "december"),
), start=1) for word in words}
_WEEKDAYS = {word: number for number, words in enumerate((
    # `mar.` is how Relais writes every Tuesday (Babel, CLDR `EEE`); before a date, never March.
    ("lundi", "lun", "monday", "mon"), ("mardi", "mar", "tuesday", "tue", "tues"),
    ("mercredi", "mer", "wednesday", "wed"), ("jeudi", "jeu", "thursday", "thu", "thur", "thurs"),
    ("vendredi", "ven", "friday", "fri"), ("samedi", "sam", "saturday", "sat"), ("dimanche", "dim", "sunday", "sun"),
)) for word in words}
#: Days named relative to today (the territory's date: SPEC §5).
_RELATIVE = {"aujourd'hui": 0, "aujourdhui": 0, "today": 0, "hier": -1, "yesterday": -1, "demain": 1,
             "tomorrow": 1, "avant-hier": -2, "apres-demain": 2}
#: `ven. 27/11/2026` (how Relais writes dates), `vendredi 27 novembre 2026`, `1er avril 2026`.
_WEEKDAY = re.compile(r"^([a-z]+)\.?,?\s+(?=\d)")
_WORDS_DATE = re.compile(r"(\d{1,2})(?:er|re)?\s+([a-z]+)\.?\s+(\d{4})")
_WORDS_NO_YEAR = re.compile(r"(\d{1,2})(?:er|re)?\s+([a-z]+)\.?")
_NUMBERS_NO_YEAR = re.compile(r"\d{1,2}([/.])\d{1,2}")
#: `le 12/03/2026`, `le vendredi 27 novembre 2026`, `on 12/03/2026`: the article is not the date.
_DATE_ARTICLE = re.compile(r"^(?:le|on)\s+(?=\S)")
#: The most words a date is written with (`le vendredi 27 novembre 2026`).
DATE_WORDS_MAX = 5
#: No date of this field falls before (a birth date included): `0026` is a year typed short. A
#: date too far ahead is the rule's to refuse ("in the future"), with its own message.
FIRST_YEAR = 1900


def _date(text: str, today: date | None = None) -> date:
    """ISO `2026-11-27` or French `27/11/2026`, `1/2/2026`, `27.11.2026`, `27-11-2026` (SPEC §6:
    French dates are accepted as input); any dash a keyboard makes, full-width digits; the month
    in words (`27 novembre 2026`, `1er avril 2026`, `27 nov. 2026`), after a weekday that must
    match (`ven. 27/11/2026`, as Relais writes dates); `aujourd'hui`, `hier`, `demain` when
    `today` is known. A two-digit year is refused: a birth date in 26 is 1926 or 2026; so is a
    date without its year (next March, or last?)."""
    text = fold(unicodedata.normalize("NFKC", text)).translate(_DASH_MAP).strip().rstrip(TRAILING)
    text = _DATE_ARTICLE.sub("", text)
    if text in _RELATIVE:
        if today is None:
            raise ValueError(text)
        return today + timedelta(days=_RELATIVE[text])
    weekday = None
    if found := _WEEKDAY.match(text):
        if found.group(1) not in _WEEKDAYS:
            raise ValueError(text)
        weekday, text = _WEEKDAYS[found.group(1)], text[found.end():]
    if found := _ISO_DATE.fullmatch(text):
        year, month, day = found.group(1, 2, 3)
    elif found := _FRENCH_DATE.fullmatch(text):
        day, month, year = found.group(1, 3, 4)
    elif (found := _WORDS_DATE.fullmatch(text)) and found.group(2) in _MONTHS:
        day, month, year = found.group(1), str(_MONTHS[found.group(2)]), found.group(3)
    elif ((found := _WORDS_NO_YEAR.fullmatch(text)) and found.group(2) in _MONTHS) or _NUMBERS_NO_YEAR.fullmatch(text):
        raise NoYear(text)  # `12 mars`, `12/03`: next March, or last?
    else:
        raise ValueError
    if int(year) < FIRST_YEAR:
        raise DateShaped(text)  # `12/03/0026`: a year typed short with zeros, not the year 26
    if 1 <= int(month) <= 12 and int(day) > (days := calendar.monthrange(int(year), int(month))[1]):
        raise NoSuchDay(days)  # `31 avril 2026`, `29/02/2027`, `32 mars 2026`
    try:
        value = date(int(year), int(month), int(day))
    except ValueError:
        raise DateShaped(text) from None  # `0 avril 2026`, `12/13/2026`
    if weekday is not None and value.weekday() != weekday:
        raise WeekdayMismatch(value)  # `lun. 27/11/2026` was a Friday: which one did they mean?
    return value


class DateShaped(ValueError):
    """Words written as a date that is wrong: the whole of them is the value refused, with what is
    wrong, never "too many arguments" (`!eval faite 31 avril 2026` named « avril » as extra)."""

    def why(self) -> dict[str, Any] | None:
        """What is wrong, as a catalog message to show in `error.bad_date`; None: nothing to add."""
        return None


class NoSuchDay(DateShaped):
    """A day past the end of its month (`31 avril 2026`, `29 février 2027`, `32 mars 2026`)."""

    def __init__(self, days: int) -> None:
        super().__init__(days)
        self.days = days

    def why(self) -> dict[str, Any]:
        return {"key": "error.date_no_such_day", "params": {"days": self.days}}


class NoYear(DateShaped):
    """A day and month without the year (`12 mars`, `12/03`): next March, or last?"""

    def why(self) -> dict[str, Any]:
        return {"key": "error.date_no_year"}


class WeekdayMismatch(DateShaped):
    """A date after a weekday it does not fall on (`lun. 27/11/2026`): its own error, which names
    the day the date really is, never "too many arguments"."""

    def __init__(self, value: date) -> None:
        super().__init__(value.isoformat())
        self.value = value


#: `à 14 h 30` (how Relais writes a moment: `ven. 27/11/2026 à 14 h 30`), `de 14 h 30` (a
#: concertation's notice: `de 14 h 30 à 15 h 30`), `at 14:30`: the word before is not the time.
_TIME_WORD = re.compile(r"^(?:à|a|de|at)\s+(?=\S)", re.IGNORECASE)


def _time(text: str) -> str:
    """A time as French people write it (`14h`, `14 h 30`, `14.30`, `midi`, `à 14h`) → `HH:MM`."""
    try:
        return concertation.parse_time(_TIME_WORD.sub("", text.strip())).strftime("%H:%M")
    except DomainError:
        raise ValueError(text) from None


def _user(text: str) -> str:
    """`@local:server`, also written `<@local:server>`; lower-cased (Matrix user ids are lower
    case, and a phone capitalises the first letter it sees)."""
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1]
    text = text.lower()
    if not USER_ID.match(text):
        raise ValueError
    return text


def _case_ref(text: str) -> str:
    text = text.upper()
    if not CASE_REF.match(text):
        raise ValueError
    return text


#: How a number is written before it in French: `n°2`, `nº 2` (NFKC: `no`), `#2`, `N°2`.
_NUMBER_SIGN = re.compile(r"^(?:n\s?[°o]\.?|#)\s?", re.IGNORECASE)


#: The largest number a command takes (an item number, minutes): a database INTEGER's bound, so
#: `!plan 99999999999999999999` is a bad number, not a storage error.
INT_MAX = 2_147_483_647


#: An ordinal's ending (`3e`, `3ème`, `3ᵉ` — NFKC `3e` —, `1er`, `1re`, `1ère`, `2nd`, `2nde`, `3rd`):
#: "la 3e action" is item 3.
_ORDINAL = re.compile(r"(?<=\d)(?:e|eme|ème|è|er|re|ere|ère|nd|nde|st|rd|th)$", re.IGNORECASE)


def _int(text: str) -> int:
    text = _ORDINAL.sub("", _NUMBER_SIGN.sub("", unicodedata.normalize("NFKC", text)))
    if not (text.isascii() and text.isdigit()) or len(text) > 10 or int(text) > INT_MAX:
        raise ValueError
    return int(text)


def _text(text: str) -> str:
    """Free text with something in it: `!rupture ?` or `!plan ajouter . .` asks for help (the
    usage line answers it); it records no break made of a question mark."""
    if not any(char.isalnum() or unicodedata.category(char) == "So" for char in text):
        raise ValueError
    return text


CONVERTERS: dict[str, Callable[[str], Any]] = {
    "text": _text, "date": _date, "time": _time, "user": _user, "case_ref": _case_ref, "int": _int,
}
#: The most words a time is written with (`à 14 h 30`).
TIME_WORDS_MAX = 4


@dataclass(frozen=True)
class Arg:
    name: str
    kind: str = "text"  # a CONVERTERS key, or "choice"
    choices: tuple[str, ...] = ()
    optional: bool = False
    aliases: dict[str, str] = field(default_factory=dict)  # French word → canonical choice
    #: Words that clear a text value (`--intervenant aucun`, `--frequence -`): taken as typed, the
    #: handler reads them; `-` would otherwise be refused as punctuation alone.
    none_words: frozenset[str] = frozenset()

    def choice_of(self, raw: str) -> str | None:
        """The choice a word or phrase stands for, however it was typed (see `choice_key`); None
        when it names none."""
        key = choice_key(raw.rstrip(TRAILING) or raw)
        words = {choice_key(choice): choice for choice in self.choices}
        words |= {choice_key(word): choice for word, choice in self.aliases.items()}
        return words.get(key)

    def convert(self, raw: str, today: date | None = None) -> Any:
        """The value typed; `today` (the territory's date) gives `aujourd'hui`, `hier`, `demain`."""
        if self.kind == "text" and (cleared := raw.strip().lower().translate(_DASH_MAP)) in self.none_words:
            return cleared
        if self.kind == "text" and len(raw) > limits.limit(self.name):
            raise UsageError("error.too_long", arg=self.name, max=limits.limit(self.name), length=len(raw))
        if self.kind != "text":
            raw = raw.rstrip(TRAILING) or raw
        if self.kind == "choice":
            value = self.choice_of(raw)
            if value is None:
                raise UsageError("error.bad_choice", arg=self.name, value=raw, choices=", ".join(self.choices))
            return value
        try:
            return _date(raw, today) if self.kind == "date" else CONVERTERS[self.kind](raw)
        except WeekdayMismatch as exc:
            raise UsageError("error.date_weekday", arg=self.name, value=raw, date=exc.value.isoformat()) from None
        except DateShaped as exc:
            params: dict[str, object] = {"arg": self.name, "value": raw}
            if (why := exc.why()) is not None:
                params["why"] = why
            raise UsageError("error.bad_date", None, **params) from None
        except ValueError:
            raise UsageError(f"error.bad_{self.kind}", arg=self.name, value=raw) from None


@dataclass(frozen=True)
class Opt(Arg):
    alias: str | None = None  # French option name
    repeat: bool = False
    flag: bool = False
    many: bool = False  # takes every following word up to the next option: --with @a @b


@dataclass(frozen=True)
class CommandSpec:
    name: str  # canonical English words, e.g. "team add"
    alias: str  # French words, e.g. "equipe ajouter"
    scope: Scope | None  # None: in a desk and in a person room
    who: Who
    help_key: str
    args: tuple[Arg, ...] = ()
    opts: tuple[Opt, ...] = ()

    @property
    def mutating(self) -> bool:
        return self.who is not Who.MEMBER


@dataclass(frozen=True)
class Invocation:
    spec: CommandSpec
    args: dict[str, Any]
    opts: dict[str, Any]
    #: A positional free text was typed without quotes (`!rupture l'aide ne passe plus`).
    bare_text: bool = False


class UsageError(DomainError):
    """A command that could not be understood; `spec` (when known) gives the usage line."""

    def __init__(self, key: str, spec: CommandSpec | None = None, **params: object) -> None:
        super().__init__(key, **params)
        self.spec = spec


#: Words of courtesy people add after a command (`!vu merci`, `!ack ok thanks`, `!equipe svp`), folded
#: (hub/commands/parser.py `fold`). None of them is an argument, a choice or a command word
#: (`fait`, `vu`, `note` are, and are left out): a tail made only of them and of tokens with no
#: letter or digit (emoji, `:)`, `!`) is dropped when the command fails with it.
COURTESY = frozenset({
    "merci", "beaucoup", "mille", "d'avance", "ok", "okay", "oki", "d'accord", "dac", "bien", "recu", "entendu",
    "parfait", "super", "top", "nickel", "bravo", "svp", "stp", "cordialement", "bonne", "journee",
    "soiree", "a", "tous", "toutes", "vous", "toi", "thanks", "thank", "you", "thx", "ty", "please",
    "pls", "cheers", "great", "noted", "received", "regards",
})


def is_courtesy(word: str) -> bool:
    """A word of courtesy (COURTESY), an emoji or punctuation alone (`👍`, `🙏🏼`, `:)`, `!`)."""
    if not any(char.isalnum() for char in word):
        return True
    return fold(word).replace("’", "'").strip(TRAILING + "()\"'") in COURTESY


def _courtesy(token: Token) -> bool:
    return not token.quoted and is_courtesy(token.value)


def courtesy_start(tokens: Sequence[Token]) -> int:
    """Where the tail of courtesy words and emoji ending `tokens` starts (len(tokens): none)."""
    end = len(tokens)
    while end > 0 and _courtesy(tokens[end - 1]):
        end -= 1
    return end


def is_command(body: str, specs: Sequence[CommandSpec] = ()) -> bool:
    """`!` then a letter (`!equipe`, and `!equipx`, answered as an unknown command); or a loose
    mark (`! `, a space some keyboards put after the mark; `❗`, `‼️`, `!!`, normalised to EMPHATIC)
    then one of `specs`' command words (`! equipe`). A mark followed by anything else (`!!! urgent`,
    `!?`, `! attention`, `!1`) is a person's exclamation, never answered; so is a loose mark
    before a command word and unquoted free text (`❗ Rupture de traitement chez Mme X`,
    `! Nouveau : sa fille a appelé`, `‼️ Décision du juge`): chat, never a break, a file or a
    decision recorded. Quoted, the text is the command's (`! rupture "l'aide ne passe plus"`). An
    emphatic mark before a command word and words that do not make that command (`‼️ Plan B pour
    samedi`, `❗ Equipe au complet`) is chat too, never answered with a usage line."""
    if not body.startswith("!") or len(body) < 2:
        return False
    if body[1].isalpha():
        return True
    emphatic = body.startswith(EMPHATIC)
    words = body[_mark_length(body):].split(None, 1)
    if not (emphatic or body[1].isspace()) or not words:
        return False
    first = fold(words[0]).rstrip(TRAILING)
    if not any(first in (spec.name.split()[0], spec.alias.split()[0], spec.alias.replace("-", " ").split()[0])
               for spec in specs):
        return False
    try:
        return not parse(body, specs).bare_text
    except UsageError:
        # `! equipe ajoute …`: a command word and a mistake, answered with the usage line; after an
        # emphatic mark, the words are a person's exclamation (`‼️ Plan B pour samedi`).
        return not emphatic


def _mark_length(body: str) -> int:
    """How many characters the command's mark takes at the start of normalised text."""
    return len(EMPHATIC) if body.startswith(EMPHATIC) else 1


def _words(body: str) -> list[Token]:
    """Words after the `!`, with spans in `body` (already normalised: hub/commands/normalise.py)."""
    mark = _mark_length(body)
    try:
        return [Token(t.value, t.quoted, t.start + mark, t.end + mark) for t in tokenise(body[mark:])]
    except QuoteError:
        raise UsageError("error.quotes") from None


def fold(word: str) -> str:
    """Lower case without accents: `!décision`, `!équipe` and `!consentement donné` are typed too."""
    return "".join(c for c in unicodedata.normalize("NFKD", word.lower()) if not unicodedata.combining(c))


_CHOICE_JOINS = re.compile(r"[\s_\-']+")
#: Marks of French inclusive writing inside a word (`infirmier·e`, `pharmacien·ne`).
_INCLUSIVE = re.compile("[\u00b7\u2022\u22c5\u2027]")
#: The most words a choice is written with (`refus de la personne`, `retour d'hospitalisation`).
CHOICE_WORDS_MAX = 5


def choice_key(word: str) -> str:
    """A choice however it is typed: case and accents ignored (`ÉTENDUE`, `etendue`); words joined
    by spaces, `_`, hyphens or an apostrophe are the same words (`en place`, `en_place`,
    `retour d'hospitalisation`); inclusive writing is the word (`infirmier·e` = `infirmiere`)."""
    return _CHOICE_JOINS.sub("_", _INCLUSIVE.sub("", fold(word))).strip("_")


def _match(words: list[Token], specs: Sequence[CommandSpec]) -> tuple[CommandSpec, int, bool] | None:
    """Longest command name (English or French) that prefixes the words."""
    best: tuple[CommandSpec, int, bool] | None = None
    lowered = [fold(w.value).rstrip(TRAILING) if not w.quoted else "" for w in words]
    for spec in specs:
        # `!file-active` is also typed `!file active`, as people say it.
        spelt = ((spec.name.split(), False), (spec.alias.split(), True), (spec.alias.replace("-", " ").split(), True))
        for names, french in spelt:
            n = len(names)
            if lowered[:n] == names and (best is None or n > best[1]):
                best = (spec, n, french)
    return best


def parse(body: str, specs: Sequence[CommandSpec], *, today: date | None = None) -> Invocation:
    """Normalised command text (`!…`) → Invocation; UsageError (with the spec once known).

    Free text needs no quotes: words past the last positional argument, or after a free-text
    option's value, join that text as typed (`!rupture l'aide ne passe plus`). `today`, the
    territory's date, gives the dates typed as `aujourd'hui`, `hier`, `demain`."""
    body = normalise(body)
    _one_command(body, specs)
    words = _words(body)
    if not words:
        raise UsageError("error.unknown_command", command=body)
    found = _match(words, specs)
    if found is None:
        raise UsageError("error.unknown_command", command=words[0].value)
    rest = words[found[1]:]
    try:
        try:
            return _bind(found[0], body, rest, today)
        except UsageError:
            end = courtesy_start(rest)
            if end == len(rest):
                raise
            # `!vu merci`, `!equipe 👍`, `!aide ?`, `!plan clore 2, merci !`: words of courtesy, emoji
            # or a final mark are not arguments. Only tried when the command failed with them, so a
            # free text keeps them (`!rupture elle a dit merci`).
            return _bind(found[0], body, rest[:end], today)
    except UsageError as exc:
        if exc.spec is None:
            raise UsageError(exc.key, found[0], **exc.params) from None
        raise


#: How much of a second command the error quotes.
SECOND_COMMAND_EXCERPT = 60


def _one_command(body: str, specs: Sequence[CommandSpec]) -> None:
    """One command per message: a later line that is a command (`!vu` then `!equipe`, two
    `!plan ajouter` pasted together) is refused, nothing done, rather than read as the first
    command's text (a second plan item folded into the first one's action) or argument."""
    for line in body.split("\n")[1:]:
        line = line.strip()
        if is_command(normalise(line), specs):  # its own mark too: `!vu` then `❗equipe`, `‼plan`
            excerpt = line if len(line) <= SECOND_COMMAND_EXCERPT else line[:SECOND_COMMAND_EXCERPT - 1] + "…"
            raise UsageError("error.one_command", command=excerpt)


@dataclass
class _Slot:
    """A value being read: one word, or free text spanning several words of the body."""

    value: str
    start: int
    end: int
    joined: bool = False
    quoted: bool = False

    def text(self, body: str) -> str:
        return body[self.start:self.end] if self.joined else self.value


def _slot(token: Token) -> _Slot:
    return _Slot(token.value, token.start, token.end, quoted=token.quoted)


#: A dash standing alone before an option's name: `— date 12/03/2026` (a keyboard's space after the
#: dash it made of `--`), `-- date`. One ASCII hyphen stays a word (`--frequence -` clears).
_LONE_DASHES = frozenset({"--", *(c for c in DASHES if c != "-"), *(c + c for c in DASHES if c != "-")})


def _joined_options(rest: list[Token], by_name: dict[str, Opt]) -> list[Token]:
    """`— date` → `--date` when `date` is one of this command's options (else both stay words:
    `!rupture l'aide — date inconnue` keeps its text)."""
    out: list[Token] = []
    i = 0
    while i < len(rest):
        token = rest[i]
        after = rest[i + 1] if i + 1 < len(rest) else None
        if (not token.quoted and token.value in _LONE_DASHES and after is not None and not after.quoted
                and fold(after.value) in by_name):
            out.append(Token("--" + after.value, False, token.start, after.end))
            i += 2
            continue
        out.append(token)
        i += 1
    return out


def _bind(spec: CommandSpec, body: str, rest: list[Token], today: date | None) -> Invocation:
    positionals: list[_Slot] = []
    raw_opts: dict[str, list[_Slot]] = {}
    by_name = {o.name: o for o in spec.opts} | {o.alias: o for o in spec.opts if o.alias}
    rest = _joined_options(rest, by_name)
    free: _Slot | None = None  # the free text that a further word would extend
    i = 0
    while i < len(rest):
        token = rest[i]
        name = option_name(token)
        opt = by_name.get(fold(name)) if name is not None else None
        if opt is None and name is not None and typed_option(token):
            raise UsageError("error.unknown_option", spec, option=token.value)
        if opt is not None:
            free = None
            if opt.flag:
                raw_opts[opt.name] = [_Slot("", token.start, token.end)]
                i += 1
                continue
            if opt.many:
                j = i + 1
                while j < len(rest) and not _is_option(rest[j], by_name):
                    raw_opts.setdefault(opt.name, []).append(_slot(rest[j]))
                    j += 1
                if j == i + 1:
                    raise UsageError("error.option_needs_value", spec, option=token.value)
                i = j
                continue
            if i + 1 >= len(rest) or _is_option(rest[i + 1], by_name):
                raise UsageError("error.option_needs_value", spec, option=token.value)
            width = _width(opt, rest, i + 1, by_name, today)
            value = _span(rest, i + 1, width)
            if opt.name in raw_opts and not opt.repeat:
                raise UsageError("error.option_twice", spec, option=token.value)
            raw_opts.setdefault(opt.name, []).append(value)
            if opt.kind == "text" and not opt.repeat:
                free = value
            i += 1 + width
            continue
        if len(positionals) < len(spec.args):
            arg = spec.args[len(positionals)]
            following = spec.args[len(positionals) + 1:]
            width = _width(arg, rest, i, by_name, today, before_text=bool(following) and following[0].kind == "text")
            slot = _span(rest, i, width)
            positionals.append(slot)
            free = slot if arg.kind == "text" else None
            i += width
            continue
        elif free is not None:
            free.end, free.joined = token.end, True
        else:
            raise UsageError("error.too_many_arguments", spec, extra=token.value)
        i += 1
    bare_text = any(arg.kind == "text" and (slot.joined or not slot.quoted)
                    for arg, slot in zip(spec.args, positionals, strict=False))
    args: dict[str, Any] = {}
    for index, arg in enumerate(spec.args):
        if index < len(positionals):
            args[arg.name] = arg.convert(positionals[index].text(body), today)
        elif not arg.optional:
            raise UsageError("error.missing_argument", spec, arg=arg.name)
        else:
            args[arg.name] = None
    opts: dict[str, Any] = {}
    for opt in spec.opts:
        slots = raw_opts.get(opt.name)
        if opt.flag:
            opts[opt.name] = bool(slots)
        elif opt.repeat or opt.many:
            opts[opt.name] = [opt.convert(s.text(body), today) for s in slots or ()]
        else:
            opts[opt.name] = opt.convert(slots[0].text(body), today) if slots else None
    return Invocation(spec, args, opts, bare_text)


def _span(rest: list[Token], i: int, width: int) -> _Slot:
    """The value made of `width` words from `rest[i]` on."""
    if width == 1:
        return _slot(rest[i])
    return _Slot("", rest[i].start, rest[i + width - 1].end, joined=True)


def _width(arg: Arg, rest: list[Token], i: int, by_name: dict[str, Opt], today: date | None, *,
           before_text: bool = False) -> int:
    """How many words, from `rest[i]` on, make this argument's value: a choice may be written in
    several unquoted words (`accueil de jour`, `--statut en place`, `refus de la personne`), and
    a time (`14 h 30`), a date (`ven. 27/11/2026`, `1er avril 2026`) and a number after its sign
    (`n° 2`) too: the longest that names a value wins; any other value is one word. Before a free
    text, a choice followed by more words takes the fewest words naming the same choice: in
    `!lieu autre Lieu de vie Les Tilleuls` the establishment keeps its « Lieu » (`autre lieu` is
    `autre` too); `!lieu autre lieu` alone is still the choice."""
    limits = {"choice": CHOICE_WORDS_MAX, "time": TIME_WORDS_MAX, "date": DATE_WORDS_MAX, "int": 2}
    if arg.kind not in limits:
        return 1
    limit = limits[arg.kind]
    most = 0
    while (most < limit and i + most < len(rest) and not rest[i + most].quoted
           and not _is_option(rest[i + most], by_name)):
        most += 1
    for width in range(most, 1, -1):
        words = " ".join(t.value for t in rest[i:i + width])
        if _names_value(arg, words, today):
            more = i + width < len(rest) and not _is_option(rest[i + width], by_name)
            if arg.kind == "choice" and before_text and more:
                choice = arg.choice_of(words)
                return next(w for w in range(1, width + 1)
                            if arg.choice_of(" ".join(t.value for t in rest[i:i + w])) == choice)
            return width
    return 1


def _names_value(arg: Arg, words: str, today: date | None) -> bool:
    if arg.kind == "choice":
        return arg.choice_of(words) is not None
    if arg.kind == "date":
        try:
            _date(words.rstrip(TRAILING) or words, today)
        except DateShaped:
            return True  # a date, wrong (no such day, no year, another weekday): refused as such
        except ValueError:
            return False
        return True
    try:
        arg.convert(words, today)
    except UsageError:
        return False
    return True


def _is_option(token: Token, by_name: dict[str, Opt]) -> bool:
    name = option_name(token)
    return name is not None and (typed_option(token) or fold(name) in by_name)
