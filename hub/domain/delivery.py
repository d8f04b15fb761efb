"""Who is told, and how, when something the bot had to post could not be delivered. Pure.

SPEC §5 `delivery.failed`: to the referent's desk, what kind of notice, which file, since when
— never the notice's content. SPEC §7: what cannot be delivered is reported to a person, never
dropped silently. When the referent's own desk is what fails (or a desk's creation, or the
triage room, or a room no file names), telling them there would fail too: the territory's
pilots are told in theirs instead (`delivery.failed_pilot`), and a report to a pilot that fails
is not reported again (the error log and the dead-letter metric keep it).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, tzinfo
from typing import Any

from hub.domain.effects import Notify
from hub.domain.transitions import PARIS

KIND = "delivery.failed"
#: The message of the report a pilot gets (its kind stays `delivery.failed`).
TO_PILOT = "delivery.failed_pilot"
#: The messages of one report for several messages set aside together (a room gone: its backlog).
MANY = "delivery.failed_many"
TO_PILOT_MANY = "delivery.failed_pilot_many"


def _since(moment: datetime, tz: tzinfo) -> str:
    """An ISO instant with its offset in the territory's zone: the catalog shows it as a local
    date (`ven. 27/11/2026 à 01 h 49`, SPEC §5), never as an ISO string."""
    return moment.astimezone(tz).isoformat(timespec="minutes")


def reason(error: str) -> str:
    """Why it failed, as a catalog phrase `delivery.why.<reason>` with what a person can do,
    from the dead letter's label (`MatrixError 403 M_FORBIDDEN`, `RoomGone M_ROOM_GONE`,
    `TransientError 502 M_UNKNOWN (still failing after 3700 s)`…): a room gone, a refusal by
    power levels or of the person invited, a file over the server's upload limit, a server
    that has not answered for too long, a notice this version cannot write (a phrase removed by an
    upgrade), or another refusal."""
    words = error.split()
    if "NotRenderable" in words:
        return "not_renderable"
    if "(still failing after" in error:
        return "unreachable"
    if "RoomGone" in words or "M_ROOM_GONE" in words or "404" in words or "M_NOT_FOUND" in words:
        return "room_gone"
    if "M_TOO_LARGE" in words or "413" in words:
        return "too_large"
    if "M_FORBIDDEN" in words or "403" in words:
        return "forbidden"
    return "refused"


def _what(what: str | Sequence[str]) -> dict[str, Any]:
    """One kind, or each kind once in order: how many messages of which kinds (a whole backlog for
    a room that is gone is one report, never one per message)."""
    if isinstance(what, str):
        return {"what": {"key": f"delivery.what.{what}"}}
    kinds = list(dict.fromkeys(what))
    if len(what) == 1:
        return {"what": {"key": f"delivery.what.{kinds[0]}"}}
    return {"count": len(what), "kinds": [{"key": f"delivery.what.{k}"} for k in kinds]}


def failure_notice(referent: str, case_ref: str, what: str | Sequence[str], since: datetime, tz: tzinfo = PARIS,
                   error: str = "") -> Notify:
    """`what`: the failed notice's kind (`alert.admission`…) or the action (`create_room`,
    `invite`…) — or one per message set aside together (`delivery.failed_many`: how many, of
    which kinds); shown through the catalog words `delivery.what.<what>`. `since`: when the
    (first) entry was queued (aware datetime), shown in the territory's time `tz` (`[care]
    timezone`). Mentions the referent (m.mentions, SPEC §5)."""
    told = _what(what)
    return Notify(KIND, case_ref, KIND if "what" in told else MANY,
                  {**told, "case": case_ref or "—",
                   "since": _since(since, tz), "user": referent, "why": {"key": f"delivery.why.{reason(error)}"}},
                  mentions=(referent,), desk=referent)


def where(case_ref: str, desk_owner: str | None, triage: bool) -> dict[str, Any]:
    """The place that could not be reached, as a catalog phrase: a file's room, someone's desk
    (a Matrix id, no name), the triage room, or another room."""
    if triage:
        return {"key": "delivery.where.triage"}
    if desk_owner:
        return {"key": "delivery.where.desk", "params": {"owner": desk_owner}}
    if case_ref:
        return {"key": "delivery.where.case", "params": {"case": case_ref}}
    return {"key": "delivery.where.other"}


def pilot_notice(pilot: str, case_ref: str, what: str | Sequence[str], place: dict[str, Any], since: datetime,
                 tz: tzinfo = PARIS, error: str = "") -> Notify:
    """The report to one pilot, in their desk, when nobody closer can be told (module docstring)."""
    told = _what(what)
    return Notify(KIND, case_ref, TO_PILOT if "what" in told else TO_PILOT_MANY,
                  {**told, "where": place, "since": _since(since, tz),
                   "user": pilot, "why": {"key": f"delivery.why.{reason(error)}"}},
                  mentions=(pilot,), desk=pilot)
