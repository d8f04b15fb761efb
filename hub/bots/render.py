"""Notify effect → message content, in the configured language. Pure.

The outbox resolves the display names of the people a notice shows (`people`) and passes them
with the time of sending; everything else comes from the effect's parameters.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from hub.bots import content
from hub.i18n.catalog import Catalog
from hub.i18n.formats import is_user_id


def people(params: Any) -> Iterator[str]:
    """Every Matrix id among a notice's parameters, nested messages and lists included."""
    if is_user_id(params):
        yield params
    elif isinstance(params, dict):
        for value in params.values():
            yield from people(value)
    elif isinstance(params, list | tuple):
        for value in params:
            yield from people(value)


def render(catalog: Catalog, kind: str, case_ref: str, message: str, params: dict[str, Any],
           mentions: tuple[str, ...], names: Mapping[str, str] | None = None,
           now: datetime | None = None) -> dict[str, Any]:
    shown = catalog.bound(names or {}, now)
    text = shown.text(message, **params)
    html = shown.html(message, **params)
    if kind == "command.error":
        prefix = shown.text("error.prefix")
        text, html = prefix + text, prefix + html
        usage = params.get("usage")
        if usage:
            text += "\n" + shown.text("usage", usage=usage)
            html += "<br>" + shown.html("usage", usage=usage)
    return content.notice(kind, case_ref, text, html, mentions)
