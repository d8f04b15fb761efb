"""Many rows into one table in one executemany, without SQLAlchemy's per-row machinery.

The re-evaluation sweep writes tens of thousands of rows at once (one outbox entry and one sent
occasion per prompt). Through the ORM, or even a Core `insert()` with a list of parameter
sets, SQLAlchemy builds and processes a parameter dictionary per row, which was most of the
sweep's time. Here the INSERT is compiled once for the backend, each column's bind processor
(the same ones SQLAlchemy would apply: time zones and date formats on SQLite, JSON encoding…)
is looked up once, and the driver receives plain tuples, in its own executemany (sqlite3's, or
asyncpg's prepared-statement pipeline).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from operator import itemgetter
from typing import Any

from sqlalchemy import JSON, FromClause, Table, insert
from sqlalchemy.ext.asyncio import AsyncSession


async def insert_rows(session: AsyncSession, table: FromClause, rows: Sequence[Mapping[str, Any]]) -> int:
    """INSERT every row (all with the same keys, the table's column names) into `table` (a
    model's `__table__`) in the session's transaction; returns how many. Integrity errors come
    out as SQLAlchemy's IntegrityError."""
    assert isinstance(table, Table), "a mapped table"
    if not rows:
        return 0
    names = list(rows[0])
    conn = await session.connection()
    dialect = conn.dialect
    compiled = insert(table).values({name: None for name in names}).compile(dialect=dialect)
    order = list(compiled.positiontup or names) if compiled.positional else names
    columns = [table.c[name] for name in order]  # the bind names are the column names given
    # Column by column, in C loops (`map` over an itemgetter, then the bind processor): a
    # generator per row and per column was a fifth of a first sweep's time.
    values = []
    for column, process in zip(columns, _converters(columns, dialect), strict=True):
        cells: list[Any] = list(map(itemgetter(column.key), rows))
        values.append(cells if process is None else list(map(process, cells)))
    if dialect.name == "postgresql":
        # One statement for the lot: each column as one array, unnested by the server (an
        # executemany is one execution per row there: 0.7 s of a first sweep's 1.9 s).
        await conn.exec_driver_sql(_unnest_insert(table, columns, dialect), tuple(values))
        return len(rows)
    params: list[Any] = list(zip(*values, strict=True))
    if not compiled.positional:
        params = [dict(zip(order, row, strict=True)) for row in params]
    await conn.exec_driver_sql(str(compiled), params)
    return len(rows)


def _unnest_insert(table: Table, columns: Sequence[Any], dialect: Any) -> str:
    """`INSERT INTO t (a, b) SELECT a, b FROM unnest($1::A[], $2::B[]) AS u(a, b)` for
    PostgreSQL. JSON values (already serialised by their bind processor) travel as text and are
    cast back by the server."""
    quote = dialect.identifier_preparer.quote
    names = [quote(column.name) for column in columns]
    arrays = [f"${i}::{'TEXT' if isinstance(c.type, JSON) else c.type.compile(dialect=dialect)}[]"
              for i, c in enumerate(columns, start=1)]
    picked = [f"u.{name}::JSON" if isinstance(c.type, JSON) else f"u.{name}"
              for name, c in zip(names, columns, strict=True)]
    return (f"INSERT INTO {dialect.identifier_preparer.format_table(table)} ({', '.join(names)}) "
            f"SELECT {', '.join(picked)} FROM unnest({', '.join(arrays)}) AS u({', '.join(names)})")


_NOTHING = object()


def _converters(columns: Sequence[Any], dialect: Any) -> list[Callable[[Any], Any] | None]:
    """Each column's bind processor (None: the value goes as it is), remembering its last value:
    the rows of one call share many (the sweep's `now`, its states), and formatting a timestamp
    for SQLite 17 000 times was a tenth of a first sweep."""

    def remembering(process: Callable[[Any], Any]) -> Callable[[Any], Any]:
        last: list[Any] = [_NOTHING, None]

        def convert(value: Any) -> Any:
            if value is not last[0]:
                last[0], last[1] = value, process(value)
            return last[1]

        return convert

    processors = [column.type._cached_bind_processor(dialect) for column in columns]
    return [None if process is None else remembering(process) for process in processors]
