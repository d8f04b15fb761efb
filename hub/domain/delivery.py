"""What the referent is told when something the bot had to post could not be delivered. Pure.

SPEC §5 `delivery.failed`: to the referent's desk, what kind of notice, which file, since when
— never the notice's content. SPEC §7: what cannot be delivered is reported to the file's case
manager, never dropped silently.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from hub.domain.effects import Notify

PARIS = ZoneInfo("Europe/Paris")
KIND = "delivery.failed"


def failure_notice(referent: str, case_ref: str, what: str, since: datetime) -> Notify:
    """`what`: the failed notice's kind (`alert.admission`…) or the action (`create_room`,
    `invite`…); shown through the catalog word `delivery.what.<what>`. `since`: when the entry was
    queued (aware datetime), shown in local time. Mentions the referent (m.mentions, SPEC §5)."""
    return Notify(KIND, case_ref, KIND,
                  {"what": {"key": f"delivery.what.{what}"}, "case": case_ref or "—",
                   "since": since.astimezone(PARIS).strftime("%Y-%m-%d %H:%M"), "user": referent},
                  mentions=(referent,), desk=referent)
