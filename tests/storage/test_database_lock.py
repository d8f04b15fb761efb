"""One Relais per PostgreSQL database (hub/instance.py DatabaseLock), against a real server: the
lock is released when released, and survives the end of its session (a server restart)."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from hub.errors import RelaisError
from hub.instance import ADVISORY_KEY, DatabaseLock
from hub.storage.database import make_engine

pytestmark = [pytest.mark.db, pytest.mark.postgres_only]


async def _end_holding_session(url: str) -> None:
    """What a PostgreSQL restart does to the lock: the session holding it ends."""
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            ended = (await conn.execute(text(
                "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND objid = :low "
                "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"),
                {"low": ADVISORY_KEY & 0xFFFFFFFF})).scalars().all()
            assert ended == [True]
    finally:
        await engine.dispose()


async def test_a_released_lock_is_free_for_another_relais_at_once(db_url: str) -> None:
    # The engine is still in use (tests, `relais db upgrade` before it disposes): the connection
    # went back to its pool holding the lock, and a second Relais was refused.
    first, second = make_engine(db_url), make_engine(db_url)
    try:
        lock = DatabaseLock(first, "the database")
        await lock.acquire()
        await lock.release()
        other = DatabaseLock(second, "the database")
        await other.acquire()
        await other.release()
    finally:
        await first.dispose()
        await second.dispose()


async def test_the_lock_lost_with_its_session_is_taken_again_or_its_loss_told(db_url: str) -> None:
    first, second = make_engine(db_url), make_engine(db_url)
    try:
        running = DatabaseLock(first, "the database")
        await running.acquire()
        await _end_holding_session(db_url)
        assert await running.keep()  # taken again on a new session
        with pytest.raises(RelaisError, match="another Relais is running with the database"):
            await DatabaseLock(second, "the database").acquire()
        # Lost again, and another Relais starts before this one checks: this one is told.
        await _end_holding_session(db_url)
        intruder = DatabaseLock(second, "the database")
        await intruder.acquire()
        assert not await running.keep()
        await intruder.release()
        await running.release()
    finally:
        await first.dispose()
        await second.dispose()
