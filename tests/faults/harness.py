"""Real processes for the fault tests: Relais as a subprocess, a hospital over MLLP, notice counts.

Shared by tests/faults/ (small N) and bench/reliability.py (larger N). Nothing here is faked:
the hub is `python -m hub run -c …`, killed with SIGKILL; the homeserver is a real Synapse;
notices are counted as a member's own E2EE client sees them in the room.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import nio
from sqlalchemy import func, select

from hub.devserver import DevSynapse, free_port
from hub.inbound.mllp import MllpDecoder, frame
from hub.storage import migrate
from hub.storage.database import Database, make_engine
from hub.storage.models import OutboxRow, ProcessedEventRow
from tests.hub_harness import BOT_PASSWORD, Hub, is_notice, kind_of, new_tag
from tests.matrix_helpers import accept_invite, send_text, sync, wait_for_event

ROOT = Path(__file__).resolve().parents[2]
FHIR_TOKEN = "fhir-token-faults-7d1c0b-0a93e5f1c2d4b6a8"
PATIENT_AUTHORITY, PATIENT_ID = "CHU-X", "F4ULT01"
PATIENT_NAME = "Germaine Faultière"


async def until(check: Callable[[], Awaitable[bool]], what: str, deadline_s: float = 120.0,
                pause_s: float = 0.2) -> None:
    """Wait for a state (never for a time): fail only if it never comes within a generous deadline."""
    end = time.monotonic() + deadline_s
    while not await check():
        if time.monotonic() > end:
            raise AssertionError(f"never reached: {what}")
        await asyncio.sleep(pause_s)


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(str(value))


def write_toml(path: Path, sections: dict[str, dict[str, Any]]) -> Path:
    lines: list[str] = []
    for name, values in sections.items():
        lines.append(f"[{name}]")
        lines += [f"{key} = {toml_value(value)}" for key, value in values.items()]
        lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


class RelaisProcess:
    """`python -m hub run -c config` as a child process, with its log in a file."""

    def __init__(self, config: Path, log: Path, http_port: int, verbose: bool = False) -> None:
        self.config, self.log, self.http_port, self.verbose = config, log, http_port, verbose
        self.proc: asyncio.subprocess.Process | None = None
        self.starts = 0

    async def start(self, wait_ready: bool = True) -> None:
        args = [sys.executable, "-m", "hub", *(["-v"] if self.verbose else []), "run", "-c", str(self.config)]
        with self.log.open("ab") as out:
            self.proc = await asyncio.create_subprocess_exec(
                *args, stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=asyncio.subprocess.STDOUT,
                cwd=str(ROOT), env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.starts += 1
        if wait_ready:
            await until(self.ready, "relais /readyz answers 200", deadline_s=120)

    async def readyz(self) -> tuple[int, dict[str, Any]] | None:
        if self.proc is not None and self.proc.returncode is not None:
            raise AssertionError(f"relais exited with {self.proc.returncode}:\n{self.tail()}")
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http, \
                    http.get(f"http://127.0.0.1:{self.http_port}/readyz") as resp:
                return resp.status, dict(await resp.json())
        except (aiohttp.ClientError, TimeoutError):
            return None

    async def ready(self) -> bool:
        answer = await self.readyz()
        return answer is not None and answer[0] == 200

    def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)

    async def wait(self) -> int:
        assert self.proc is not None
        return await self.proc.wait()

    async def terminate(self) -> int:
        """SIGTERM: the graceful stop an operator's service manager asks for."""
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.proc.wait(), 60)

    def tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


