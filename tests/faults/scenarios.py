"""Fault scenarios, each returning its figures; the tests run them with a small N, the figures
script (bench/reliability.py) with a larger one. The invariant is the same everywhere:
every acknowledged alert and every accepted command gave exactly one notice, none twice."""

from __future__ import annotations

import asyncio
import random
import re
import sqlite3
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.engine import make_url

from hub.devserver import DevSynapse
from hub.storage.models import DeskRow, PersonRow
from tests.faults.harness import (
    Hospital,
    World,
    expected_alert_kinds,
    outbox_failed,
    tally,
    until,
)
from tests.faults.proxy import FaultProxy
from tests.hub_harness import is_notice
from tests.matrix_helpers import admin, admin_token, delete_room, wait_for_event

ALERT_KINDS = ("alert.admission", "alert.discharge", "handover.setting")


@dataclass
class Figures:
    name: str
    alerts_acked: int = 0
    commands_sent: int = 0
    notices: Counter[str] = field(default_factory=Counter)
    expected: Counter[str] = field(default_factory=Counter)
    plan_items_once: bool = False
    cycles: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def alert_notices(self) -> int:
        return sum(self.notices[k] for k in ALERT_KINDS)

    @property
    def command_notices(self) -> int:
        return self.notices["plan.update"]

    @property
    def ok(self) -> bool:
        return not self.problems


async def check(world: World, hospital: Hospital, name: str, **extra: Any) -> Figures:
    """Wait until everything is claimed and sent, then count what the GP's client sees."""
    await world.settle()
    notices = await world.notices("gp")
    counts = tally(notices)
    figures = Figures(name, alerts_acked=len(set(hospital.acked)), commands_sent=len(world.commands),
                      notices=Counter({k: counts[k] for k in (*ALERT_KINDS, "plan.update", "command.error",
                                                               "<undecryptable>")}),
                      expected=expected_alert_kinds(hospital), extra=extra)
    for kind in ALERT_KINDS:
        if counts[kind] != figures.expected[kind]:
            figures.problems.append(f"{kind}: {counts[kind]} notices for {figures.expected[kind]} expected")
    plan_bodies = [body for kind, _case, body in notices if kind == "plan.update"]
    if len(plan_bodies) != len(world.needs):
        figures.problems.append(f"plan.update: {len(plan_bodies)} notices for {len(world.needs)} commands")
    once = [need for need in world.needs if sum(need in b for b in plan_bodies) == 1]
    if len(once) != len(world.needs):
        figures.problems.append(f"{len(world.needs) - len(once)} plan items not announced exactly once")
    for bad in ("command.error", "<undecryptable>"):
        if counts[bad]:
            figures.problems.append(f"{counts[bad]} {bad} notices")
    failed = await outbox_failed(world.db)
    if failed:
        figures.problems.append(f"outbox entries failed for good: {failed}")
    # State: the plan, as the hub now holds it, has each item once.
    async with world.db.unit() as uow:
        items = await uow.plans.items(world.case_ref)
    held = Counter(item.need for item in items)
    figures.plan_items_once = all(held[need] == 1 for need in world.needs) and len(items) == len(world.needs)
    if not figures.plan_items_once:
        figures.problems.append(f"plan state: {dict(held)} for {len(world.needs)} commands")
    return figures


# ------------------------------------------------------------------ hub killed (SIGKILL), N times


