"""Shared pieces of the benchmarks: a private Synapse, a Relais subprocess, E2EE member clients,
percentiles and process figures.

Relais always runs in its own process (`python -m hub run -c …`), as in production: its event
loop, CPU time and resident memory are its own, and the benchmark's clients never share a
loop with it. The raw-homeserver baselines run in the same run against the same Synapse.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import platform
import secrets
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import nio  # noqa: E402
from bare_client import housekeeping  # noqa: E402 - the baseline's, so both clients do the same
from sqlalchemy import func, select  # noqa: E402

from hub.bots import content  # noqa: E402
from hub.devserver import DevSynapse, free_port  # noqa: E402
from hub.domain.effects import CreateRoom, Effect, Invite, Notify  # noqa: E402
from hub.domain.persons import Identifier, Person  # noqa: E402
from hub.domain.team import Member as TeamMember  # noqa: E402
from hub.domain.team import Role  # noqa: E402
from hub.services.outbox import enqueue  # noqa: E402
from hub.storage import migrate  # noqa: E402
from hub.storage.database import Database  # noqa: E402
from hub.storage.models import OutboxRow, PersonRow  # noqa: E402
from tests.matrix_helpers import cross_sign  # noqa: E402 - as Element does at first login

# nio logs every undecryptable event of a fresh device at warning level: noise here.
logging.getLogger("nio").setLevel(logging.ERROR)
PASSWORD = "bench-password-not-secret"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
AUTHORITY = "CHU-BENCH"


# --- figures -------------------------------------------------------------------------------

def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def ratio(value: float, baseline: float) -> str:
    return f"{value / baseline:.2f}×" if baseline > 0 else "n/a"


def verdict(target: str, measured: float, limit: float, unit: str = "×", *, at_least: bool = False,
            note: str = "") -> str:
    """One machine-readable line per target of issue 18: `target <what> <op> <limit> (measured
    <value>[; note]) : met|missed`. `grep '^target '` gives them all; the last word is the verdict."""
    met = measured >= limit if at_least else measured <= limit
    shown = f"{measured:.0%}" if unit == "%" else f"{measured:.2f}{unit}"
    bound = f"{limit:.0%}" if unit == "%" else f"{limit:g}{unit}"
    extra = f"; {note}" if note else ""
    op = "≥" if at_least else "≤"
    return f"target {target} {op} {bound} (measured {shown}{extra}) : {'met' if met else 'missed'}"


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.1f} / {five:.1f} / {fifteen:.1f} (1 / 5 / 15 min)"


def table(rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table (first row is the header), pasteable into bench/README.md."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def machine() -> str:
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    ram = "?"
    with contextlib.suppress(OSError):
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        ram = f"{kb / 1024 / 1024:.0f} GiB"
    from importlib.metadata import version

    return (f"{os.cpu_count()} CPU ({cpu}), {ram} RAM, Python {platform.python_version()}, "
            f"Synapse {version('matrix-synapse')} (SQLite), matrix-nio {version('matrix-nio')}, "
            f"vodozemac {version('vodozemac')}")


def rss_mb(pid: int) -> tuple[float, float]:
    """(current, peak) resident set size of a process, in MB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    parts = stat[stat.rindex(")") + 2:].split()
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


# --- homeserver and database ---------------------------------------------------------------

@contextlib.asynccontextmanager
async def synapse(folder: Path) -> AsyncIterator[DevSynapse]:
    server = DevSynapse(folder / "synapse")
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@contextlib.asynccontextmanager
async def database(kind: str, folder: Path) -> AsyncIterator[str]:
    """A fresh, migrated database: a SQLite file, or a throw-away PostgreSQL database."""
    if kind == "sqlite":
        url = f"sqlite+aiosqlite:///{folder / 'relais.db'}"
        await _migrate(url)
        yield url
        return
    import asyncpg  # type: ignore[import-untyped]

    name = f"relais_bench_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(os.environ.get("RELAIS_BENCH_POSTGRES", PG_ADMIN))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        url = os.environ.get("RELAIS_BENCH_POSTGRES", PG_ADMIN).rsplit("/", 1)[0]
        url = url.replace("postgresql://", "postgresql+asyncpg://") + f"/{name}"
        await _migrate(url)
        yield url
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def _migrate(url: str) -> None:
    db = Database(url)
    try:
        await migrate.upgrade(db.engine)
    finally:
        await db.close()


