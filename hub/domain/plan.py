"""The PSI (plan de services individualisé): the needs of the person and who meets them.

Items are never edited in place: every change makes a new version, and every version is kept,
so the plan can be shown as it stood on any date (`plan_as_of`). Item numbers are 1-based and
stable for the life of the case; a closed item keeps its number.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from hub.domain import limits
from hub.domain.effects import Effect, Notify
from hub.domain.errors import DomainError

KIND = "plan.update"


class ItemStatus(StrEnum):
    PROPOSED = "proposed"
    IN_PLACE = "in_place"
    REFUSED = "refused"
    UNAVAILABLE = "unavailable"  # the need is real but no service can meet it: an unmet need
    DONE = "done"


# An item in one of these states still needs someone to act on it.
NEEDING_PROVIDER = frozenset({ItemStatus.PROPOSED, ItemStatus.IN_PLACE, ItemStatus.UNAVAILABLE})

SETTABLE = ("status", "provider", "frequency", "review")


class PlanError(DomainError):
    """A refused plan change; `key` is the catalog message the user reads."""


@dataclass(frozen=True)
class PlanItem:
    number: int
    need: str
    action: str
    provider_user: str | None
    provider_org: str | None
    frequency: str | None
    start: date | None
    review: date | None
    status: ItemStatus
    closed: bool
    changed_by: str
    changed_at: datetime
    version: int

    @property
    def provider(self) -> str | None:
        """One readable provider: the professional, with their organisation if known."""
        if self.provider_user and self.provider_org:
            return f"{self.provider_user} ({self.provider_org})"
        return self.provider_user or self.provider_org


def item_as_params(item: PlanItem) -> dict[str, Any]:
    """The item as plain JSON values, for notices and renderers."""
    return {
        "number": item.number,
        "need": item.need,
        "action": item.action,
        "provider": item.provider,
        "provider_user": item.provider_user,
        "provider_org": item.provider_org,
        "frequency": item.frequency,
        "start": _iso(item.start),
        "review": _iso(item.review),
        "status": item.status.value,
        "closed": item.closed,
        "changed_by": item.changed_by,
        "changed_at": item.changed_at.isoformat(),
        "version": item.version,
    }


def split_provider(text: str | None) -> tuple[str | None, str | None]:
    """`--provider` takes a Matrix user (`@nurse:server`) or an organisation's name."""
    text = _clean(text)
    if text is None:
        return None, None
    if text.startswith("@"):
        local, sep, server = text[1:].partition(":")
        if not (local and sep and server) or any(c.isspace() for c in text):
            raise PlanError("error.plan_bad_provider", provider=text)
        return text, None
    return None, text


def add_item(
    existing: Sequence[PlanItem],
    case_ref: str,
    need: str,
    action: str,
    *,
    provider_user: str | None = None,
    provider_org: str | None = None,
    frequency: str | None = None,
    start: date | None = None,
    review: date | None = None,
    by: str,
    now: datetime,
    today: date | None = None,
) -> tuple[PlanItem, list[Effect]]:
    """A new item, numbered after every item the case ever had (`existing` may hold versions).

    `today` (the territory's date): a review date before it is refused, see `_check_review`."""
    need_text, action_text = _clean(need), _clean(action)
    if need_text is None:
        raise PlanError("error.plan_empty", field="need")
    if action_text is None:
        raise PlanError("error.plan_empty", field="action")
    limits.check("need", need_text)
    limits.check("action", action_text)
    limits.check("provider", _clean(provider_org))
    limits.check("frequency", _clean(frequency))
    user = _clean(provider_user)
    if user is not None:
        split_provider(user)  # validates the Matrix id
    _check_dates(start, review)
    _check_review(review, today)
    item = PlanItem(
        number=max((i.number for i in existing), default=0) + 1,
        need=need_text,
        action=action_text,
        provider_user=user,
        provider_org=_clean(provider_org),
        frequency=_clean(frequency),
        start=start,
        review=review,
        status=ItemStatus.PROPOSED,
        closed=False,
        changed_by=by,
        changed_at=now,
        version=1,
    )
    return item, [_notice(case_ref, "plan.added", item, by, [])]


def set_item(
    item: PlanItem,
    case_ref: str,
    changes: Mapping[str, object],
    *,
    by: str,
    now: datetime,
    today: date | None = None,
) -> tuple[PlanItem, list[Effect]]:
    """Change status, provider, frequency or review date.

    `changes` maps a field of `SETTABLE` to its new value: `status` a status name, `provider`
    a Matrix user or organisation name (None or "" removes it), `frequency` text or None,
    `review` a date or None. Values equal to the current ones are ignored; if nothing is left
    the change is refused, as are unknown fields or statuses and closed items, and a new review
    date before `today` (the territory's date).
    """
    if item.closed:
        raise PlanError("error.plan_item_closed", item=item.number)
    unknown = sorted(set(changes) - set(SETTABLE))
    if unknown:
        raise PlanError("error.plan_unknown_field", field=unknown[0], fields=", ".join(SETTABLE))
    new = item
    if "status" in changes:
        new = replace(new, status=_status(changes["status"]))
    if "provider" in changes:
        value = changes["provider"]
        if value is not None and not isinstance(value, str):
            raise PlanError("error.plan_bad_provider", provider=str(value))
        user, org = split_provider(value)
        new = replace(new, provider_user=user, provider_org=org)
    if "frequency" in changes:
        value = changes["frequency"]
        if value is not None and not isinstance(value, str):
            raise PlanError("error.plan_bad_value", field="frequency", value=str(value))
        new = replace(new, frequency=_clean(value))
    if "review" in changes:
        value = changes["review"]
        if value is not None and (not isinstance(value, date) or isinstance(value, datetime)):
            raise PlanError("error.plan_bad_value", field="review", value=str(value))
        new = replace(new, review=value)
        _check_dates(new.start, new.review)
        if value != item.review:
            _check_review(new.review, today)
    limits.check("provider", new.provider_org)
    limits.check("frequency", new.frequency)
    diff = _diff(item, new)
    if not diff:
        raise PlanError("error.plan_no_change", item=item.number)
    new = replace(new, changed_by=by, changed_at=now, version=item.version + 1)
    return new, [_notice(case_ref, "plan.changed", new, by, diff)]


