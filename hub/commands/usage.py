"""Usage lines and help, in the words the person types. Pure.

A usage line never shows a `<placeholder>` (Element's HTML sanitiser drops unknown tags, so
`<date>` would vanish) nor a canonical English word in French: a choice shows the French words
accepted for it (`medecin|infirmier|…`), a value shows its form (`JJ/MM/AAAA`, `@nom:serveur`)
or a short word from the catalog (`"besoin"`).
"""

from __future__ import annotations

from typing import Any

from hub.commands.parser import TRAILING, Arg, CommandSpec, Opt, choice_key
from hub.i18n.catalog import Catalog

_FORMS = {"user": "form.user", "date": "form.date", "case_ref": "form.case_ref", "int": "form.int"}


def typed_word(arg: Arg, choice: str, french: bool) -> str:
    """The word a person types for a choice: the first French word declared for it, else itself."""
    if french:
        for word, value in arg.aliases.items():
            if value == choice and " " not in word:
                return word
    return choice


def typed_choices(arg: Arg, french: bool) -> list[str]:
    return [typed_word(arg, choice, french) for choice in arg.choices]


def placeholder(arg: Arg, catalog: Catalog, spec: CommandSpec | None = None) -> str:
    """What stands for an argument's value in a usage line or an error message: the command's
    own word for it (`arg.<command>.<name>`), else the argument's (`arg.<name>`), else its form."""
    french = catalog.language == "fr"
    if arg.kind == "choice":
        return "|".join(typed_choices(arg, french))
    for key in ((f"arg.{spec.name}.{arg.name}",) if spec is not None else ()) + (f"arg.{arg.name}",):
        if catalog.has(key):
            return catalog.text(key)
    return catalog.text(_FORMS.get(arg.kind, "form.text"))


def option_name(opt: Opt, french: bool) -> str:
    return f"--{opt.alias if french and opt.alias else opt.name}"


def usage_line(spec: CommandSpec, catalog: Catalog) -> str:
    french = catalog.language == "fr"
    words = [f"!{spec.alias if french else spec.name}"]
    for arg in spec.args:
        shown = placeholder(arg, catalog, spec)
        words.append(f"[{shown}]" if arg.optional else shown)
    for opt in spec.opts:
        name = option_name(opt, french)
        if opt.flag:
            words.append(f"[{name}]")
        else:
            more = "…" if opt.many or opt.repeat else ""
            words.append(f"[{name} {placeholder(opt, catalog, spec)}{more}]")
    return " ".join(words)


def _find(spec: CommandSpec, name: str) -> Arg | None:
    return next((a for a in (*spec.args, *spec.opts) if a.name == name), None)


def explain(params: dict[str, Any], spec: CommandSpec | None, catalog: Catalog) -> dict[str, Any]:
    """A usage error's parameters in the person's words: the argument as the usage line shows
    it and, for a choice, the words they may type instead of the canonical values."""
    out = dict(params)
    arg = _find(spec, str(params.get("arg"))) if spec is not None and "arg" in params else None
    if arg is not None:
        if isinstance(arg, Opt):
            out["arg"] = option_name(arg, catalog.language == "fr")
        else:
            out["arg"] = placeholder(arg, catalog, spec) if arg.kind != "choice" else catalog.text(
                f"arg.{arg.name}") if catalog.has(f"arg.{arg.name}") else arg.name
        if arg.kind == "choice":
            out["choices"] = ", ".join(typed_choices(arg, catalog.language == "fr"))
    if spec is not None:
        out["usage"] = usage_line(spec, catalog)
    return out


# Help groups, in the order shown: the first word of a command decides its group.
_GROUP_OF = {
    "help": "general", "new": "files", "caseload": "files", "transfer": "files", "report": "files",
    "team": "team", "id": "team", "ack": "team", "plan": "plan", "eval": "plan",
    "move": "file", "break": "file", "close": "file", "consent": "file",
    "concertation": "concertation", "decision": "concertation",
    "refer": "referrals", "referrals": "referrals", "referral": "referrals",
}
_GROUPS = ("general", "files", "team", "plan", "file", "concertation", "referrals", "other")


def find_command(words: str, specs: list[CommandSpec]) -> CommandSpec | None:
    """The command named by `words`, English or French, however typed: accents, capitals, a
    leading `!`, punctuation after a word, words joined by `-` or `_` (`file active`,
    `plan-ajouter`) ignored; words after the command's own (`plan ajouter svp`, `equipe ?`) too."""
    parts = [w.strip(TRAILING) for w in words.lstrip("!").split()]
    parts = [w for w in parts if w]
    names = {choice_key(name): spec for spec in specs for name in (spec.name, spec.alias)}
    for n in range(len(parts), 0, -1):
        spec = names.get(choice_key(" ".join(parts[:n])))
        if spec is not None:
            return spec
    return None


def help_groups(specs: list[CommandSpec], catalog: Catalog) -> list[dict[str, Any]]:
    """`!help`: one line per group, its commands shortest first; `!help <command>` tells more."""
    french = catalog.language == "fr"
    grouped: dict[str, list[str]] = {}
    for spec in specs:
        group = _GROUP_OF.get(spec.name.split()[0], "other")
        grouped.setdefault(group, []).append(f"!{spec.alias if french else spec.name}")
    return [
        {"key": "help.group", "params": {"title": {"key": f"help.group.{group}"},
                                         "commands": " · ".join(sorted(grouped[group], key=len))}}
        for group in _GROUPS if group in grouped
    ]


def help_detail(spec: CommandSpec, catalog: Catalog, *, allowed: bool) -> dict[str, Any]:
    """`!help <command>`: its usage line, what it does, its other name and who may use it."""
    french = catalog.language == "fr"
    return {
        "usage": usage_line(spec, catalog),
        "help": {"key": spec.help_key},
        "other_name": f"!{spec.name if french else spec.alias}",
        "who": {"key": f"help.who.{spec.who.value}"},
        "not_allowed": None if allowed else {"key": "help.not_for_you"},
    }