@dataclass
class Hospital:
    """An ADT feed for one patient: admissions and discharges alternate, each with its own control id.

    A message is resent, byte for byte, until it is acknowledged (AA), as a hospital's interface
    engine does; `acked` are the control ids the hub acknowledged at least once.
    """

    port: int
    base: datetime = field(default_factory=lambda: datetime.now(UTC).replace(microsecond=0) - timedelta(days=30))
    sent: int = 0
    acked: list[str] = field(default_factory=list)
    queue: list[tuple[str, str, bytes]] = field(default_factory=list)  # (control id, trigger, raw)
    triggers: Counter[str] = field(default_factory=Counter)
    patient_id: str = PATIENT_ID
    prefix: str = "FLT"  # of the control ids: one per patient keeps them apart

    def add(self, count: int) -> None:
        for _ in range(count):
            n = self.sent
            trigger = "A01" if n % 2 == 0 else "A03"
            ts = (self.base + timedelta(minutes=10 * n)).strftime("%Y%m%d%H%M%S")
            ctl = f"{self.prefix}-{n:05d}"
            segments = [
                f"MSH|^~\\&|GAM|{PATIENT_AUTHORITY}|RELAIS|DAC|{ts}||ADT^{trigger}^ADT_{trigger}|{ctl}|P|2.5",
                f"EVN||{ts}||||{ts}",
                f"PID|1||{self.patient_id}^^^{PATIENT_AUTHORITY}&1.2.250.1.999.1&ISO^PI||FAULTIERE^GERMAINE||19360101|F",
                f"PV1|1|I|Gériatrie^^^{PATIENT_AUTHORITY}",
            ]
            self.queue.append((ctl, trigger, ("\r".join(segments) + "\r").encode("utf-8")))
            self.sent += 1

    async def deliver(self, stop_on_error: bool = True) -> int:
        """Send the queue over one connection, in order; return how many were acknowledged."""
        done = 0
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        except OSError:
            if stop_on_error:
                return 0
            raise
        decoder = MllpDecoder()
        try:
            while self.queue:
                ctl, trigger, raw = self.queue[0]
                writer.write(frame(raw))
                await writer.drain()
                got: list[bytes] = []
                while not got:
                    data = await asyncio.wait_for(reader.read(65536), 60)
                    if not data:
                        raise ConnectionError("closed")
                    got = [f for f in decoder.feed(data) if isinstance(f, bytes)]
                if f"MSA|AA|{ctl}".encode() not in got[0]:
                    raise ConnectionError(f"not acknowledged: {got[0]!r}")  # AR: the hospital retries
                self.queue.pop(0)
                self.acked.append(ctl)
                self.triggers[trigger] += 1
                done += 1
        except (OSError, ConnectionError, TimeoutError):
            if not stop_on_error:
                raise
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        return done

    async def deliver_all(self, deadline_s: float = 120.0) -> None:
        end = time.monotonic() + deadline_s
        while self.queue:
            await self.deliver()
            if self.queue:
                if time.monotonic() > end:
                    raise AssertionError(f"{len(self.queue)} hospital messages never acknowledged")
                await asyncio.sleep(0.2)


#: Notice kinds a hospital message causes: one message each, the move's checklist inside (issue 22).
EXPECTED_PER_TRIGGER = {"A01": ("alert.admission",),
                        "A03": ("alert.discharge",)}


async def room_notices(client: nio.AsyncClient, room_id: str, bot: str) -> list[tuple[str, str, str]]:
    """Every bot notice of the room as (kind, case, body), oldest first, read by a member's client.

    The client first syncs until its to-device queue is empty, so it holds every room key sent to it."""
    for _ in range(30):
        response = await sync(client, timeout_ms=0)
        if not response.to_device_events:
            break
    out: list[tuple[str, str, str]] = []
    token = ""
    while True:
        resp = await client.room_messages(room_id, start=token, limit=200)
        if not isinstance(resp, nio.RoomMessagesResponse):
            raise AssertionError(f"room_messages failed: {resp}")
        for event in resp.chunk:
            if getattr(event, "sender", None) != bot:
                continue
            if isinstance(event, nio.MegolmEvent):
                out.append(("<undecryptable>", "", ""))
                continue
            kind = kind_of(event)
            if kind is not None:
                content = (event.source or {}).get("content") or {}
                out.append((kind, str(content.get("fr.relais.case", "")), str(getattr(event, "body", ""))))
        if not resp.chunk or resp.end is None or resp.end == token:
            break
        token = resp.end
    out.reverse()
    return out


async def db_settled(db: Database, command_events: list[str]) -> bool:
    """Every command event claimed, every acknowledged hospital message processed (a database
    outage may leave one to the recovery job, within a minute), and nothing left to send."""
    async with db.unit() as uow:
        if await uow.alerts.unprocessed():
            return False
        pending = await uow.outbox.count("pending")
        claimed = (await uow.session.execute(
            select(func.count()).select_from(ProcessedEventRow)
            .where(ProcessedEventRow.event_id.in_(command_events)))).scalar_one() if command_events else 0
    return pending == 0 and int(claimed) == len(command_events)


async def outbox_failed(db: Database) -> list[tuple[str, str | None]]:
    async with db.unit() as uow:
        rows = (await uow.session.execute(
            select(OutboxRow.key, OutboxRow.error).where(OutboxRow.state == "failed"))).all()
    return [(str(k), e) for k, e in rows]