async def crash_loop(world: World, cycles: int, alerts_per_cycle: int = 4, commands_per_cycle: int = 2,
                     seed: int = 7, max_delay_s: float = 2.5, files_every: int = 0) -> Figures:
    """Kill the hub with SIGKILL at a random point of a burst (or of its own start), restart it.

    The burst mixes hospital messages (alert + setting handover notices) with `!plan add` commands
    and, every `files_every` cycles (0: never), a new file opened from the desk — its room is
    created by the outbox, so a kill may fall between the createRoom and its record."""
    rng = random.Random(seed)
    hospital = Hospital(world.mllp_port)
    during_start = 0
    files: list[str] = []
    for cycle in range(cycles):
        hospital.add(alerts_per_cycle)

        async def commands(cycle: int = cycle) -> None:
            if files_every and cycle % files_every == 0:
                files.append(await world.open_file(f"Personne C{cycle:03d}"))
            for i in range(commands_per_cycle):
                await world.plan_add(f"c{cycle:03d}i{i:03d}")

        burst = asyncio.gather(hospital.deliver(), commands())
        await asyncio.sleep(rng.uniform(0, max_delay_s))
        world.relais.kill()
        await world.relais.wait()
        await burst
        if rng.random() < 0.34:  # sometimes also kill it while it starts again (login, sync, recovery)
            await world.relais.start(wait_ready=False)
            await asyncio.sleep(rng.uniform(0.3, 3.0))
            world.relais.kill()
            await world.relais.wait()
            during_start += 1
        await world.relais.start()
        await hospital.deliver_all()
    figures = await check(world, hospital, "hub SIGKILL", kills=cycles + during_start,
                          kills_during_start=during_start, restarts=world.relais.starts - 1)
    if files:
        figures.extra["files_opened"] = len(files)
        figures.problems += await one_room_per_file(world, files)
    return figures


async def one_room_per_file(world: World, names: list[str]) -> list[str]:
    """Each file opened has exactly one room, and the bot is in no room Relais does not know of
    (a room created twice for one file would be one the bot joined but no record names)."""
    problems: list[str] = []
    async with world.db.unit() as uow:
        rows = (await uow.session.execute(select(PersonRow.display_name, PersonRow.room_id))).all()
        desks = set((await uow.session.execute(select(DeskRow.room_id))).scalars())
    rooms = {str(name): room for name, room in rows}
    missing = [n for n in names if not rooms.get(n)]
    if missing:
        problems.append(f"{len(missing)} files opened without a room")
    token = await admin_token(world.synapse)
    joined = await admin(world.synapse, token, "GET", f"/_synapse/admin/v1/users/{world.hub.bot}/joined_rooms")
    known = {r for r in rooms.values() if r} | {r for r in desks if r}
    stray = sorted(set(joined["joined_rooms"]) - known)
    if stray:
        problems.append(f"{len(stray)} rooms the bot created or joined that no file or desk names")
    return problems


# ------------------------------------------------------------------ homeserver killed and restarted


async def homeserver_restart(world: World, synapse: DevSynapse, rounds: int = 1, alerts: int = 6,
                             commands: int = 3) -> Figures:
    """SIGKILL the homeserver in the middle of a burst; hospital messages keep being acknowledged;
    /readyz says the homeserver is down; after the restart every notice arrives once."""
    hospital = Hospital(world.mllp_port)
    readyz_down_seen = 0
    for r in range(rounds):
        hospital.add(alerts)
        for i in range(commands):
            await world.plan_add(f"h{r:03d}i{i:03d}")
        first = asyncio.create_task(hospital.deliver())
        await synapse.kill()
        await first
        hospital.add(alerts)
        await hospital.deliver_all()  # the hospital is answered while Matrix is away
        await until(_homeserver_down(world), "/readyz reports the homeserver down")
        readyz_down_seen += 1
        await synapse.start()
        await until(world.relais.ready, "/readyz ready again")
        for i in range(commands):
            await world.plan_add(f"h{r:03d}a{i:03d}")
    return await check(world, hospital, "homeserver killed", rounds=rounds, readyz_down_seen=readyz_down_seen)


def _homeserver_down(world: World) -> Any:
    async def check_() -> bool:
        answer = await world.relais.readyz()
        return answer is not None and answer[0] == 503 and answer[1].get("homeserver") is False

    return check_


# ------------------------------------------------------------------ 429 from a proxy in front of Synapse


class RateLimitingProxy(FaultProxy):
    """Every `every`-th client request to Synapse gets a 429 M_LIMIT_EXCEEDED with retry_after_ms,
    the others are forwarded as they are."""

    def __init__(self, upstream: str, every: int = 3, retry_after_ms: int = 200) -> None:
        super().__init__(upstream)
        self.every, self.retry_after_ms = every, retry_after_ms
        self.seen = 0
        self.limited = self.faults

    def fault(self, request: web.Request) -> web.Response | None:
        path = request.path
        if "/login" in path or "/versions" in path:
            return None
        self.seen += 1
        if self.seen % self.every:
            return None
        return web.json_response({"errcode": "M_LIMIT_EXCEEDED", "error": "Too Many Requests",
                                  "retry_after_ms": self.retry_after_ms}, status=429)