def close_item(
    item: PlanItem, case_ref: str, *, by: str, now: datetime
) -> tuple[PlanItem, list[Effect]]:
    if item.closed:
        raise PlanError("error.plan_item_closed", item=item.number)
    new = replace(item, closed=True, changed_by=by, changed_at=now, version=item.version + 1)
    return new, [_notice(case_ref, "plan.closed", new, by, _diff(item, new))]


def reassign(
    items: Iterable[PlanItem],
    case_ref: str,
    from_user: str,
    to_user: str | None,
    *,
    by: str,
    now: datetime,
    mentions: tuple[str, ...] = (),
    automatic: bool = False,
) -> tuple[list[PlanItem], list[Effect]]:
    """Pass the open items of a leaving professional to their successor (SPEC §6).

    Each changed item's notice mentions the successor. `automatic`: the change is Relais's
    own (the professional left the room by themselves), not made by `by`.

    `items` are the current versions. Without a successor the items lose their named
    provider and, for those still needing one, a `continuity.break` notice flags them.
    The organisation, if any, is kept: it has not left.
    """
    if to_user == from_user:
        return [], []
    if to_user is not None:
        split_provider(to_user)
    changed: list[PlanItem] = []
    effects: list[Effect] = []
    for item in items:
        if item.closed or item.provider_user != from_user:
            continue
        new = replace(
            item, provider_user=to_user, changed_by=by, changed_at=now, version=item.version + 1
        )
        changed.append(new)
        notice = _notice(case_ref, "plan.changed_auto" if automatic else "plan.changed", new, by, _diff(item, new))
        effects.append(replace(notice, mentions=(to_user,)) if to_user is not None else notice)
    if to_user is None:
        lost = [item_as_params(i) for i in changed if i.status in NEEDING_PROVIDER]
        if lost:
            effects.append(Notify(
                "continuity.break", case_ref, "plan.provider_lost",
                {"user": from_user, "by": by, "items": lost}, mentions,
            ))
    return changed, effects


def current(versions: Iterable[PlanItem]) -> list[PlanItem]:
    """The latest version of each item, by number."""
    latest: dict[int, PlanItem] = {}
    for v in versions:
        seen = latest.get(v.number)
        if seen is None or v.version > seen.version:
            latest[v.number] = v
    return [latest[n] for n in sorted(latest)]


def plan_as_of(versions: Iterable[PlanItem], when: datetime) -> list[PlanItem]:
    """The plan as it stood at `when`: each item's latest version changed at or before it.

    Items added later are absent; items closed by then are present with `closed=True`.
    """
    return current(v for v in versions if v.changed_at <= when)


def items_without_provider(items: Iterable[PlanItem]) -> list[PlanItem]:
    """Open items that still need someone and have neither a professional nor an organisation."""
    return [
        i for i in items
        if not i.closed and i.status in NEEDING_PROVIDER
        and i.provider_user is None and i.provider_org is None
    ]


def items_past_review(items: Iterable[PlanItem], today: date) -> list[PlanItem]:
    """Open items whose review date has gone by (the review day itself is not yet past)."""
    return [i for i in items if not i.closed and i.review is not None and i.review < today]


def _notice(
    case_ref: str, message: str, item: PlanItem, by: str, changes: list[dict[str, Any]]
) -> Notify:
    return Notify(KIND, case_ref, message,
                  {"by": by, "item": item_as_params(item), "changes": changes})


def _diff(old: PlanItem, new: PlanItem) -> list[dict[str, Any]]:
    fields: list[tuple[str, object, object]] = [
        ("status", old.status.value, new.status.value),
        ("provider", old.provider, new.provider),
        ("frequency", old.frequency, new.frequency),
        ("review", _iso(old.review), _iso(new.review)),
        ("closed", old.closed, new.closed),
    ]
    return [{"field": f, "from": a, "to": b} for f, a, b in fields if a != b]


def _status(value: object) -> ItemStatus:
    try:
        return ItemStatus(str(value).strip())
    except ValueError:
        raise PlanError(
            "error.plan_bad_status", status=str(value), allowed=", ".join(ItemStatus)
        ) from None


def _check_dates(start: date | None, review: date | None) -> None:
    if start is not None and review is not None and review < start:
        raise PlanError("error.plan_review_before_start",
                        start=start.isoformat(), review=review.isoformat())


def _check_review(review: date | None, today: date | None) -> None:
    """A review date is when someone will check the item still meets the need: one already gone by
    would only make the provider's "review date passed" prompt go out at once (a typo, usually
    the year). Refused with what was typed, like any bad date (SPEC §4); today itself is fine."""
    if review is not None and today is not None and review < today:
        raise PlanError("error.plan_review_past", review=review.isoformat(), today=today.isoformat())


def _clean(text: str | None) -> str | None:
    if text is None:
        return None
    text = text.strip()
    return text or None


def _iso(d: date | None) -> str | None:
    return None if d is None else d.isoformat()
