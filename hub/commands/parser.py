"""Command parsing: text → Invocation, or a UsageError saying what was wrong. Pure."""

from __future__ import annotations

import re
import shlex
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from typing import Any

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


def _date(text: str) -> date:
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        raise ValueError
    return date.fromisoformat(text)


def _user(text: str) -> str:
    if not USER_ID.match(text):
        raise ValueError
    return text


def _case_ref(text: str) -> str:
    if not CASE_REF.match(text):
        raise ValueError
    return text


def _int(text: str) -> int:
    if not text.isdigit():
        raise ValueError
    return int(text)


def _text(text: str) -> str:
    if not text.strip():
        raise ValueError
    return text


CONVERTERS: dict[str, Callable[[str], Any]] = {
    "text": _text, "date": _date, "user": _user, "case_ref": _case_ref, "int": _int,
}


@dataclass(frozen=True)
class Arg:
    name: str
    kind: str = "text"  # a CONVERTERS key, or "choice"
    choices: tuple[str, ...] = ()
    optional: bool = False
    aliases: dict[str, str] = field(default_factory=dict)  # French word → canonical choice

    def convert(self, raw: str) -> Any:
        if self.kind == "choice":
            # Accents and case are ignored on both sides: "étendue", "etendue" and "ÉTENDUE" match.
            words = {fold(word): choice for word, choice in self.aliases.items()}
            value = words.get(fold(raw), raw.lower())
            if value not in self.choices:
                raise UsageError("error.bad_choice", arg=self.name, value=raw, choices=", ".join(self.choices))
            return value
        try:
            return CONVERTERS[self.kind](raw)
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

    def usage(self, french: bool) -> str:
        words = [f"!{self.alias if french else self.name}"]
        for arg in self.args:
            shown = f"<{arg.name}>" if arg.kind != "choice" else "|".join(arg.choices)
            words.append(f"[{shown}]" if arg.optional else shown)
        for opt in self.opts:
            name = opt.alias if french and opt.alias else opt.name
            more = "…" if opt.many else ""
            words.append(f"[--{name}]" if opt.flag else f"[--{name} <{opt.name}>{more}]")
        return " ".join(words)


@dataclass(frozen=True)
class Invocation:
    spec: CommandSpec
    args: dict[str, Any]
    opts: dict[str, Any]


class UsageError(DomainError):
    """A command that could not be understood; `spec` (when known) gives the usage line."""

    def __init__(self, key: str, spec: CommandSpec | None = None, **params: object) -> None:
        super().__init__(key, **params)
        self.spec = spec


def is_command(body: str) -> bool:
    return body.startswith("!") and len(body) > 1 and not body[1].isspace()


def _words(body: str) -> list[str]:
    try:
        return shlex.split(body[1:])
    except ValueError:
        raise UsageError("error.quotes") from None


def fold(word: str) -> str:
    """Lower case without accents: `!décision`, `!équipe` and `!consentement donné` are typed too."""
    return "".join(c for c in unicodedata.normalize("NFKD", word.lower()) if not unicodedata.combining(c))


def _match(words: list[str], specs: Sequence[CommandSpec]) -> tuple[CommandSpec, int, bool] | None:
    """Longest command name (English or French) that prefixes the words."""
    best: tuple[CommandSpec, int, bool] | None = None
    lowered = [fold(w) for w in words]
    for spec in specs:
        for names, french in ((spec.name.split(), False), (spec.alias.split(), True)):
            n = len(names)
            if lowered[:n] == names and (best is None or n > best[1]):
                best = (spec, n, french)
    return best


def parse(body: str, specs: Sequence[CommandSpec]) -> Invocation:
    words = _words(body)
    if not words:
        raise UsageError("error.unknown_command", command=body)
    found = _match(words, specs)
    if found is None:
        raise UsageError("error.unknown_command", command=words[0])
    try:
        return _bind(found[0], words[found[1]:])
    except UsageError as exc:
        if exc.spec is None:
            raise UsageError(exc.key, found[0], **exc.params) from None
        raise


def _bind(spec: CommandSpec, rest: list[str]) -> Invocation:
    positionals: list[str] = []
    opts: dict[str, Any] = {}
    by_name = {o.name: o for o in spec.opts} | {o.alias: o for o in spec.opts if o.alias}
    i = 0
    while i < len(rest):
        word = rest[i]
        if word.startswith("--") and len(word) > 2:
            opt = by_name.get(fold(word[2:]))
            if opt is None:
                raise UsageError("error.unknown_option", spec, option=word)
            if opt.flag:
                opts[opt.name] = True
                i += 1
                continue
            if opt.many:
                j = i + 1
                while j < len(rest) and not rest[j].startswith("--"):
                    opts.setdefault(opt.name, []).append(opt.convert(rest[j]))
                    j += 1
                if j == i + 1:
                    raise UsageError("error.option_needs_value", spec, option=word)
                i = j
                continue
            if i + 1 >= len(rest):
                raise UsageError("error.option_needs_value", spec, option=word)
            value = opt.convert(rest[i + 1])
            if opt.repeat:
                opts.setdefault(opt.name, []).append(value)
            elif opt.name in opts:
                raise UsageError("error.option_twice", spec, option=word)
            else:
                opts[opt.name] = value
            i += 2
            continue
        positionals.append(word)
        i += 1
    args: dict[str, Any] = {}
    for index, arg in enumerate(spec.args):
        if index < len(positionals):
            args[arg.name] = arg.convert(positionals[index])
        elif not arg.optional:
            raise UsageError("error.missing_argument", spec, arg=arg.name)
        else:
            args[arg.name] = None
    if len(positionals) > len(spec.args):
        raise UsageError("error.too_many_arguments", spec, extra=positionals[len(spec.args)])
    for opt in spec.opts:
        if opt.repeat or opt.many:
            opts.setdefault(opt.name, [])
        else:
            opts.setdefault(opt.name, False if opt.flag else None)
    return Invocation(spec, args, opts)