async def register_many(server: DevSynapse, localparts: Sequence[str]) -> list[str]:
    return list(await asyncio.gather(*(server.register(lp, PASSWORD) for lp in localparts)))


async def login_token(homeserver: str, user: str) -> str:
    """An access token for a plain HTTP client (no device keys: it never encrypts)."""
    async with aiohttp.ClientSession() as http, http.post(f"{homeserver}/_matrix/client/v3/login", json={
            "type": "m.login.password", "identifier": {"type": "m.id.user", "user": user},
            "password": PASSWORD}) as resp:
        return str((await resp.json())["access_token"])


async def room_version(homeserver: str, token: str) -> str:
    async with aiohttp.ClientSession() as http, http.get(
            f"{homeserver}/_matrix/client/v3/capabilities", headers={"Authorization": f"Bearer {token}"}) as resp:
        data = await resp.json()
    return str(data["capabilities"]["m.room_versions"]["default"])


# --- seeding files -------------------------------------------------------------------------

def local_id(index: int) -> str:
    return f"{900000 + index}"


async def seed_files(url: str, count: int, referent: str, members: Sequence[str] = (), *, first: int = 0,
                     outbox: bool = True, now: datetime | None = None, chunk: int = 500) -> list[str]:
    """Open `count` files the way `cases.open_case` does (person, referent in the team, CreateRoom,
    Invite, the opening notice), plus `members` as GPs, and enqueue their effects for the outbox
    (`outbox=False`: the caller makes the rooms itself). Files are numbered from `first`.

    The caseload checks of `open_case` are left out: they count the referent's files, which would
    make seeding 10 000 files quadratic, and they decide nothing about Matrix.
    """
    from datetime import UTC

    now = now or datetime.now(UTC)
    db = Database(url)
    refs = []
    try:
        for start in range(first, first + count, chunk):
            async with db.unit() as uow:
                for index in range(start, min(first + count, start + chunk)):
                    ref = f"R-{now.year}-{index + 1:05d}"
                    refs.append(ref)
                    person = Person(case_ref=ref, display_name=f"Personne {index + 1}", referent=referent,
                                    opened_at=now, identifiers=(Identifier(AUTHORITY, local_id(index)),))
                    await uow.persons.add(person)
                    await uow.team.add(ref, TeamMember(user_id=referent, role=Role.CASE_MANAGER, since=now))
                    effects: list[Effect] = [
                        CreateRoom(ref), Invite(ref, referent),
                        Notify("team.update", ref, "team.opened",
                               {"case": ref, "name": person.display_name, "born": "", "referent": referent},
                               mentions=(referent,)),
                    ]
                    for user in members:
                        await uow.team.add(ref, TeamMember(user_id=user, role=Role.GP, since=now))
                        effects += [Invite(ref, user),
                                    Notify("team.update", ref, "team.added",
                                           {"user": user, "role": "gp", "org": None, "by": referent})]
                    if outbox:
                        await enqueue(uow, f"bench:open:{ref}", effects, now)
    finally:
        await db.close()
    return refs


async def set_rooms(url: str, rooms: dict[str, str]) -> None:
    db = Database(url)
    try:
        async with db.unit() as uow:
            for ref, room_id in rooms.items():
                await uow.persons.set_room(ref, room_id)
    finally:
        await db.close()


async def outbox_left(url: str) -> int:
    db = Database(url)
    try:
        async with db.unit() as uow:
            query = select(func.count()).select_from(OutboxRow).where(OutboxRow.state == "pending")
            return int((await uow.session.execute(query)).scalar_one())
    finally:
        await db.close()


async def wait_outbox_empty(url: str, timeout: float, every: float = 0.2) -> float:  # noqa: ASYNC109
    """Seconds until the Relais process has performed every outbox entry."""
    started = time.perf_counter()
    while await outbox_left(url):
        if time.perf_counter() - started > timeout:
            raise TimeoutError(f"outbox not empty after {timeout:.0f} s")
        await asyncio.sleep(every)
    return time.perf_counter() - started


async def room_ids(url: str) -> dict[str, str]:
    """case_ref → room_id of every file whose room exists."""
    db = Database(url)
    try:
        async with db.unit() as uow:
            rows = await uow.session.execute(select(PersonRow.case_ref, PersonRow.room_id)
                                             .where(PersonRow.room_id.is_not(None)))
            return {ref: str(room) for ref, room in rows}
    finally:
        await db.close()


# --- Relais in its own process ---------------------------------------------------------------

