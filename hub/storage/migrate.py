"""Schema migrations: forward-only Alembic revisions shipped inside the package.

Alembic is imported only when a migration or a mismatch needs it: `relais run` on a database
already at `HEAD_REVISION` checks it with one SELECT (alembic's import is ~0.2 s of every start).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.errors import SchemaError

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

_HERE = Path(__file__).parent / "migrations"

#: The newest revision shipped. tests/storage/test_migrations.py checks it is Alembic's head, so a
#: new migration fails the suite until this line names it.
HEAD_REVISION = "0014"


def _alembic_config(connection: Connection | None = None) -> AlembicConfig:
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(_HERE))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    """Alembic's head, read from the revision files."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None
    return head


def _current(connection: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


async def upgrade(engine: AsyncEngine) -> tuple[str | None, str]:
    """Bring the schema to head; return (before, after)."""
    async with engine.begin() as conn:
        before = await conn.run_sync(_current)
        _refuse_newer(before)
        from alembic import command

        await conn.run_sync(lambda sync: command.upgrade(_alembic_config(sync), "head"))
    return before, head_revision()


async def current_revision(engine: AsyncEngine) -> str | None:
    """The database's schema revision; None when it holds no schema yet."""
    async with engine.connect() as conn:
        current: str | None = await conn.run_sync(_current)
    return current


async def require_head(engine: AsyncEngine) -> None:
    """`relais run` refuses an unmigrated (or newer) database with a clear message."""
    async with engine.connect() as conn:
        try:
            stamped = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalars().all()
        except DBAPIError:  # no table yet: Alembic tells what is there
            stamped = []
            await conn.rollback()
        if stamped == [HEAD_REVISION]:
            return
        current = await conn.run_sync(_current)
    _refuse_newer(current)
    if current != head_revision():
        raise SchemaError(
            f"database schema is at {current or 'nothing'}, this Relais needs {head_revision()}: "
            "run `relais db upgrade -c <config>` first (back up the database before)"
        )


def _refuse_newer(current: str | None) -> None:
    if current is None:
        return
    from alembic.script import ScriptDirectory

    known = {rev.revision for rev in ScriptDirectory.from_config(_alembic_config()).walk_revisions()}
    if current not in known:
        raise SchemaError(
            f"database schema {current} is newer than this Relais knows: upgrade Relais, "
            "never run an older version on a newer database"
        )
