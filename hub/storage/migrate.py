"""Schema migrations: forward-only Alembic revisions shipped inside the package."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.errors import SchemaError

_HERE = Path(__file__).parent / "migrations"


def _alembic_config(connection: Connection | None = None) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(_HERE))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None
    return head


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def upgrade(engine: AsyncEngine) -> tuple[str | None, str]:
    """Bring the schema to head; return (before, after)."""
    async with engine.begin() as conn:
        before = await conn.run_sync(_current)
        _refuse_newer(before)
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
    known = {rev.revision for rev in ScriptDirectory.from_config(_alembic_config()).walk_revisions()}
    if current not in known:
        raise SchemaError(
            f"database schema {current} is newer than this Relais knows: upgrade Relais, "
            "never run an older version on a newer database"
        )