@dataclass
class World:
    """A bot account, a case manager, a GP and one person's room, with Relais as a subprocess."""

    synapse: DevSynapse
    tmp: Path
    db_url: str
    verbose: bool = False
    hub: Hub = field(init=False)
    relais: RelaisProcess = field(init=False)
    db: Database = field(init=False)
    mllp_port: int = 0
    http_port: int = 0
    admin_port: int = 0
    case_ref: str = ""
    room_id: str = ""
    desk_id: str = ""
    commands: list[str] = field(default_factory=list)  # event ids of commands Synapse accepted
    needs: list[str] = field(default_factory=list)

    def config_sections(self, homeserver: str | None = None) -> dict[str, dict[str, Any]]:
        h = self.hub
        return {
            "matrix": {"homeserver": homeserver or self.synapse.url, "user_id": h.bot, "password": BOT_PASSWORD,
                       "store_path": str(self.tmp / f"store{h.tag}")},
            "database": {"url": self.db_url},
            "care": {"case_managers": [h.user("cm"), h.user("cm2")], "pilots": [h.user("pilot")]},
            "alerts": {"ins_test_oids": True},
            "alerts.mllp": {"host": "127.0.0.1", "port": self.mllp_port, "allowed_peers": ["127.0.0.1"]},
            "http": {"host": "127.0.0.1", "port": self.http_port, "fhir_token": FHIR_TOKEN,
                     "admin_port": self.admin_port},
        }

    async def setup(self, homeserver: str | None = None, with_gp: bool = True) -> None:
        self.hub = Hub(self.synapse, self.tmp, self.db_url, new_tag())
        self.hub.bot = await self.synapse.register(f"relais{self.hub.tag}", BOT_PASSWORD)
        for name in ("cm", "cm2", "pilot", "gp"):
            await self.hub.client(name)
        self.mllp_port, self.http_port, self.admin_port = free_port(), free_port(), free_port()
        config = write_toml(self.tmp / f"relais{self.hub.tag}.toml", self.config_sections(homeserver))
        engine = make_engine(self.db_url)
        await migrate.upgrade(engine)
        await engine.dispose()
        self.db = Database(self.db_url)
        self.relais = RelaisProcess(config, self.tmp / f"relais{self.hub.tag}.log", self.http_port, self.verbose)
        await self.relais.start()
        self.desk_id = await self.hub.desk("cm")
        self.case_ref, self.room_id = await self.hub.open_case(
            desk=self.desk_id, text=f'!new "{PATIENT_NAME}" --id {PATIENT_AUTHORITY}:{PATIENT_ID}')
        if with_gp:
            cm = await self.hub.client("cm")
            await send_text(cm, self.room_id, f"!team add {self.hub.user('gp')} gp")
            await wait_for_event(cm, self.room_id, is_notice("team.update", self.hub.bot))
            await accept_invite(await self.hub.client("gp"), self.room_id)

    async def restart_through(self, homeserver: str) -> None:
        """Stop the hub gracefully and start it again talking to `homeserver` (e.g. a proxy)."""
        assert await self.relais.terminate() == 0
        write_toml(self.relais.config, self.config_sections(homeserver))
        await self.relais.start()

    async def send_command(self, text: str) -> str:
        """A command typed by the case manager; its event id once Synapse accepted it."""
        event_id = await send_text(await self.hub.client("cm"), self.room_id, text)
        self.commands.append(event_id)
        return event_id

    async def open_file(self, name: str) -> str:
        """`!new` typed in the case manager's desk (the room is created by the outbox); the name."""
        event_id = await send_text(await self.hub.client("cm"), self.desk_id, f'!new "{name}" --born 1940-01-01')
        self.commands.append(event_id)
        return name

    async def plan_add(self, label: str) -> str:
        need = f"besoin {label}"
        self.needs.append(need)
        return await self.send_command(f'!plan add "{need}" "action {label}"')

    async def settle(self, deadline_s: float = 180.0) -> None:
        await until(lambda: db_settled(self.db, self.commands), "every command claimed and the outbox empty",
                    deadline_s)

    async def notices(self, who: str = "gp") -> list[tuple[str, str, str]]:
        return await room_notices(await self.hub.client(who), self.room_id, self.hub.bot)

    async def close(self) -> None:
        if self.relais.proc is not None and self.relais.proc.returncode is None:
            await self.relais.terminate()
        await self.db.close()
        await self.hub.close()


def tally(notices: list[tuple[str, str, str]]) -> Counter[str]:
    return Counter(kind for kind, _case, _body in notices)


def expected_alert_kinds(hospital: Hospital) -> Counter[str]:
    out: Counter[str] = Counter()
    for trigger, n in hospital.triggers.items():
        for kind in EXPECTED_PER_TRIGGER[trigger]:
            out[kind] += n
    return out
