"""INSERT … ON CONFLICT DO NOTHING, on SQLite and PostgreSQL alike.

A key that must be written once (an outbox entry's key, a hospital message's sender, control id
and digest) used to cost a SELECT, then an INSERT under a savepoint in case a concurrent unit won
the race: three or four round trips where one does. Both backends have the same statement
(SQLite ≥ 3.35, PostgreSQL ≥ 9.5), each through its own SQLAlchemy dialect construct.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase

__all__ = ["insert_once"]


async def insert_once(session: AsyncSession, model: type[DeclarativeBase], values: Mapping[str, Any],
                      conflict: Sequence[str]) -> int | None:
    """Insert one row of `model` (its mapped attribute names → values) unless a row with the same
    `conflict` columns (a unique constraint's, in its order) exists; returns the new row's `id`,
    or None when one was there already. Pending ORM changes are flushed first (an ORM-enabled
    INSERT), so the statement sees them. Other integrity errors (a foreign key) still raise."""
    bind = session.bind
    dialect = sqlite if bind is not None and bind.dialect.name == "sqlite" else postgresql
    statement = (dialect.insert(model).values(**values)
                 .on_conflict_do_nothing(index_elements=list(conflict))
                 .returning(model.id))  # type: ignore[attr-defined]
    result = await session.execute(statement)
    new_id = result.scalar_one_or_none()
    return None if new_id is None else int(new_id)
