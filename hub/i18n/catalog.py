"""Message catalogs (French default, English): catalog key + params → plain text and HTML."""

from __future__ import annotations

import html
import json
import string
from functools import cache
from importlib import resources
from typing import Any

LANGUAGES = ("fr", "en")


@cache
def _load(language: str) -> dict[str, str]:
    """`<lang>.json` plus one `<lang>.<feature>.json` per feature (plan, alerts…)."""
    folder = resources.files("hub.i18n")
    data: dict[str, str] = {}
    names = sorted(entry.name for entry in folder.iterdir() if entry.name.endswith(".json"))
    for name in names:
        if name == f"{language}.json" or name.startswith(f"{language}."):
            part: dict[str, str] = json.loads(folder.joinpath(name).read_text(encoding="utf-8"))
            duplicates = set(part) & set(data)
            if duplicates:
                raise ValueError(f"catalog keys defined twice in {name}: {sorted(duplicates)}")
            data.update(part)
    return data


class _Lenient(dict[str, Any]):
    """A missing parameter shows as empty rather than crashing a notice."""

    def __missing__(self, key: str) -> str:
        return ""


class _Markup(str):
    """Already rendered (and escaped) text: not escaped again."""


# Parameters shown as words of the catalog, and optional ones shown with their punctuation.
_WORD_GROUPS = {"role": "role", "setting": "setting", "status": "status", "tool": "tool", "reason_code": "reason"}
_DECORATED = {"org": " ({})", "reason": " — {}"}


def _plain(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, list):
        return "\n".join(f"• {_plain(v)}" for v in value)
    return str(value)


def _html(value: Any) -> str:
    if isinstance(value, _Markup):
        return str(value)
    if value is None:
        return "—"
    if isinstance(value, list):
        return "<ul>" + "".join(f"<li>{_html(v)}</li>" for v in value) + "</ul>" if value else ""
    return html.escape(str(value))


class Catalog:
    def __init__(self, language: str) -> None:
        if language not in LANGUAGES:
            raise ValueError(f"unknown language {language!r}")
        self.language = language
        self._messages = _load(language)
        self._fallback = _load("fr")

    def template(self, key: str) -> str:
        return self._messages.get(key) or self._fallback.get(key) or key

    def has(self, key: str) -> bool:
        return key in self._messages

    def _resolve(self, params: dict[str, Any], html_out: bool) -> dict[str, Any]:
        """Nested messages ({"key", "params"}) and enum words are rendered in this language."""
        out: dict[str, Any] = {}
        for name, value in params.items():
            if isinstance(value, dict) and "key" in value:
                value = _Markup(self.html(value["key"], **value.get("params", {})) if html_out
                                else self.text(value["key"], **value.get("params", {})))
            elif isinstance(value, list):
                value = [
                    _Markup(self.html(v["key"], **v.get("params", {})) if html_out
                            else self.text(v["key"], **v.get("params", {})))
                    if isinstance(v, dict) and "key" in v else v
                    for v in value
                ]
            elif name in _WORD_GROUPS and isinstance(value, str):
                value = self.word(_WORD_GROUPS[name], value)
            elif name in _DECORATED:
                value = _DECORATED[name].format(value) if value else ""
            out[name] = value
        return out

    def text(self, key: str, **params: Any) -> str:
        resolved = self._resolve(params, html_out=False)
        return string.Formatter().vformat(
            self.template(key), (), _Lenient({k: _plain(v) for k, v in resolved.items()})
        )

    def html(self, key: str, **params: Any) -> str:
        # The template itself is trusted catalog text: only the parameters are escaped.
        resolved = self._resolve(params, html_out=True)
        rendered = string.Formatter().vformat(
            self.template(key), (), _Lenient({k: _html(v) for k, v in resolved.items()})
        )
        return rendered.replace("\n", "<br>").replace("<br><ul>", "<ul>").replace("</ul><br>", "</ul>")

    def word(self, group: str, value: str) -> str:
        """Display word of an enum value (role, setting…), e.g. word('role', 'gp')."""
        return self._messages.get(f"{group}.{value}", value)
