"""Notify effect → notice content, in the configured language. Pure."""

from __future__ import annotations

from typing import Any

from hub.bots import content
from hub.i18n.catalog import Catalog

#: Kinds that call for someone's action: m.text, so their mentions notify (SPEC §5).
ACTION_KINDS = frozenset({"referral.decision"})


def render(catalog: Catalog, kind: str, case_ref: str, message: str, params: dict[str, Any],
           mentions: tuple[str, ...]) -> dict[str, Any]:
    text = catalog.text(message, **params)
    html = catalog.html(message, **params)
    if kind == "command.error":
        prefix = catalog.text("error.prefix")
        text, html = prefix + text, prefix + html
        usage = params.get("usage")
        if usage:
            text += "\n" + catalog.text("usage", usage=usage)
            html += "<br>" + catalog.html("usage", usage=usage)
    body = content.notice(kind, case_ref, text, html, mentions)
    if kind in ACTION_KINDS:
        body["msgtype"] = "m.text"  # SPEC §5: .m.rule.suppress_notices would silence an m.notice
    return body