async def rate_limited(world: World, proxy: RateLimitingProxy, alerts: int = 6, commands: int = 4) -> Figures:
    hospital = Hospital(world.mllp_port)
    hospital.add(alerts)
    sender = asyncio.create_task(hospital.deliver_all())
    for i in range(commands):
        await world.plan_add(f"r{i:03d}")
    await sender
    return await check(world, hospital, "homeserver answering 429", limited=dict(proxy.limited),
                       proxied=proxy.seen)


# ------------------------------------------------------------------ database unavailable


async def database_unavailable(world: World, db_url: str, outage_s: float = 3.0, alerts: int = 6,
                               commands: int = 3, pg_ctl: list[str] | None = None) -> Figures:
    """SQLite: another process holds the write lock for `outage_s`. PostgreSQL: the hub's connections
    are terminated and new ones refused for `outage_s` (/readyz must say so), then allowed again —
    or, given `pg_ctl` (e.g. ``["pg_ctlcluster", "15", "main"]``), the server itself is stopped and
    started again (only where the server is the bench's own: every database on it goes down)."""
    hospital = Hospital(world.mllp_port)
    hospital.add(alerts)
    extra: dict[str, Any] = {}
    outage: _SqliteLock | _PostgresOutage | PostgresRestart
    if make_url(db_url).get_backend_name() == "sqlite":
        outage = _SqliteLock(make_url(db_url).database or "")
    elif pg_ctl:
        outage = PostgresRestart(pg_ctl)
    else:
        outage = _PostgresOutage(db_url)
    await outage.begin()
    burst = asyncio.create_task(hospital.deliver_all(deadline_s=300))
    if not isinstance(outage, _SqliteLock):
        await until(_database_down(world), "/readyz reports the database down")
        extra["readyz_database_down_seen"] = True
    for i in range(commands):
        await world.plan_add(f"d{i:03d}")
    await asyncio.sleep(outage_s)
    await outage.end()
    await burst
    await until(world.relais.ready, "/readyz ready again")
    hospital.add(alerts)
    await hospital.deliver_all()
    return await check(world, hospital, "database unavailable", **extra, **outage.figures())


def _database_down(world: World) -> Any:
    async def check_() -> bool:
        answer = await world.relais.readyz()
        return answer is not None and answer[0] == 503 and answer[1].get("database") is False

    return check_


class _SqliteLock:
    def __init__(self, path: str) -> None:
        self.path = path
        self.conn: sqlite3.Connection | None = None

    async def begin(self) -> None:
        def lock() -> sqlite3.Connection:
            conn = sqlite3.connect(self.path, timeout=30, check_same_thread=False, isolation_level=None)
            conn.execute("BEGIN EXCLUSIVE")
            return conn

        self.conn = await asyncio.to_thread(lock)

    async def end(self) -> None:
        assert self.conn is not None
        await asyncio.to_thread(self.conn.execute, "ROLLBACK")
        await asyncio.to_thread(self.conn.close)

    def figures(self) -> dict[str, Any]:
        return {"outage": "sqlite exclusive lock"}


