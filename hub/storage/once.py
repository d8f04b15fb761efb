"""INSERT … ON CONFLICT DO NOTHING, on SQLite and PostgreSQL alike.

A key that must be written once (an outbox entry's key, a hospital message's sender, control id
and digest) used to cost a SELECT, then an INSERT under a savepoint in case a concurrent unit won
the race: three or four round trips where one does. Both backends have the same statement
(SQLite ≥ 3.35, PostgreSQL ≥ 9.5), each through its own SQLAlchemy dialect construct.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase

__all__ = ["dialect_insert", "insert_once", "insert_or_update", "on_sqlite"]


def on_sqlite(session: AsyncSession) -> bool:
    """Whether the session's database is SQLite (else PostgreSQL, the only other backend)."""
    bind = session.bind
    return bind is not None and bind.dialect.name == "sqlite"


def _dialect(session: AsyncSession) -> Any:
    # Imported by name: the engine has loaded its own dialect's package already, and the other
    # one (PostgreSQL's: 18 ms of a SQLite deployment's start) is never needed.
    return importlib.import_module("sqlalchemy.dialects." + ("sqlite" if on_sqlite(session) else "postgresql"))


def dialect_insert(session: AsyncSession, model: type[DeclarativeBase]) -> Any:
    """The backend's own INSERT construct for `model` (it has `on_conflict_do_nothing` and
    `on_conflict_do_update`), for the statements the two helpers below do not cover."""
    return _dialect(session).insert(model)


async def insert_once(session: AsyncSession, model: type[DeclarativeBase], values: Mapping[str, Any],
                      conflict: Sequence[str]) -> Any:
    """Insert one row of `model` (its mapped attribute names → values) unless a row with the same
    `conflict` columns (a unique constraint's, in its order) exists; returns the new row's primary
    key, or None when one was there already. Pending ORM changes are flushed first (an
    ORM-enabled INSERT), so the statement sees them. Other integrity errors (a foreign key)
    still raise."""
    key = inspect(model).primary_key[0]
    statement = (_dialect(session).insert(model).values(**values)
                 .on_conflict_do_nothing(index_elements=list(conflict)).returning(key))
    return (await session.execute(statement)).scalar_one_or_none()


async def insert_or_update(session: AsyncSession, model: type[DeclarativeBase], values: Mapping[str, Any],
                           conflict: Sequence[str]) -> None:
    """Insert one row of `model`, or, when a row with the same `conflict` columns exists, set
    its other columns to `values` (INSERT … ON CONFLICT DO UPDATE): one statement where a read
    then a write took two. ORM objects of that row already loaded in the session are not
    refreshed: read such rows with column SELECTs."""
    insert = _dialect(session).insert(model).values(**values)
    changed = {name: insert.excluded[name] for name in values if name not in conflict}
    await session.execute(insert.on_conflict_do_update(index_elements=list(conflict), set_=changed))
