"""Engine and unit of work: one transaction per use case, committed or rolled back whole."""

from __future__ import annotations

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

from hub.storage.repos_alerts import AlertRepo
from hub.storage.repos_consent import ConcertationRepo, ConsentRepo
from hub.storage.repos_handover import HandoverRepo
from hub.storage.repos_plan import PlanRepo
from hub.storage.repos_referral import ReferralRepo
from hub.storage.repos_report import ReportRepo
from hub.storage.repositories import (
    AuditRepo,
    DeskRepo,
    EventRepo,
    KeyValueRepo,
    OutboxRepo,
    PersonRepo,
    TeamRepo,
)


def make_engine(url: str) -> AsyncEngine:
    parsed = make_url(url)
    kwargs: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"timeout": 30}
    else:
        kwargs["pool_pre_ping"] = True
    engine = create_async_engine(url, **kwargs)
    if parsed.get_backend_name() == "sqlite":

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            # WAL lets readers (metrics, /readyz) run while the outbox writes.
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

    return engine


class UnitOfWork:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.persons = PersonRepo(session)
        self.team = TeamRepo(session)
        self.desks = DeskRepo(session)
        self.outbox = OutboxRepo(session)
        self.audit = AuditRepo(session)
        self.events = EventRepo(session)
        self.kv = KeyValueRepo(session)
        self.plans = PlanRepo(session)
        self.alerts = AlertRepo(session)
        self.handovers = HandoverRepo(session)
        self.reports = ReportRepo(session)
        self.consent = ConsentRepo(session)
        self.concertations = ConcertationRepo(session)
        self.referrals = ReferralRepo(session)


class Database:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    @asynccontextmanager
    async def unit(self) -> AsyncIterator[UnitOfWork]:
        async with self._sessions() as session, session.begin():
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
