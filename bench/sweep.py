"""Time the re-evaluation sweep over 100 000 files.

Seeds a fresh database (SQLite by default, or the URL given with --url, e.g.
postgresql+asyncpg://postgres@127.0.0.1:5432/bench — it must be empty) with persons whose due
dates spread over a re-evaluation cycle like a real territory's (most ahead, a few overdue, some
back from hospital, most with a GP), then times full sweeps:

1. the first sweep, which enqueues every prompt current today;
2. the same sweep again on the same day (nothing left to send: the steady hourly cost);
3. the next day's sweep.

    python bench/sweep.py [--persons 100000] [--url …]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import load, verdict
from sqlalchemy import func, insert, select

from hub import heap
from hub.services.reevaluations import PromptSweeper
from hub.storage import migrate
from hub.storage.database import Database
from hub.storage.models import MemberRow, OutboxRow, PersonRow
from hub.storage.models_plan import EvaluationDueRow

NOW = datetime(2026, 6, 1, 6, 0, tzinfo=UTC)
INTERVAL = 182
CHUNK = 10_000


def plan_rows(count: int, today: date) -> tuple[list[dict[str, object]], list[dict[str, object]],
                                                 list[dict[str, object]]]:
    rng = random.Random(42)
    persons, dues, gps = [], [], []
    for pid in range(1, count + 1):
        roll = rng.random()
        # 95 % on their regular cadence, 5 % overdue by one to eight weeks.
        offset = rng.randint(-60, -8) if roll < 0.05 else rng.randint(-7, INTERVAL - 7)
        due = today + timedelta(days=offset)
        last = due - timedelta(days=INTERVAL)
        back = today - timedelta(days=rng.randint(0, 10)) if rng.random() < 0.01 else None
        persons.append({
            "id": pid, "case_ref": f"R-2026-{pid:06d}", "display_name": "x", "referent": f"@cm{pid % 2000}:bench",
            "opened_at": NOW - timedelta(days=400), "setting": "home", "hospital_return_on": back,
        })
        dues.append({"person_id": pid, "next_due": due, "last_done_on": last, "interval_days": INTERVAL})
        if rng.random() < 0.8:
            gps.append({"person_id": pid, "user_id": f"@gp{pid % 5000}:bench", "role": "gp", "since": NOW})
    return persons, dues, gps


async def seed(db: Database, count: int) -> float:
    started = time.perf_counter()
    persons, dues, gps = plan_rows(count, NOW.date())
    async with db.engine.begin() as conn:
        for table, rows in ((PersonRow, persons), (EvaluationDueRow, dues), (MemberRow, gps)):
            for i in range(0, len(rows), CHUNK):
                await conn.execute(insert(table), rows[i:i + CHUNK])
    return time.perf_counter() - started


async def timed(sweeper: PromptSweeper, now: datetime) -> tuple[float, int]:
    started = time.perf_counter()
    count = await sweeper.sweep_reevaluations(now)
    return time.perf_counter() - started, count


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--persons", type=int, default=100_000)
    parser.add_argument("--url", help="an empty database (default: a temporary SQLite file)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.url or f"sqlite+aiosqlite:///{tmp}/bench.db"
        db = Database(url)
        await migrate.upgrade(db.engine)
        seeded = await seed(db, args.persons)
        backend = db.engine.dialect.name
        print(f"{backend}: seeded {args.persons} persons in {seeded:.1f} s")
        heap.settle()  # as `relais run` does once ready: the sweep runs in a settled process
        sweeper = PromptSweeper(db, interval_days=INTERVAL)
        async with db.unit() as uow:
            started = time.perf_counter()
            candidates = await uow.plans.due_candidates(NOW.date() + timedelta(days=14),
                                                        NOW.date() + timedelta(days=7))
            selecting = time.perf_counter() - started
        print(f"{backend}: candidate selection: {len(candidates)} files within 14 days of their due date "
              f"in {selecting * 1000:.0f} ms")
        verdicts = []
        for label, now in (("first sweep", NOW), ("same-day sweep", NOW + timedelta(hours=1)),
                           ("next-day sweep", NOW + timedelta(days=1))):
            cpu = time.process_time()
            seconds, count = await timed(sweeper, now)
            cpu = time.process_time() - cpu
            print(f"{backend}: {label} over {args.persons} persons: {seconds:.2f} s "
                  f"({cpu:.2f} s CPU in this process), {count} prompts enqueued")
            verdicts.append(verdict(f"{label} over {args.persons} files on {backend}", seconds, 1.0, " s",
                                    note=f"{cpu:.2f} s CPU here; {load()}"))
        async with db.unit() as uow:
            queued = (await uow.session.execute(select(func.count()).select_from(OutboxRow))).scalar_one()
        print(f"{backend}: outbox holds {queued} prompts")
        print("\n".join(verdicts))
        await db.close()


if __name__ == "__main__":
    asyncio.run(main())
