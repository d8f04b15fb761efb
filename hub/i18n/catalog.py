"""Message catalogs (French default, English): catalog key + params → plain text and HTML.

A catalog entry is a template (`str.format` fields) or, when it depends on a number, a plural
entry `{"one": …, "other": …}` chosen with the CLDR rules of the language (Babel) from the
parameter named by `"_n"` (default `count`). Parameters are shown by kind (see
`hub.i18n.formats`): ISO dates and instants as local dates, Matrix ids as pills, enum values
as words. A line — or a ` · ` part of a line — whose field is None or an empty list is left
out, so an empty field never shows as "Fréquence : —".
"""

from __future__ import annotations

import html
import json
import re
import string
from collections.abc import Mapping
from datetime import datetime
from functools import cache
from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo

from hub.i18n.formats import Formats, as_date, as_moment, is_user_id

LANGUAGES = ("fr", "en")
DEFAULT_TIMEZONE = "Europe/Paris"
SEGMENT = " · "
_BOLD = re.compile(r"\*\*(.+?)\*\*", re.DOTALL)

Entry = str | dict[str, str]


@cache
def _load(language: str) -> dict[str, Entry]:
    """`<lang>.json` plus one `<lang>.<feature>.json` per feature (plan, alerts…)."""
    folder = resources.files("hub.i18n")
    data: dict[str, Entry] = {}
    names = sorted(entry.name for entry in folder.iterdir() if entry.name.endswith(".json"))
    for name in names:
        if name == f"{language}.json" or name.startswith(f"{language}."):
            part: dict[str, Entry] = json.loads(folder.joinpath(name).read_text(encoding="utf-8"))
            duplicates = set(part) & set(data)
            if duplicates:
                raise ValueError(f"catalog keys defined twice in {name}: {sorted(duplicates)}")
            data.update(part)
    return data


def entries(language: str) -> dict[str, Entry]:
    """Every entry of a language (for the tests that walk the catalogs)."""
    return dict(_load(language))


class _Lenient(dict[str, Any]):
    """A missing parameter shows as empty rather than crashing a notice."""

    def __missing__(self, key: str) -> str:
        return ""


class _Markup(str):
    """Already rendered (and escaped) text: not escaped again."""


class _Absent:
    """A field with nothing to show: the line (or ` · ` part) holding it is left out."""


ABSENT = _Absent()

# Parameters shown as words of the catalog, and optional ones shown with their punctuation.
_WORD_GROUPS = {"role": "role", "setting": "setting", "status": "status", "tool": "tool", "reason_code": "reason"}
_DECORATED = {"org": " ({})", "reason": " — {}"}
_PLAIN_DATES = frozenset({"born"})  # a birth date reads without its weekday


def _fields(template: str) -> set[str]:
    try:
        return {field.split(".")[0].split("[")[0] for _, field, _, _ in string.Formatter().parse(template) if field}
    except ValueError:
        return set()


def _keep(template: str, absent: set[str]) -> str:
    """The template without the lines and ` · ` parts that show an absent field."""
    if not absent:
        return template
    lines = []
    for line in template.split("\n"):
        parts = [part for part in line.split(SEGMENT) if not (_fields(part) & absent)]
        if parts:
            lines.append(SEGMENT.join(parts))
    return "\n".join(lines)


