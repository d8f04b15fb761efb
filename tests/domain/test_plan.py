from __future__ import annotations

import json
from datetime import date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.domain import plan
from hub.domain.effects import Notify
from hub.domain.plan import (
    ItemStatus,
    PlanError,
    PlanItem,
    add_item,
    close_item,
    current,
    item_as_params,
    items_past_review,
    items_without_provider,
    plan_as_of,
    reassign,
    set_item,
    split_provider,
)

NOW = datetime(2026, 3, 1, 9, 0)
CM = "@cm:dac.example"
NURSE = "@nurse:ssiad.example"


def new(existing: list[PlanItem] | None = None, **kw: object) -> PlanItem:
    item, _ = add_item(existing or [], "C1", "Toilette", "Passage quotidien",
                       by=CM, now=NOW, **kw)  # type: ignore[arg-type]
    return item


def test_add_numbers_items_and_notifies() -> None:
    first, effects = add_item([], "C1", " Repas ", "Portage", provider_org="SAD Nord",
                              review=date(2026, 6, 1), by=CM, now=NOW)
    assert first.number == 1 and first.version == 1
    assert first.status is ItemStatus.PROPOSED and not first.closed
    assert first.need == "Repas" and first.provider == "SAD Nord"
    assert effects == [Notify("plan.update", "C1", "plan.added",
                              {"by": CM, "item": item_as_params(first), "changes": []})]
    assert isinstance(effects[0], Notify)
    json.dumps(effects[0].params)
    closed, _ = close_item(first, "C1", by=CM, now=NOW)
    # numbers stay stable: closed items keep theirs and the next one counts past them
    assert new([first, closed]).number == 2


@pytest.mark.parametrize(
    ("kw", "key"),
    [
        ({"need": " "}, "error.plan_empty"),
        ({"provider_user": "@nurse"}, "error.plan_bad_provider"),
        ({"start": date(2026, 5, 1), "review": date(2026, 4, 1)},
         "error.plan_review_before_start"),
    ],
)
def test_add_refuses(kw: dict[str, object], key: str) -> None:
    args: dict[str, object] = {"need": "Toilette", "action": "Aide"} | kw
    with pytest.raises(PlanError) as err:
        add_item([], "C1", by=CM, now=NOW, **args)  # type: ignore[arg-type]
    assert err.value.key == key


def test_set_changes_fields_and_reports_the_diff() -> None:
    item = new(provider_user=NURSE)
    later = NOW + timedelta(days=1)
    changed, [notice] = set_item(
        item, "C1",
        {"status": "in_place", "provider": "SSIAD Sud", "frequency": "2/j",
         "review": date(2026, 9, 1)},
        by=CM, now=later,
    )
    assert changed.version == 2 and changed.changed_at == later
    assert changed.status is ItemStatus.IN_PLACE
    assert (changed.provider_user, changed.provider_org) == (None, "SSIAD Sud")
    assert isinstance(notice, Notify) and notice.message == "plan.changed"
    assert notice.params["changes"] == [
        {"field": "status", "from": "proposed", "to": "in_place"},
        {"field": "provider", "from": NURSE, "to": "SSIAD Sud"},
        {"field": "frequency", "from": None, "to": "2/j"},
        {"field": "review", "from": None, "to": "2026-09-01"},
    ]
    assert notice.params["item"]["status"] == "in_place"
    json.dumps(notice.params)


def test_set_ignores_unchanged_fields() -> None:
    item = new(frequency="1/j")
    _, [notice] = set_item(item, "C1", {"frequency": "1/j", "status": "done"}, by=CM, now=NOW)
    assert isinstance(notice, Notify)
    assert [c["field"] for c in notice.params["changes"]] == ["status"]


@pytest.mark.parametrize(
    ("changes", "key"),
    [
        ({"status": "maybe"}, "error.plan_bad_status"),
        ({"colour": "red"}, "error.plan_unknown_field"),
        ({"status": "proposed"}, "error.plan_no_change"),
        ({}, "error.plan_no_change"),
        ({"provider": "@x"}, "error.plan_bad_provider"),
    ],
)
def test_set_refuses(changes: dict[str, object], key: str) -> None:
    with pytest.raises(PlanError) as err:
        set_item(new(), "C1", changes, by=CM, now=NOW)
    assert err.value.key == key


def test_closed_items_cannot_change() -> None:
    closed, [notice] = close_item(new(), "C1", by=CM, now=NOW)
    assert closed.closed and closed.version == 2
    assert isinstance(notice, Notify) and notice.message == "plan.closed"
    with pytest.raises(PlanError) as err:
        set_item(closed, "C1", {"status": "done"}, by=CM, now=NOW)
    assert err.value.key == "error.plan_item_closed"
    with pytest.raises(PlanError):
        close_item(closed, "C1", by=CM, now=NOW)


