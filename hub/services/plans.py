"""Use cases about the care plan (PSI) and evaluations: one unit of work each, effects to the outbox.

The domain's plan notices carry the item as plain data; `present` turns them into nested catalog
messages (an item line, one line per change, statuses as words) so that any client shows them
readably, in HTML and in plain text. Every plan notice leaving this module goes through it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from hub.clock import DEFAULT_TIMEZONE, local_date
from hub.domain import evaluations, plan, team
from hub.domain.effects import Effect, Notify
from hub.domain.evaluations import Evaluation, Reason, Tool
from hub.domain.persons import Person
from hub.domain.plan import PlanError, PlanItem
from hub.storage.database import UnitOfWork
from hub.storage.repos_plan import DueRecord

Message = dict[str, Any]


# --- presentation ---------------------------------------------------------------------------

def _word(group: str, value: object) -> Message | None:
    return None if value is None else {"key": f"{group}.{value}"}


def provider_message(user: str | None, org: str | None) -> Any:
    """A professional (a pill), an organisation, both, or None when the item has no provider."""
    if user and org:
        return {"key": "plan.provider_both", "params": {"user": user, "organisation": org}}
    return user or org or None


def item_message(item: Mapping[str, Any]) -> Message:
    """One item as a nested catalog message (`plan.item`), from `plan.item_as_params`; fields
    with no value are left out of the line."""
    params = {name: item.get(name) for name in ("number", "need", "action", "frequency", "start", "review", "status")}
    if "provider_user" in item or "provider_org" in item:
        params["provider"] = provider_message(item.get("provider_user"), item.get("provider_org"))
    else:
        params["provider"] = item.get("provider")
    return {"key": "plan.item", "params": params}


def _provider_text(text: Any) -> Any:
    """`@nurse:server (Org)` as stored in a change → a pill and the organisation."""
    if not isinstance(text, str):
        return text
    user, sep, org = text.partition(" (")
    if sep and user.startswith("@") and org.endswith(")"):
        return provider_message(user, org[:-1])
    return text


def change_message(change: Mapping[str, Any]) -> Message:
    field = change["field"]
    before, after = change.get("from"), change.get("to")
    if field == "status":
        before, after = _word("status", before), _word("status", after)
    if field == "provider":
        before, after = _provider_text(before), _provider_text(after)
    return {"key": f"plan.change.{field}", "params": {"from": before, "to": after}}


def present(effect: Effect) -> Effect:
    """A plan notice made readable; anything else unchanged."""
    if not isinstance(effect, Notify) or (effect.kind != plan.KIND and effect.message != "plan.provider_lost"
                                          and not effect.message.startswith("break.")):
        return effect
    params = dict(effect.params)
    item = params.get("item")
    if isinstance(item, Mapping):
        params["number"] = item.get("number")
        params["item"] = item_message(item)
    params["changes"] = [change_message(c) for c in params.get("changes") or ()]
    if isinstance(params.get("items"), list):
        params["items"] = [item_message(i) for i in params["items"]]
    return replace(effect, params=params)


def _with_provider_mention(effect: Effect, item: PlanItem) -> Effect:
    """A professional given an item is mentioned, so their client tells them."""
    if isinstance(effect, Notify) and item.provider_user and item.provider_user not in effect.mentions:
        return replace(effect, mentions=(*effect.mentions, item.provider_user))
    return effect


# --- plan -----------------------------------------------------------------------------------

def _today(now: datetime, tz: ZoneInfo | None) -> date:
    return local_date(now, tz or ZoneInfo(DEFAULT_TIMEZONE))


def _find(items: Iterable[PlanItem], number: int) -> PlanItem:
    found = next((i for i in items if i.number == number), None)
    if found is None:
        raise PlanError("error.plan_no_item", item=number)
    return found


async def _check_provider(uow: UnitOfWork, case_ref: str, provider: str | None) -> None:
    user, _org = plan.split_provider(provider)
    if user is not None and team.find(await uow.team.members(case_ref), user) is None:
        raise PlanError("error.plan_provider_not_member", user=user)


async def add_item(
    uow: UnitOfWork, person: Person, need: str, action: str, *, provider: str | None, frequency: str | None,
    start: date | None, review: date | None, by: str, now: datetime, tz: ZoneInfo | None = None,
) -> list[Effect]:
    """`!plan add`; `tz` is the territory's zone, whose date a review date may not precede."""
    ref = person.case_ref
    await uow.persons.lock(ref)
    user, org = plan.split_provider(provider)
    await _check_provider(uow, ref, provider)
    item, effects = plan.add_item(
        await uow.plans.items(ref), ref, need, action, provider_user=user, provider_org=org,
        frequency=frequency, start=start, review=review, by=by, now=now, today=_today(now, tz),
    )
    await uow.plans.save(ref, item)
    return [_with_provider_mention(present(e), item) for e in effects]


