"""Notify effect → message content, in the configured language. Pure.

The outbox resolves the display names of the people a notice shows (`people`) and passes them
with the time of sending; everything else comes from the effect's parameters.

A notice always fits in one Matrix event (hub/bots/content.py `fits`, measured on the encoded
and encrypted event, every copy included): when the full text would not, each long text in it
is shortened with "…" and the notice says where the full text is (`!plan 4`); in the last
resort the plain text alone is cut. People, dates and catalog keys are never cut.
"""

from __future__ import annotations

import html as html_lib
import re
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import Any

from hub.bots import content
from hub.i18n.catalog import Catalog
from hub.i18n.formats import as_date, as_moment, is_user_id

#: Where the full text of a shortened notice can be read, by kind (a catalog key or a command).
POINTERS = {"plan.update": "!plan {number}", "plan.review": "!plan {number}"}
DEFAULT_POINTER = "!aide"
#: Longest text kept in a shortened notice, tried in turn.
_CUTS = (400, 160, 60, 20)
#: Room id length used when the target room is not known yet (room ids are at most 255 bytes).
_ROOM_ID = "!" + "x" * 254


#: A Matrix user id inside a display name (`@gp:chu-x.example`), and the invisible characters
#: that reorder or hide text (bidi controls, zero-width marks) or break lines in a notice.
_ID_IN_NAME = re.compile(r"@[^\s:@]+:[A-Za-z0-9.\-\[\]]+")
_HIDDEN = re.compile("[\u0000-\u001f\u007f-\u009f\u061c\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")
#: Longest display name shown; a longer one is cut with "…".
NAME_MAX = 80


def shown_name(user_id: str, name: str | None) -> str | None:
    """The display name a notice may show for `user_id`, or None to show the id itself.

    Anyone sets their own display name, so a name naming a Matrix id other than the person's own
    (`@cm:example.org`, `Dr Martin (@gp:chu-x.example)`) would make a notice's plain body —
    what a phone's notification shows — name someone else: the id is shown instead. Line breaks
    and invisible reordering characters are dropped so a name cannot fake a notice's lines."""
    if not name:
        return None
    cleaned = " ".join(_HIDDEN.sub(" ", name).split())
    if not cleaned or any(found.lower() != user_id.lower() for found in _ID_IN_NAME.findall(cleaned)):
        return None
    if cleaned == user_id:
        return None
    return cleaned if len(cleaned) <= NAME_MAX else cleaned[:NAME_MAX - 1] + "…"


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


class NotRenderable(Exception):
    """A queued notice this version cannot write: its message (or a phrase in its parameters) is
    not in the catalog — removed by an upgrade — or its parameters do not fit the text. Retrying
    changes nothing; posting the bare key would show the team `alert.admission` as a message."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what  # the missing key or the error's type: no content


def checked_render(catalog: Catalog, kind: str, case_ref: str, message: str, params: dict[str, Any],
                   mentions: tuple[str, ...], names: Mapping[str, str] | None = None,
                   now: datetime | None = None, **kw: Any) -> dict[str, Any]:
    """`render`, or NotRenderable when the notice's message is a phrase the catalog no longer has
    or its parameters break the text (TypeError, KeyError, ValueError while rendering). A phrase
    missing inside the parameters shows as its key (a report of a kind this version does not
    name still goes out)."""
    if not catalog.knows(message):
        raise NotRenderable(f"unknown phrase {message}")
    try:
        return render(catalog, kind, case_ref, message, params, mentions, names, now, **kw)
    except (TypeError, KeyError, ValueError, AttributeError, IndexError) as exc:
        raise NotRenderable(type(exc).__name__) from exc


def render(catalog: Catalog, kind: str, case_ref: str, message: str, params: dict[str, Any],
           mentions: tuple[str, ...], names: Mapping[str, str] | None = None, now: datetime | None = None, *,
           room_id: str = _ROOM_ID,
           wrap: Callable[[dict[str, Any]], dict[str, Any]] = lambda c: c) -> dict[str, Any]:
    """The notice content, people shown by `names` (display names) and ages counted from `now`;
    `wrap` adds what the sender adds around it (a thread relation, an m.replace edit with its
    second copy) so that the size is measured on what is really sent."""
    shown = catalog.bound(names or {}, now)
    built = wrap(_content(shown, kind, case_ref, message, params, mentions))
    if content.fits(built, room_id):
        return built
    pointer = _pointer(kind, params)
    note = {"key": "notice.shortened", "params": {"pointer": pointer}}
    for cut in _CUTS:
        shortened = wrap(_content(shown, kind, case_ref, message, _shorten(params, cut), mentions, note))
        if content.fits(shortened, room_id):
            return shortened
    text = shown.text(message, **_shorten(params, _CUTS[-1]))
    tail = "\n" + shown.text("notice.shortened", pointer=pointer)
    while True:
        text = text[: max(0, len(text) * 3 // 4)]
        last = wrap(content.notice(kind, case_ref, text + "…" + tail,
                                   html_lib.escape(text + "…" + tail).replace("\n", "<br>"), mentions))
        if content.fits(last, room_id) or not text:
            return last


def _pointer(kind: str, params: dict[str, Any]) -> str:
    """Where the full text is: the notice's own `pointer`, or its kind's command for its item."""
    if params.get("pointer"):
        return str(params["pointer"])
    item = params.get("item")
    number = item.get("number") if isinstance(item, dict) else params.get("number")
    return POINTERS.get(kind, DEFAULT_POINTER).format(number="" if number is None else number).strip()


def _content(catalog: Catalog, kind: str, case_ref: str, message: str, params: dict[str, Any],
             mentions: tuple[str, ...], note: dict[str, Any] | None = None) -> dict[str, Any]:
    text = catalog.text(message, **params)
    html = catalog.html(message, **params)
    if kind == "command.error":
        prefix = catalog.text("error.prefix")
        text, html = prefix + text, prefix + html
        usage = params.get("usage")
        if usage:
            text += "\n" + catalog.text("usage", usage=usage)
            html += "<br>" + catalog.html("usage", usage=usage)
    if note is not None:
        text += "\n" + catalog.text(note["key"], **note["params"])
        html += "<br>" + catalog.html(note["key"], **note["params"])
    return content.notice(kind, case_ref, text, html, mentions)  # m.text for content.ACTION_KINDS


def _shorten(value: Any, cut: int) -> Any:
    """Every free text in `value` (nested messages and lists included) cut to `cut` characters;
    catalog keys, people and dates are left whole (a cut id is no pill, a cut date no date)."""
    if isinstance(value, str):
        if len(value) <= cut or is_user_id(value) or as_moment(value) or as_date(value):
            return value
        return value[: cut - 1] + "…"
    if isinstance(value, list):
        return [_shorten(v, cut) for v in value]
    if isinstance(value, dict):
        return {k: v if k == "key" else _shorten(v, cut) for k, v in value.items()}
    return value
