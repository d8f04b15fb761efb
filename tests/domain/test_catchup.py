"""The catch-up of a member who can now read their room: what concerns them, nothing else."""

from __future__ import annotations

from datetime import UTC, date, datetime

from hub.bots.readable import readable_users
from hub.domain.catchup import catch_up_lines
from hub.domain.handover import Handover, HandoverKind
from hub.domain.plan import ItemStatus, PlanItem

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
GP, NURSE, CM = "@gp:x.org", "@nurse:x.org", "@cm:x.org"


def _item(number: int, provider: str | None, closed: bool = False) -> PlanItem:
    return PlanItem(number, f"need {number}", f"action {number}", provider, None, None, None, None,
                    ItemStatus.IN_PLACE, closed, CM, NOW, 1)


def test_lines_name_the_open_handover_their_items_and_the_next_evaluation() -> None:
    handovers = [
        Handover("R-2026-0001", HandoverKind.PROFESSIONAL, NURSE, GP, None, (2,), CM, NOW, id=1),
        Handover("R-2026-0001", HandoverKind.PROFESSIONAL, NURSE, GP, None, (), CM, NOW, acked_at=NOW, id=2),
        Handover("R-2026-0001", HandoverKind.PROFESSIONAL, CM, NURSE, None, (), CM, NOW, id=3),
    ]
    items = [_item(3, GP), _item(1, NURSE), _item(2, GP), _item(4, GP, closed=True)]
    lines = catch_up_lines(GP, handovers, items, date(2026, 6, 1), None)
    assert lines == [
        {"key": "catchup.handover", "params": {"leaver": NURSE}},
        {"key": "catchup.item", "params": {"number": 2, "need": "need 2", "action": "action 2"}},
        {"key": "catchup.item", "params": {"number": 3, "need": "need 3", "action": "action 3"}},
        {"key": "catchup.evaluation", "params": {"due": "2026-06-01"}},
    ]


def test_the_next_concertation_is_given_in_local_time() -> None:
    from hub.domain.concertation import Concertation

    planned = Concertation("R-2026-0001", "uid-1", CM, (GP,), datetime(2026, 3, 10, 13, 30, tzinfo=UTC), 60,
                           None, None, NOW)
    assert catch_up_lines(GP, [], [], None, planned) == [
        {"key": "catchup.concertation", "params": {"date": "2026-03-10", "start": "14:30"}}]  # Paris, winter


def test_nothing_waiting_is_no_line() -> None:
    assert catch_up_lines(GP, [], [_item(1, NURSE)], None, None) == []


def test_readable_follows_the_trust_policy() -> None:
    # A device without any signature: readable only when the policy shares with every device.
    response = {"device_keys": {GP: {"DEV": {"keys": {}}}, NURSE: {}}}
    assert readable_users(response, [GP, NURSE], "all") == {GP}
    assert readable_users(response, [GP, NURSE], "cross_signed") == set()
