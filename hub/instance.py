"""One Relais per store and per database: a second `relais run` (or a `relais db upgrade` while
one runs) is refused before it touches anything.

Two processes on one store would use one device's olm account at once (one-time keys uploaded
twice, room keys diverging) and both would send what the outbox holds. An exclusive `flock` on a
file beside what is guarded is released by the kernel when the process ends, even killed: a
crash never leaves a stale lock behind. On PostgreSQL, whose server is shared by design and may be
reached from another machine with another store, a session-level advisory lock plays that part
(released by the server when the holding connection ends, the process killed included).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import TYPE_CHECKING

from hub.errors import RelaisError

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

#: The advisory lock key of "one Relais per PostgreSQL database" (any 64-bit number no other
#: program on that database uses; advisory locks are per database).
ADVISORY_KEY = 0x52454C414953  # "RELAIS"


class InstanceLock:
    def __init__(self, path: Path, what: str) -> None:
        self.path = path
        self.what = what  # e.g. "the store /var/lib/relais/store"
        self._fd: int | None = None

    def acquire(self, doing: str = "running") -> None:
        """Hold the lock until release() or the end of the process; RelaisError naming the
        process that holds it otherwise. `doing`: what this process is about, for the message."""
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        except OSError as exc:
            raise RelaisError(f"cannot use {self.what}: {exc.strerror} ({self.path}); the user Relais "
                              "runs as must be able to write there") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode("ascii", "replace").strip() or "?"
            os.close(fd)
            raise RelaisError(f"another Relais (pid {holder}) is running with {self.what}: stop it before "
                              f"{doing} (two at once would post every notice twice)") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode("ascii"))
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)  # closing the last descriptor releases the flock
            self._fd = None


def locks_for(store_path: str, database_url: str) -> list[InstanceLock]:
    """The store's lock, and the SQLite database's (a PostgreSQL server is shared by design)."""
    from sqlalchemy.engine import make_url

    store = Path(store_path)
    locks = [InstanceLock(store / "relais.lock", f"the store {store}")]
    parsed = make_url(database_url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        db = Path(parsed.database)
        locks.append(InstanceLock(db.with_name(db.name + ".lock"), f"the database {db}"))
    return locks


class DatabaseLock:
    """One Relais per PostgreSQL database (a SQLite file has its InstanceLock)."""

    def __init__(self, engine: AsyncEngine, what: str) -> None:
        self.engine = engine
        self.what = what
        self._conn: AsyncConnection | None = None
        self._held = False  # acquired and not released: what `keep` holds on to

    async def acquire(self, doing: str = "running") -> None:
        """Hold the lock on a connection of its own until release(); RelaisError when another
        session holds it. A no-op on SQLite."""
        if self.engine.dialect.name != "postgresql" or self._conn is not None:
            return
        from sqlalchemy import text

        conn = await self.engine.connect()
        try:
            got = (await conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": ADVISORY_KEY})).scalar()
            holder = None
            if not got:
                holder = (await conn.execute(text(
                    "SELECT a.client_addr, a.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                    "WHERE l.locktype = 'advisory' AND l.objid = :low AND l.database = "
                    "(SELECT oid FROM pg_database WHERE datname = current_database()) LIMIT 1"),
                    {"low": ADVISORY_KEY & 0xFFFFFFFF})).first()
            await conn.commit()  # the lock is the session's: no transaction is kept open
        except BaseException:
            await conn.close()
            raise
        if not got:
            await conn.close()
            where = f" (server process {holder.pid}, from {holder.client_addr or 'a local socket'})" if holder else ""
            raise RelaisError(f"another Relais is running with {self.what}{where}: stop it before {doing} "
                              "(two at once would post every notice twice)")
        self._conn = conn
        self._held = True

    async def keep(self) -> bool:
        """Whether this Relais still holds the lock, taking it again when its session ended: a
        PostgreSQL restart (or a session ended by an administrator) releases it with no word, and
        a second Relais would then start beside this one. False when another session holds it
        now (this one must stop); True too while the database does not answer (tried again at
        the next call: nobody can start without it either)."""
        if not self._held:
            return True
        from sqlalchemy import text

        if self._conn is not None:
            try:
                await self._conn.execute(text("SELECT 1"))
                await self._conn.commit()
                return True
            except Exception:
                conn, self._conn = self._conn, None
                with contextlib.suppress(Exception):
                    await conn.invalidate()  # its session is gone: never back to the pool
        try:
            await self.acquire("running")
        except RelaisError:
            return False
        except Exception:
            return True  # unreachable: the next call tries again
        return True

    async def release(self) -> None:
        self._held = False
        if self._conn is not None:
            conn, self._conn = self._conn, None
            with contextlib.suppress(Exception):
                # Ends the session, which releases its advisory locks: closed, the connection would
                # go back to the engine's pool still holding the lock until the engine is disposed.
                await conn.invalidate()
            with contextlib.suppress(Exception):
                await conn.close()
