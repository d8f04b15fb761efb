"""Engine and unit of work: one transaction per use case, committed or rolled back whole."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from hub.errors import RelaisError
from hub.storage.repos_alerts import AlertRepo
from hub.storage.repos_consent import ConcertationRepo, ConsentRepo
from hub.storage.repos_handover import HandoverRepo
from hub.storage.repos_plan import PlanRepo
from hub.storage.repos_readability import ReadabilityRepo
from hub.storage.repos_referral import ReferralRepo
from hub.storage.repos_report import ReportRepo
from hub.storage.repos_rights import RightsRepo
from hub.storage.repositories import (
    AuditRepo,
    DeskRepo,
    EventRepo,
    IntakeDeadLetterRepo,
    KeyValueRepo,
    OutboxRepo,
    PersonRepo,
    RoomRepo,
    TeamRepo,
)

#: The oldest SQLite Relais runs on: writing a key once is INSERT … ON CONFLICT … RETURNING
#: (hub/storage/once.py), which SQLite has since 3.35.0 (2021-03).
SQLITE_MINIMUM = (3, 35, 0)

#: Execution option naming how a SQLite transaction begins (DEFERRED or IMMEDIATE).
BEGIN_OPTION = "relais_sqlite_begin"


def private_sqlite_file(database: str) -> None:
    """Create the SQLite file 0600 in a folder created 0700, whatever the umask; tighten an
    existing file. It holds names, INS and care plans (SPEC §3: no personal data readable by
    others). SQLite gives its -wal and -shm files the database file's permissions."""
    path = Path(database)
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        path.parent.chmod(0o700)  # mkdir's mode is masked by the umask
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        if os.fstat(fd).st_mode & 0o077:
            os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


def make_engine(url: str) -> AsyncEngine:
    """The engine for `url`. SQL parameters (names, birth dates, clinical text) never reach an
    exception message or a log line (`hide_parameters`). On SQLite every transaction begins with
    BEGIN IMMEDIATE: it takes the single write lock before its first read, so two units touching
    one person run one after the other, as PostgreSQL's SELECT … FOR UPDATE makes them there
    (read-only work, connections opened outside a unit and migrations begin DEFERRED)."""
    parsed = make_url(url)
    kwargs: dict[str, Any] = {"hide_parameters": True}
    sqlite = parsed.get_backend_name() == "sqlite"
    if sqlite and sqlite3.sqlite_version_info < SQLITE_MINIMUM:
        raise RelaisError(f"database: SQLite {'.'.join(map(str, SQLITE_MINIMUM))} or newer is needed "
                          f"(INSERT … ON CONFLICT … RETURNING); this Python has {sqlite3.sqlite_version}: "
                          "use PostgreSQL, or a Python built with a newer SQLite")
    if sqlite:
        if parsed.database and parsed.database != ":memory:" and not parsed.database.startswith("file:"):
            try:
                private_sqlite_file(parsed.database)
            except OSError:
                pass  # a folder or file that cannot be made: the first connection says it in one line
        kwargs["connect_args"] = {"timeout": 30}
    else:
        kwargs["pool_pre_ping"] = True
    engine = create_async_engine(url, **kwargs)
    if sqlite:

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            # The driver's own implicit BEGIN (deferred, and only before a write) is turned off:
            # _begin below says when and how a transaction begins (SQLAlchemy's aiosqlite recipe).
            dbapi_conn.isolation_level = None
            # WAL lets readers (metrics, /readyz) run while the outbox writes.
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        @event.listens_for(engine.sync_engine, "begin")
        def _begin(conn: Any) -> None:
            mode = conn.get_execution_options().get(BEGIN_OPTION, "DEFERRED")
            conn.exec_driver_sql(f"BEGIN {mode}")

    else:

        @event.listens_for(engine.sync_engine, "handle_error")
        def _no_row_values(context: Any) -> None:
            # PostgreSQL's DETAIL quotes the row ("Key (authority, value)=(INS, 2550…) already
            # exists", "Failing row contains (…)"), and asyncpg prints it with the exception:
            # dropped before the error reaches any log line.
            forget_row_values(context.original_exception)

    return engine


def forget_row_values(exc: BaseException | None) -> None:
    """Clear the `detail` PostgreSQL attaches to an error and its causes (asyncpg's
    PostgresError shows it in str()); the message and SQLSTATE stay."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if getattr(exc, "detail", None):
            try:
                exc.detail = None  # type: ignore[attr-defined]
            except AttributeError:
                pass
        exc = exc.__cause__ or exc.__context__


class UnitOfWork:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.persons = PersonRepo(session)
        self.team = TeamRepo(session)
        self.desks = DeskRepo(session)
        self.outbox = OutboxRepo(session)
        self.audit = AuditRepo(session)
        self.events = EventRepo(session)
        self.intake_dead = IntakeDeadLetterRepo(session)
        self.kv = KeyValueRepo(session)
        self.plans = PlanRepo(session)
        self.alerts = AlertRepo(session)
        self.handovers = HandoverRepo(session)
        self.reports = ReportRepo(session)
        self.consent = ConsentRepo(session)
        self.concertations = ConcertationRepo(session)
        self.referrals = ReferralRepo(session)
        self.readability = ReadabilityRepo(session)
        self.rights = RightsRepo(session)
        self.rooms = RoomRepo(session)


class Database:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self._sessions = async_sessionmaker(self.engine.execution_options(**{BEGIN_OPTION: "IMMEDIATE"}),
                                            expire_on_commit=False)
        self._reads = async_sessionmaker(self.engine, expire_on_commit=False)

    @property
    def single_writer(self) -> bool:
        """True on SQLite: one unit of work writes at a time (its BEGIN IMMEDIATE holds the
        database's write lock), so a long unit holds every other writer back."""
        return self.engine.dialect.name == "sqlite"

    @asynccontextmanager
    async def unit(self) -> AsyncIterator[UnitOfWork]:
        """One unit of work: committed whole or rolled back. On SQLite it holds the write lock
        from its first statement (BEGIN IMMEDIATE)."""
        async with self._sessions() as session, session.begin():
            yield UnitOfWork(session)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[UnitOfWork]:
        """A unit that only reads (polling, lookups): on SQLite it takes no write lock, so the
        frequent reads never queue behind writers nor hold writers back."""
        async with self._reads() as session, session.begin():
            yield UnitOfWork(session)

    async def ping(self) -> bool:
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
            return True
        except Exception:
            return False

    async def close(self) -> None:
        await self.engine.dispose()
