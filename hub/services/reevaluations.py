"""The periodic sweeps: re-evaluation prompts and plan items past their review date.

Nothing is scheduled per person. A sweep selects, through indexes, the files whose due date is
near (or the items whose review date has gone by), then works in batches: each batch re-reads
its rows, asks the pure rules which prompts are current and not yet sent, and records the sent
occasions with the outbox entries in one transaction. So a prompt is enqueued once per
(case, occasion) whatever the restarts, and one missed while the hub was down is sent late by
the next sweep, once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import fields
from datetime import date, datetime, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from hub.clock import DEFAULT_TIMEZONE, local_date
from hub.domain import reevaluation, team
from hub.domain.effects import Notify
from hub.domain.evaluations import HOSPITAL_RETURN_DAYS, next_due
from hub.domain.plan import ItemStatus
from hub.domain.reevaluation import DueRow
from hub.domain.team import Member, Role
from hub.services.plans import due_date, item_message
from hub.storage.database import Database, UnitOfWork
from hub.storage.repos_plan import DueRecord, ReviewRecord

log = logging.getLogger(__name__)

REVIEW_KIND = "plan.review"
#: Files per unit of work on SQLite, where a unit holds the only write lock: ≈ 60 ms each here,
#: so an hourly sweep never holds a hospital message's storage back for longer.
BATCH = 1000
#: Files per unit of work on PostgreSQL, where a unit locks only its own rows: fewer round trips
#: (bench/sweep.py over 100 000 files: same-day 0.85 → 0.63 s, next day 1.29 → 0.88 s).
BATCH_SERVER = 5000
#: Units of work in flight at once on PostgreSQL: one batch is computed here while the server
#: writes the one before (batches hold disjoint files, so they never wait on each other's rows;
#: 100 000 files, first sweep 1.12–1.20 → 1.05–1.11 s, next day 0.57–0.65 → 0.45–0.50 s).
SERVER_UNITS = 2


T = TypeVar("T")


def prompt_key(case_ref: str, occasion: str) -> str:
    """The outbox key of a prompt: what `enqueue(uow, f"prompt:{case_ref}:{occasion}", [notice])` makes."""
    return f"prompt:{case_ref}:{occasion}:0"


_NOTIFY_FIELDS = tuple(f.name for f in fields(Notify))


def notice_payload(notice: Notify) -> dict[str, Any]:
    """The outbox payload of a notice, as `services.outbox.enqueue` writes it (`asdict`, without
    its deep copy: the sweep's parameters are fresh scalars, and deep-copying 17 000 of them was
    a third of a first sweep's time)."""
    payload = {name: getattr(notice, name) for name in _NOTIFY_FIELDS}
    payload["params"] = dict(notice.params)
    payload["mentions"] = list(notice.mentions)
    return payload


def chunks(values: Sequence[T], size: int) -> Iterable[Sequence[T]]:
    for start in range(0, len(values), size):
        yield values[start:start + size]


def review_occasion(record: ReviewRecord) -> str:
    assert record.item.review is not None
    return f"review:{record.item.number}:{record.item.review.isoformat()}"


def review_prompts(records: Iterable[ReviewRecord], today: date, sent: set[tuple[str, str]]) -> list[Notify]:
    """Items whose review date has gone by prompt their provider (and the case manager), once
    per review date: setting a new review date makes a new occasion. Pure."""
    out: list[Notify] = []
    for record in records:
        item = record.item
        if item.closed or item.review is None or item.review >= today:
            continue
        if item.status in (ItemStatus.DONE, ItemStatus.REFUSED):
            continue  # nothing left to review: an item carried out or refused is not asked about
        occasion = review_occasion(record)
        if (record.case_ref, occasion) in sent:
            continue
        mentions = tuple(dict.fromkeys(u for u in (item.provider_user, record.referent) if u))
        params: dict[str, Any] = {
            "number": item.number, "review": item.review.isoformat(), "days": (today - item.review).days,
            "provider": item.provider, "occasion": occasion,
            "item": item_message({"number": item.number, "need": item.need, "action": item.action,
                                  "provider_user": item.provider_user, "provider_org": item.provider_org,
                                  "frequency": item.frequency,
                                  "start": item.start and item.start.isoformat(), "review": item.review.isoformat(),
                                  "status": item.status.value}),
        }
        out.append(Notify(REVIEW_KIND, record.case_ref, "plan.review_due", params, mentions))
    return out


class PromptSweeper:
    def __init__(self, db: Database, *, interval_days: int, batch_size: int | None = None,
                 on_enqueued: Callable[[], None] | None = None, tz: ZoneInfo | None = None) -> None:
        self.tz = tz or ZoneInfo(DEFAULT_TIMEZONE)  # "today" is the territory's date (SPEC §5)
        self.db = db
        self.interval_days = interval_days
        self.batch_size = batch_size or (BATCH if db.single_writer else BATCH_SERVER)
        self.concurrency = 1 if db.single_writer else SERVER_UNITS
        self.on_enqueued = on_enqueued or (lambda: None)

    async def reconcile(self) -> int:
        """Recompute the cached due dates made with another interval (the configuration changed)."""
        async with self.db.unit() as uow:
            stale = await uow.plans.stale_intervals(self.interval_days)
        for rows in chunks(stale, self.batch_size):
            async with self.db.unit() as uow:
                await uow.plans.update_due_dates(
                    (pid, last + timedelta(days=self.interval_days), self.interval_days) for pid, last in rows)
        if stale:
            log.info("re-evaluation due dates recomputed for %d files (interval %d days)",
                     len(stale), self.interval_days)
        return len(stale)

    async def sweep(self, now: datetime) -> int:
        return await self.sweep_reevaluations(now) + await self.sweep_reviews(now)

    async def sweep_reevaluations(self, now: datetime) -> int:
        """Enqueue the re-evaluation prompts current on `now`'s date; returns how many."""
        today = local_date(now, self.tz)
        async with self.db.unit() as uow:
            ids = await uow.plans.due_candidates(
                today + timedelta(days=reevaluation.UPCOMING_DAYS),
                today + timedelta(days=reevaluation.UPCOMING_DAYS - HOSPITAL_RETURN_DAYS),
            )
        return await self._batches(ids, lambda uow, batch: self._reevaluation_batch(uow, batch, now), "re-evaluation")

    async def sweep_reviews(self, now: datetime) -> int:
        """Enqueue the prompts for plan items past their review date; returns how many."""
        async with self.db.unit() as uow:
            ids = await uow.plans.review_candidates(local_date(now, self.tz))
        return await self._batches(ids, lambda uow, batch: self._review_batch(uow, batch, now), "plan review")

    async def _batches(self, ids: Sequence[int], work: Callable[[UnitOfWork, Sequence[int]], Any],
                       what: str) -> int:
        async def one(batch: Sequence[int]) -> int:
            try:
                async with self.db.unit() as uow:
                    return int(await work(uow, batch))
            except Exception:
                # One bad batch (e.g. a concurrent sweep) must not stop the others; it is retried next sweep.
                log.exception("%s sweep: a batch of %d failed; retried at the next sweep", what, len(batch))
                return 0

        total = 0
        pending: set[asyncio.Task[int]] = set()
        for batch in chunks(ids, self.batch_size):
            if len(pending) >= self.concurrency:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                total += sum(task.result() for task in done)
            pending.add(asyncio.ensure_future(one(batch)))
        total += sum(await asyncio.gather(*pending))
        if total:
            log.info("%s sweep: %d prompt(s) enqueued", what, total)
            self.on_enqueued()
        return total

    def _opened_on(self, record: DueRecord) -> date:
        return local_date(record.opened_at, self.tz) if record.opened_at is not None else record.opened_on

    async def _reevaluation_batch(self, uow: UnitOfWork, batch: Sequence[int], now: datetime) -> int:
        today = local_date(now, self.tz)
        records = await uow.plans.due_batch(batch)
        missing = [r for r in records if r.next_due is None]
        if missing:  # a file opened without its cached row: due from its opening day
            await uow.plans.create_due_rows(
                (r.person_id, next_due(None, self._opened_on(r), self.interval_days), self.interval_days)
                for r in missing)
        pending: list[tuple[DueRecord, date, tuple[str, str]]] = []
        for r in records:
            due = due_date(r)
            prompt = reevaluation.prompt_for(due, today)
            if prompt is not None:
                pending.append((r, due, (r.case_ref, prompt[1])))
        sent = await uow.plans.sent_among(key for _, _, key in pending)
        # The GPs (the mentions) only of the files with a prompt to send: in the hourly steady
        # state every current prompt is already sent, and this read is skipped.
        pending = [p for p in pending if p[2] not in sent]
        gps = await uow.plans.gps_of([r.person_id for r, _, _ in pending]) if pending else {}
        rows = [DueRow(r.case_ref, due, team.mentions_for([Member(gp, Role.GP, now) for gp in gps.get(r.person_id, ())],
                                                            r.referent))
                for r, due, _ in pending]
        notices = reevaluation.sweep(rows, today, sent)
        return await self._enqueue(uow, notices, now)

    async def _review_batch(self, uow: UnitOfWork, batch: Sequence[int], now: datetime) -> int:
        records = await uow.plans.review_batch(batch)
        sent = await uow.plans.sent_among((r.case_ref, review_occasion(r)) for r in records if r.item.review)
        return await self._enqueue(uow, review_prompts(records, local_date(now, self.tz), sent), now)

    async def _enqueue(self, uow: UnitOfWork, notices: Sequence[Notify], now: datetime) -> int:
        keys = [(n.case_ref, str(n.params["occasion"])) for n in notices]
        await uow.plans.record_sent(keys, now)
        await uow.plans.enqueue_notices(
            ((prompt_key(ref, occasion), ref, notice_payload(notice))
             for notice, (ref, occasion) in zip(notices, keys, strict=True)), now)
        return len(notices)
