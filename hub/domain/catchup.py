"""What a member who could not read their room must know once they can. Pure.

A device reads only the messages sent after the room key was shared with it: a professional
added before their first login, or whose client was not cross-signed, missed the notices meant
for them. The catch-up repeats, addressed to them, what still calls for them: an open handover
to acknowledge, the plan items they provide, the next evaluation, the next concertation.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import Any

from hub.domain.concertation import Concertation, when_params
from hub.domain.handover import Handover
from hub.domain.plan import PlanItem

Line = dict[str, Any]  # a nested catalog message: {"key": …, "params": {…}}


def catch_up_lines(user: str, handovers: Iterable[Handover], items: Iterable[PlanItem],
                   next_due: date | None, concertation: Concertation | None) -> list[Line]:
    """The catch-up's lines for `user`, most urgent first; empty when nothing concerns them."""
    lines: list[Line] = []
    for handover in handovers:
        if handover.open and handover.successor == user:
            lines.append({"key": "catchup.handover", "params": {"leaver": handover.leaver}})
    for item in sorted(items, key=lambda i: i.number):
        if item.provider_user == user and not item.closed:
            lines.append({"key": "catchup.item", "params": {"number": item.number, "need": item.need,
                                                            "action": item.action}})
    if next_due is not None:
        lines.append({"key": "catchup.evaluation", "params": {"due": next_due.isoformat()}})
    if concertation is not None:
        params = when_params(concertation)
        lines.append({"key": "catchup.concertation", "params": {"date": params["date"], "start": params["start"]}})
    return lines
