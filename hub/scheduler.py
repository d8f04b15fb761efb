"""Periodic sweeps on APScheduler: a few interval jobs, never one job per person.

Each job reads the time from the injected Clock, so tests move a FakeClock and call the sweep
services directly instead of waiting. When a job is next due is kept in the database (in the
clock's time): after a restart the first run comes when it was due, at once if that time went
by while the hub was down, so missed prompts are sent late rather than dropped, and frequent
restarts never starve the sweeps.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from hub.clock import Clock
from hub.services.reevaluations import PromptSweeper
from hub.storage.database import Database

log = logging.getLogger(__name__)

SWEEP_INTERVAL_S = 3600.0  # prompts are about days: an hourly pass is plenty


@dataclass(frozen=True)
class Job:
    name: str
    run: Callable[[datetime], Awaitable[int]]
    interval_s: float


class Scheduler:
    def __init__(self, db: Database, clock: Clock, sweeper: PromptSweeper,
                 interval_s: float = SWEEP_INTERVAL_S, extra_jobs: Sequence[Job] = ()) -> None:
        """`extra_jobs`: the other features' sweeps (handover reminders, consent…)."""
        self.db = db
        self.clock = clock
        self.sweeper = sweeper
        self.jobs = (
            Job("reevaluations", sweeper.sweep_reevaluations, interval_s),
            Job("plan-reviews", sweeper.sweep_reviews, interval_s),
            *extra_jobs,
        )
        self._aps: AsyncIOScheduler | None = None
        self._running: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        await self.sweeper.reconcile()
        self._aps = AsyncIOScheduler(timezone=UTC, job_defaults={
            "coalesce": True,  # runs missed while the loop was busy make one run, not a burst
            "max_instances": 1,  # a slow sweep is never overlapped by the next one
            "misfire_grace_time": None,  # late is better than never
        })
        wall = datetime.now(UTC)
        for job in self.jobs:
            delay = await self._delay(job)
            self._aps.add_job(self._run, "interval", args=(job,), seconds=job.interval_s, id=job.name,
                              name=job.name, next_run_time=wall + delay)
            log.info("sweep %s: first run in %.0f s, then every %.0f s", job.name, delay.total_seconds(),
                     job.interval_s)
        self._aps.start()

    async def _delay(self, job: Job) -> timedelta:
        now = self.clock.now()
        async with self.db.unit() as uow:
            stored = await uow.kv.get(_key(job))
            if stored is None:  # first start on this database: nothing can have been missed
                await uow.kv.set(_key(job), (now + timedelta(seconds=job.interval_s)).isoformat())
                return timedelta(seconds=job.interval_s)
        wait = datetime.fromisoformat(stored) - now
        return max(timedelta(0), min(wait, timedelta(seconds=job.interval_s)))

    async def run_now(self) -> int:
        """Every sweep once, now (by the clock); what the jobs do, for tests and operators."""
        return sum([await self._run(job) for job in self.jobs])

    async def _run(self, job: Job) -> int:
        task = asyncio.current_task()
        if task is not None:
            self._running.add(task)
        now = self.clock.now()
        try:
            count = await job.run(now)
            async with self.db.unit() as uow:
                await uow.kv.set(_key(job), (now + timedelta(seconds=job.interval_s)).isoformat())
            return count
        except asyncio.CancelledError:
            raise
        except Exception:
            ref = secrets.token_hex(4)
            log.exception("sweep %s failed (reference %s); it runs again at the next interval", job.name, ref)
            return 0
        finally:
            if task is not None:
                self._running.discard(task)

    async def stop(self) -> None:
        if self._aps is not None and self._aps.running:
            self._aps.shutdown(wait=False)
        self._aps = None
        running = [t for t in self._running if t is not asyncio.current_task()]
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)


def _key(job: Job) -> str:
    return f"sweep:{job.name}:next_at"