class _PostgresOutage:
    def __init__(self, url: str) -> None:
        parsed = make_url(url)
        self.database = parsed.database or ""
        self.admin_dsn = url.replace("postgresql+asyncpg://", "postgresql://").rsplit("/", 1)[0] + "/postgres"
        self.terminated = 0
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    async def _admin(self, sql: str, *args: Any) -> Any:
        import asyncpg

        conn = await asyncpg.connect(self.admin_dsn)
        try:
            return await conn.fetch(sql, *args)
        finally:
            await conn.close()

    async def begin(self) -> None:
        await self._admin(f'ALTER DATABASE "{self.database}" ALLOW_CONNECTIONS false')
        self._task = asyncio.create_task(self._terminate_loop(), name="pg-outage")

    async def _terminate_loop(self) -> None:
        while not self._stop.is_set():
            rows = await self._admin("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                     "WHERE datname = $1 AND pid <> pg_backend_pid()", self.database)
            self.terminated += len(rows)
            try:
                await asyncio.wait_for(self._stop.wait(), 0.5)
            except TimeoutError:
                pass

    async def end(self) -> None:
        self._stop.set()
        assert self._task is not None
        await self._task
        await self._admin(f'ALTER DATABASE "{self.database}" ALLOW_CONNECTIONS true')

    def figures(self) -> dict[str, Any]:
        return {"outage": "postgresql connections terminated and refused", "terminated": self.terminated}


class PostgresRestart:
    """The PostgreSQL server stopped (fast shutdown: every connection cut) and started again."""

    def __init__(self, pg_ctl: list[str]) -> None:
        self.pg_ctl = pg_ctl

    async def _run(self, action: str, *options: str) -> None:
        proc = await asyncio.create_subprocess_exec(*self.pg_ctl, action, *options,
                                                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        out, _ = await proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(self.pg_ctl)} {action}: {out.decode(errors='replace').strip()}")

    async def begin(self) -> None:
        await self._run("stop")  # pg_ctlcluster stops in "fast" mode: every connection cut

    async def end(self) -> None:
        await self._run("start")

    def figures(self) -> dict[str, Any]:
        return {"outage": "postgresql server stopped and started again"}


def log_text(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace")


def tracebacks(path: Path) -> list[str]:
    """Unexpected tracebacks in a hub log (a crash the hub did not expect)."""
    return re.findall(r"Traceback \(most recent call last\):\n(?:.*\n){0,40}?\S.*Error.*", log_text(path))


# ------------------------------------------------------------------ poison: one file's room deleted


async def room_deleted(world: World, rounds: int = 5) -> Figures:
    """An administrator deletes one file's room (Synapse admin API) while hospital messages keep
    coming for it and for another file. The other file's alerts must arrive at their usual
    latency; every notice for the deleted room is dead-lettered and reported to the referent."""
    hub = world.hub
    gp = await hub.client("gp")
    _ref, poisoned_room = await hub.open_case(desk=world.desk_id, text='!new "Rose Poison" --id CHU-X:POISON01')
    healthy = Hospital(world.mllp_port)
    poisoned = Hospital(world.mllp_port, patient_id="POISON01", prefix="PSN")

    async def one_alert() -> float:
        healthy.add(1)
        kind = "alert.admission" if (healthy.sent - 1) % 2 == 0 else "alert.discharge"
        started = time.monotonic()
        await healthy.deliver_all()
        await wait_for_event(gp, world.room_id, is_notice(kind, hub.bot), 120)
        return time.monotonic() - started

    before = [await one_alert() for _ in range(rounds)]
    await delete_room(world.synapse, await admin_token(world.synapse), poisoned_room)
    during = []
    for _ in range(rounds):
        poisoned.add(1)
        await poisoned.deliver_all()  # queued first, for the room that is gone
        during.append(await one_alert())
    await until(_nothing_pending(world), "nothing left pending in the outbox", 180)
    failed = await outbox_failed(world.db)
    dead = [key for key, _error in failed if key.startswith("alert:")]
    cm = await hub.client("cm")
    reports = 0
    for _ in dead:
        await wait_for_event(cm, world.desk_id, is_notice("delivery.failed", hub.bot), 120)
        reports += 1
    figures = Figures("room deleted by an administrator", alerts_acked=len(healthy.acked) + len(poisoned.acked),
                      extra={"median_latency_before_s": round(statistics.median(before), 2),
                             "median_latency_during_s": round(statistics.median(during), 2),
                             "max_latency_during_s": round(max(during), 2),
                             "dead_lettered": len(dead), "reported": reports})
    if len(dead) != len(poisoned.acked):  # one message per hospital event (SPEC §5, alert and checklist together)
        figures.problems.append(f"{len(dead)} dead letters for {len(poisoned.acked)} messages to the deleted room")
    if statistics.median(during) > 3 * statistics.median(before) + 1.0:
        figures.problems.append("the other file's alerts slowed down")
    other = [key for key, _error in failed if not key.startswith("alert:")]
    if other:
        figures.problems.append(f"other entries failed: {other}")
    return figures


def _nothing_pending(world: World) -> Any:
    async def check_() -> bool:
        async with world.db.unit() as uow:
            return await uow.outbox.count("pending") == 0

    return check_