class _Child:
    """A benchmarked program in its own process (its RSS and CPU are its own): stop = SIGTERM."""

    proc: asyncio.subprocess.Process | None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def stop(self) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.proc.wait(), 30)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()


@dataclass
class RelaisProcess(_Child):
    """`python -m hub run -c relais.toml` against the bench Synapse."""

    server: DevSynapse
    folder: Path
    db_url: str
    case_managers: Sequence[str]
    bot: str = ""
    mllp_port: int = field(default_factory=free_port)
    http_port: int = field(default_factory=free_port)
    proc: asyncio.subprocess.Process | None = None
    log_path: Path = Path()
    starts: int = 0

    async def configure(self) -> None:
        self.bot = await self.server.register("relais", PASSWORD)
        self.log_path = self.folder / "relais.log"
        managers = ", ".join(f'"{u}"' for u in self.case_managers)
        (self.folder / "relais.toml").write_text(f"""
[matrix]
homeserver = "{self.server.url}"
user_id = "{self.bot}"
password = "{PASSWORD}"
store_path = "{self.folder / 'store'}"

[database]
url = "{self.db_url}"

[care]
case_managers = [{managers}]

[alerts.mllp]
port = {self.mllp_port}

[http]
port = {self.http_port}
admin_port = 0
""", encoding="utf-8")

    async def start(self, timeout: float = 600) -> float:  # noqa: ASYNC109
        """Start the process; seconds until it logs that it is ready (logged in, first sync done)."""
        started = time.perf_counter()
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as out:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "hub", "run", "-c", str(self.folder / "relais.toml"),
                cwd=ROOT, stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out)
        if profile := os.environ.get("RELAIS_BENCH_PYSPY"):
            # Profiling only (py-spy is not a project dependency): the first minute of each start.
            self.starts += 1
            # RELAIS_BENCH_PYSPY_S: how many seconds (60); RELAIS_BENCH_PYSPY_IDLE=1: waiting time too.
            seconds = os.environ.get("RELAIS_BENCH_PYSPY_S", "60")
            idle = ["--idle"] if os.environ.get("RELAIS_BENCH_PYSPY_IDLE") == "1" else []
            await asyncio.create_subprocess_exec(
                str(Path(sys.executable).parent / "py-spy"), "record", "-p", str(self.proc.pid), "-d", seconds,
                *idle, "-r", "100", "-f", "raw", "-o", f"{profile}.{self.starts}.txt",
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        while True:
            with self.log_path.open("rb") as log:
                log.seek(offset)
                if b"Relais ready as" in log.read():
                    return time.perf_counter() - started
            if self.proc.returncode is not None:
                raise RuntimeError(f"relais exited with {self.proc.returncode}; see {self.log_path}")
            if time.perf_counter() - started > timeout:
                raise TimeoutError(f"relais not ready after {timeout:.0f} s; see {self.log_path}")
            await asyncio.sleep(0.02)



# --- E2EE clients ----------------------------------------------------------------------------

async def make_client(server: DevSynapse, localpart: str, folder: Path, *,
                      cross_signed: bool = True) -> nio.AsyncClient:
    """Register and log in an E2EE nio client (its own crypto store); keys uploaded, device
    cross-signed."""
    user_id = await server.register(localpart, PASSWORD)
    store = folder / f"nio-{localpart}"
    store.mkdir(parents=True, exist_ok=True)
    config = nio.AsyncClientConfig(encryption_enabled=True, store_sync_tokens=True, max_limit_exceeded=0)
    client = nio.AsyncClient(server.url, user_id, store_path=str(store), config=config)
    login = await client.login(PASSWORD, device_name=f"bench-{localpart}")
    if not isinstance(login, nio.LoginResponse):
        raise RuntimeError(f"login of {user_id} failed: {login}")
    if client.should_upload_keys:
        await client.keys_upload()
    if cross_signed:
        await cross_sign(client)
    return client


Listener = Callable[[str, Any, float], None]


class MemberClient:
    """A team member's client syncing in the background, stamping each timeline event with the
    moment its (decrypted) content reached the client."""

    def __init__(self, client: nio.AsyncClient, auto_join: bool = True) -> None:
        self.client = client
        self.auto_join = auto_join
        self.listeners: list[Listener] = []
        self.undecrypted: list[tuple[str, nio.MegolmEvent]] = []
        self.synced = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=f"sync-{self.client.user_id}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.client.close()

    async def _loop(self) -> None:
        while True:
            resp = await self.client.sync(timeout=30_000, full_state=False)
            seen = time.perf_counter()
            if not isinstance(resp, nio.SyncResponse):
                await asyncio.sleep(0.5)
                continue
            for room_id, info in resp.rooms.join.items():
                for event in info.timeline.events:
                    if isinstance(event, nio.MegolmEvent):
                        self.undecrypted.append((room_id, event))
                    else:
                        self._emit(room_id, event, seen)
            self._retry_undecrypted(seen)
            if self.auto_join and resp.rooms.invite:
                await asyncio.gather(*(self.client.join(r) for r in resp.rooms.invite))
            await housekeeping(self.client)
            self.synced.set()

    def _retry_undecrypted(self, seen: float) -> None:
        left = []
        for room_id, event in self.undecrypted:
            try:
                decrypted = self.client.decrypt_event(event)
            except Exception:  # the room key has not arrived yet
                left.append((room_id, event))
                continue
            self._emit(room_id, decrypted, seen)
        self.undecrypted = left

    def _emit(self, room_id: str, event: Any, seen: float) -> None:
        for listener in self.listeners:
            listener(room_id, event, seen)

    async def wait_joined(self, rooms: Sequence[str], timeout: float = 600) -> None:  # noqa: ASYNC109
        deadline = time.perf_counter() + timeout
        while not all(r in self.client.rooms for r in rooms):
            if time.perf_counter() > deadline:
                missing = [r for r in rooms if r not in self.client.rooms]
                raise TimeoutError(f"{self.client.user_id} did not join {len(missing)} rooms")
            await asyncio.sleep(0.2)


def kind_of(event: Any) -> str | None:
    return ((getattr(event, "source", None) or {}).get("content") or {}).get("fr.relais.kind")


def case_room_spec(case_ref: str, creator: str, version: str) -> dict[str, Any]:
    """The createRoom body of a person's room, as Relais makes it (content.case_room)."""
    spec = content.case_room(case_ref, f"Suivi {case_ref}", creator, version)
    return {"name": spec["name"], "visibility": "private", "preset": "private_chat",
            "initial_state": spec["initial_state"], "power_level_content_override": spec["power_level_override"],
            "room_version": version}


async def create_rooms(homeserver: str, token: str, specs: Sequence[dict[str, Any]], invite: Sequence[str],
                       concurrency: int = 1) -> list[str]:
    """Create rooms by plain HTTP (the raw-homeserver baseline), inviting `invite` to each."""
    out: list[str] = [""] * len(specs)
    headers = {"Authorization": f"Bearer {token}"}
    queue = list(enumerate(specs))

    async def worker(http: aiohttp.ClientSession) -> None:
        while queue:
            index, spec = queue.pop(0)
            # createRoom then one /invite per member, as Relais does (CreateRoom, then Invite effects).
            async with http.post(f"{homeserver}/_matrix/client/v3/createRoom", headers=headers, json=spec) as resp:
                data = await resp.json()
                if resp.status != 200:
                    raise RuntimeError(f"createRoom failed: {resp.status} {data}")
                out[index] = room_id = str(data["room_id"])
            for user in invite:
                async with http.post(f"{homeserver}/_matrix/client/v3/rooms/{room_id}/invite", headers=headers,
                                     json={"user_id": user}) as resp:
                    if resp.status != 200:
                        raise RuntimeError(f"invite failed: {resp.status} {await resp.text()}")

    async with aiohttp.ClientSession() as http:
        await asyncio.gather(*(worker(http) for _ in range(concurrency)))
    return out


@dataclass
class BareProcess(_Child):
    """bench/bare_client.py in its own process: the bare-nio baseline of a Relais process."""

    homeserver: str
    user: str
    store: Path
    echo: Path | None = None
    proc: asyncio.subprocess.Process | None = None

    async def start(self, timeout: float = 600) -> float:  # noqa: ASYNC109
        """Seconds from spawning the process to the end of its first sync."""
        started = time.perf_counter()
        cmd = [sys.executable, str(ROOT / "bench" / "bare_client.py"), "--homeserver", self.homeserver,
               "--user", self.user, "--password", PASSWORD, "--store", str(self.store)]
        if self.echo is not None:
            cmd += ["--echo", str(self.echo)]
        self.proc = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.PIPE,
                                                         stdin=asyncio.subprocess.DEVNULL)
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        if line.strip() != b"READY":
            raise RuntimeError(f"bare client did not start: {line!r}")
        return time.perf_counter() - started