def test_reassign_to_successor() -> None:
    mine = new(provider_user=NURSE)
    other = new([mine], provider_org="SAD Nord")
    moved, effects = reassign([mine, other], "C1", NURSE, "@nurse2:ssiad.example",
                              by=CM, now=NOW)
    assert [i.number for i in moved] == [1]
    assert moved[0].provider_user == "@nurse2:ssiad.example" and moved[0].version == 2
    assert [e.kind for e in effects if isinstance(e, Notify)] == ["plan.update"]


def test_reassign_without_successor_flags_the_items() -> None:
    mine = new(provider_user=NURSE)
    done, _ = set_item(new([mine], provider_user=NURSE), "C1", {"status": "done"},
                       by=CM, now=NOW)
    moved, effects = reassign([mine, done], "C1", NURSE, None, by=CM, now=NOW, mentions=(CM,))
    assert [i.provider_user for i in moved] == [None, None]
    flags = [e for e in effects if isinstance(e, Notify) and e.kind == "continuity.break"]
    assert len(flags) == 1 and flags[0].mentions == (CM,)
    assert [i["number"] for i in flags[0].params["items"]] == [1]  # the done item needs no one
    assert items_without_provider(moved) == [moved[0]]


def test_past_review() -> None:
    a = new(review=date(2026, 4, 1))
    b = new([a], review=date(2026, 4, 2))
    assert items_past_review([a, b, new([a, b])], date(2026, 4, 2)) == [a]


def test_split_provider() -> None:
    assert split_provider("@a:b") == ("@a:b", None)
    assert split_provider(" SAD Nord ") == (None, "SAD Nord")
    assert split_provider("") == (None, None)


OPS = st.lists(
    st.tuples(
        st.sampled_from(["add", "set", "close"]),
        st.integers(min_value=0, max_value=5),  # which item
        st.sampled_from(list(ItemStatus)),
        st.integers(min_value=0, max_value=3),  # minutes since the previous operation
    ),
    max_size=30,
)


@settings(max_examples=200, deadline=None)
@given(ops=OPS, probe=st.integers(min_value=-1, max_value=100))
def test_plan_as_of_is_the_plan_as_it_stood(
    ops: list[tuple[str, int, ItemStatus, int]], probe: int
) -> None:
    versions: list[PlanItem] = []
    live: dict[int, PlanItem] = {}
    snapshots: list[tuple[datetime, list[PlanItem]]] = []
    t = NOW
    for op, which, status, gap in ops:
        t += timedelta(minutes=gap)
        target = live.get(which % len(live) + 1) if live else None
        try:
            if op == "add" or target is None:
                item, _ = add_item(versions, "C1", "n", "a", by=CM, now=t)
            elif op == "set":
                item, _ = set_item(target, "C1", {"status": status}, by=CM, now=t)
            else:
                item, _ = close_item(target, "C1", by=CM, now=t)
        except PlanError:
            continue
        versions.append(item)
        live[item.number] = item
        snapshots.append((t, [live[n] for n in sorted(live)]))
    when = NOW + timedelta(minutes=probe)
    expected = next((s for at, s in reversed(snapshots) if at <= when), [])
    assert plan_as_of(versions, when) == expected
    assert plan_as_of(list(reversed(versions)), when) == expected
    assert current(versions) == (snapshots[-1][1] if snapshots else [])


def test_a_review_date_before_today_is_refused_on_add_and_on_set() -> None:
    today = date(2026, 3, 2)
    with pytest.raises(PlanError) as refused:
        plan.add_item([], "R-1", "Soins", "Pansements", review=date(2025, 3, 2), by="@cm:x", now=NOW, today=today)
    assert refused.value.key == "error.plan_review_past"
    item, _ = plan.add_item([], "R-1", "Soins", "Pansements", review=today, by="@cm:x", now=NOW, today=today)
    later = today + timedelta(days=10)
    with pytest.raises(PlanError):
        plan.set_item(item, "R-1", {"review": date(2026, 3, 11)}, by="@cm:x", now=NOW, today=later)
    # The same (already past) date given again with another change is not a new review date.
    changed, _ = plan.set_item(item, "R-1", {"review": today, "status": "in_place"}, by="@cm:x", now=NOW, today=later)
    assert changed.review == today and changed.status is ItemStatus.IN_PLACE
    cleared, _ = plan.set_item(item, "R-1", {"review": None}, by="@cm:x", now=NOW, today=later)
    assert cleared.review is None