async def set_item(
    uow: UnitOfWork, person: Person, number: int, changes: Mapping[str, object], *, by: str, now: datetime,
    tz: ZoneInfo | None = None,
) -> list[Effect]:
    ref = person.case_ref
    await uow.persons.lock(ref)
    item = _find(await uow.plans.items(ref), number)
    provider = changes.get("provider")
    if isinstance(provider, str):
        await _check_provider(uow, ref, provider)
    new, effects = plan.set_item(item, ref, changes, by=by, now=now, today=_today(now, tz))
    await uow.plans.save(ref, new)
    if new.provider_user != item.provider_user:
        effects = [_with_provider_mention(e, new) for e in effects]
    return [present(e) for e in effects]


async def close_item(uow: UnitOfWork, person: Person, number: int, *, by: str, now: datetime) -> list[Effect]:
    ref = person.case_ref
    await uow.persons.lock(ref)
    new, effects = plan.close_item(_find(await uow.plans.items(ref), number), ref, by=by, now=now)
    await uow.plans.save(ref, new)
    return [present(e) for e in effects]


@dataclass(frozen=True)
class PlanView:
    open: list[PlanItem]
    closed: list[PlanItem]


async def view(uow: UnitOfWork, person: Person, as_of: date | None = None, tz: ZoneInfo | None = None) -> PlanView:
    """The plan now, or as it stood at the end of `as_of`, a territory's day (`tz`, SPEC §5): a change
    made at 00:30 in Paris on the 2nd is not in the plan of the 1st, though it was still the 1st in UTC."""
    if as_of is None:
        items = await uow.plans.items(person.case_ref)
    else:
        zone = tz or ZoneInfo(DEFAULT_TIMEZONE)
        # The first instant of the next local day (a DST change shifts it from midnight UTC+1).
        end = datetime.combine(as_of + timedelta(days=1), time(), zone).astimezone(UTC) - timedelta(microseconds=1)
        items = plan.plan_as_of(await uow.plans.versions(person.case_ref), end)
    return PlanView([i for i in items if not i.closed], [i for i in items if i.closed])


def item_lines(items: Iterable[PlanItem]) -> list[Message]:
    return [item_message(plan.item_as_params(i)) for i in items]


# --- evaluations ----------------------------------------------------------------------------

def due_date(record: DueRecord) -> date:
    """The evaluation due date of a file: `evaluations.next_due`, from the cached parts.

    The cached `next_due` already holds the evaluation part (opening day or last + interval); a
    hospital return not followed by an evaluation brings it forward to within 7 days.
    """
    due = record.next_due if record.next_due is not None else record.opened_on
    back = record.hospital_return
    if back is not None and (record.last_done_on is None or record.last_done_on < back):
        due = min(due, back + timedelta(days=evaluations.HOSPITAL_RETURN_DAYS))
    return due


@dataclass(frozen=True)
class EvaluationStatus:
    last: Evaluation | None
    due: date


async def evaluation_status(uow: UnitOfWork, person: Person) -> EvaluationStatus:
    record = await uow.plans.due_of(person.case_ref)
    assert record is not None, "the person exists"
    return EvaluationStatus(await uow.plans.last_evaluation(person.case_ref), due_date(record))


def parse_tool(text: str | None, gir: int | None, grid: str | None = None) -> Tool | str:
    """Case-insensitive tool name; AGGIR when only a GIR or a grid is given, else interRAI-HC (France)."""
    if text is None:
        return Tool.AGGIR if gir is not None or grid is not None else Tool.INTERRAI_HC
    by_lower = {t.value.lower(): t for t in Tool} | {"interrai": Tool.INTERRAI_HC, "autre": Tool.OTHER}
    return by_lower.get(text.strip().lower(), text)


async def record_evaluation(
    uow: UnitOfWork, person: Person, when: date | None, *, tool: str | None, reason: str | None,
    gir: int | None, by: str, now: datetime, interval_days: int, tz: ZoneInfo,
    grid: str | None = None,
) -> tuple[Evaluation, EvaluationStatus]:
    """Record an evaluation; "today" and the file's opening day are the territory's dates (`tz`)."""
    zone = tz
    today = local_date(now, zone)
    ref = person.case_ref
    await uow.persons.lock(ref)
    last = await uow.plans.last_evaluation(ref)
    on = when or today
    before = last if last is None or last.date <= on else await uow.plans.last_evaluation(ref, on=on)
    chosen: Reason | str = reason if reason is not None else evaluations.default_reason(
        before, person.hospital_return, on)
    evaluation = evaluations.record(on, parse_tool(tool, gir, grid), chosen, gir, by,
                                    today=today, grid=grid)
    await uow.plans.add_evaluation(ref, evaluation, now)
    latest = evaluation if last is None or evaluation.date >= last.date else last
    opened_on = local_date(person.opened_at, zone)
    await uow.plans.set_due(ref, evaluations.next_due(latest, opened_on, interval_days), latest.date, interval_days)
    due = evaluations.next_due(latest, opened_on, interval_days, person.hospital_return)
    return evaluation, EvaluationStatus(latest, due)


async def count_overdue(uow: UnitOfWork, referent: str, today: date) -> int:
    """The referent's open files whose evaluation due date has gone by."""
    return sum(1 for record in await uow.plans.due_of_referent(referent) if due_date(record) < today)