class Catalog:
    def __init__(self, language: str, timezone: str = DEFAULT_TIMEZONE, *,
                 names: Mapping[str, str] | None = None, now: datetime | None = None) -> None:
        if language not in LANGUAGES:
            raise ValueError(f"unknown language {language!r}")
        self.language = language
        self.timezone = timezone
        self.formats = Formats(language, ZoneInfo(timezone))
        self.names: Mapping[str, str] = names or {}
        self.now = now
        self._messages = _load(language)
        self._fallback = _load("fr")

    def bound(self, names: Mapping[str, str], now: datetime | None) -> Catalog:
        """The same catalog showing people by these display names, ages counted from `now`."""
        return Catalog(self.language, self.timezone, names=names, now=now)

    def entry(self, key: str) -> Entry:
        return self._messages.get(key) or self._fallback.get(key) or key

    def template(self, key: str, params: Mapping[str, Any] | None = None) -> str:
        found = self.entry(key)
        if isinstance(found, str):
            return found
        count = (params or {}).get(found.get("_n", "count"))
        form = self.formats.plural(count) if isinstance(count, int) else "other"
        return found.get(form) or found["other"]

    def has(self, key: str) -> bool:
        return key in self._messages

    def knows(self, key: str) -> bool:
        """Whether `key` is written in this language or in the French it falls back to."""
        return key in self._messages or key in self._fallback

    def _show(self, name: str, value: Any, html_out: bool) -> Any:
        """One parameter as this language shows it; ABSENT when there is nothing to show."""
        if isinstance(value, _Markup):
            return value
        if name in _DECORATED and not isinstance(value, (dict, list)):
            return _DECORATED[name].format(value) if value else ""
        if value is None or (isinstance(value, list) and not value):
            return ABSENT
        if isinstance(value, dict) and "key" in value:
            sub = value.get("params", {})
            return _Markup(self.html(value["key"], **sub) if html_out else self.text(value["key"], **sub))
        if isinstance(value, dict) and "people" in value:
            # People named inline, in a sentence: pills joined by commas.
            ids = [str(u) for u in value["people"]]
            if not ids:
                return ABSENT
            show = self.formats.person_html if html_out else self.formats.person_text
            return _Markup(", ".join(show(u, self.names) for u in ids))
        if isinstance(value, dict) and "ago" in value:
            moment = as_moment(value["ago"])
            if moment is None or self.now is None:
                return ABSENT
            return _Markup(html.escape(self.formats.ago(moment, self.now)) if html_out
                           else self.formats.ago(moment, self.now))
        if isinstance(value, list):
            shown = [self._show(name, v, html_out) for v in value]
            return [v for v in shown if v is not ABSENT]
        if isinstance(value, bool):
            return str(value)
        if name in _WORD_GROUPS and isinstance(value, str):
            return self.word(_WORD_GROUPS[name], value)
        if is_user_id(value):
            return _Markup(self.formats.person_html(value, self.names) if html_out
                           else self.formats.person_text(value, self.names))
        moment = as_moment(value)
        if moment is not None:
            return self.formats.moment(moment)
        day = as_date(value)
        if day is not None:
            return self.formats.date(day, weekday=name not in _PLAIN_DATES)
        return value

    def _render(self, key: str, params: dict[str, Any], html_out: bool) -> str:
        shown = {name: self._show(name, value, html_out) for name, value in params.items()}
        absent = {name for name, value in shown.items() if value is ABSENT}
        template = _keep(self.template(key, params), absent)
        # **…** marks the words that matter: bold in HTML; the plain body reads without marks.
        template = _BOLD.sub(r"<strong>\1</strong>", template) if html_out else _BOLD.sub(r"\1", template)
        convert = _html if html_out else _plain
        values = _Lenient({k: convert(v) for k, v in shown.items() if v is not ABSENT})
        return string.Formatter().vformat(template, (), values)

    def text(self, key: str, **params: Any) -> str:
        return self._render(key, params, html_out=False)

    def html(self, key: str, **params: Any) -> str:
        # The template itself is trusted catalog text: only the parameters are escaped.
        rendered = self._render(key, params, html_out=True)
        return rendered.replace("\n", "<br>").replace("<br><ul>", "<ul>").replace("</ul><br>", "</ul>")

    def word(self, group: str, value: str) -> str:
        """Display word of an enum value (role, setting…), e.g. word('role', 'gp')."""
        found = self._messages.get(f"{group}.{value}", value)
        return found if isinstance(found, str) else value


def _plain(value: Any) -> str:
    if isinstance(value, list):
        return "\n".join(f"• {_plain(v)}" for v in value)
    return str(value)


def _html(value: Any) -> str:
    if isinstance(value, _Markup):
        return str(value)
    if isinstance(value, list):
        return "<ul>" + "".join(f"<li>{_html(v)}</li>" for v in value) + "</ul>" if value else ""
    return html.escape(str(value))
