"""Shared fixtures: one real Synapse for the whole test session."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import hypothesis
import pytest

from hub.devserver import DevSynapse

# Property tests replay the same inputs on every run: a failure in CI can be reproduced, and CI
# never fails by the luck of the draw (tests/fuzz and bench/reliability.py explore further).
hypothesis.settings.register_profile("relais", derandomize=True, database=None)
hypothesis.settings.load_profile("relais")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A test using the homeserver or a database is marked so the PostgreSQL pass selects it
    (.ci/run: -m "db or matrix"), even if its author forgot the marker. A test that only means
    something on PostgreSQL (`postgres_only`) is deselected, not skipped, outside that pass: CI
    runs both passes and skips nothing."""
    on_postgres = bool(os.environ.get(POSTGRES_ENV))
    kept: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        names = getattr(item, "fixturenames", ())
        if "synapse" in names and item.get_closest_marker("matrix") is None:
            item.add_marker(pytest.mark.matrix)
        if "db_url" in names and item.get_closest_marker("db") is None:
            item.add_marker(pytest.mark.db)
        if item.get_closest_marker("postgres_only") is not None and not on_postgres:
            dropped.append(item)
        else:
            kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.fixture(scope="session")
async def synapse(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[DevSynapse]:
    """A private Synapse on 127.0.0.1, started once and stopped at session end."""
    server = DevSynapse(tmp_path_factory.mktemp("synapse"))
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


# --- databases: every storage and integration test runs on the backend CI selects ---------

import secrets as _secrets  # noqa: E402

from hub.storage import migrate  # noqa: E402
from hub.storage.database import Database  # noqa: E402

#: Set by .ci/run for the PostgreSQL pass, e.g. postgresql+asyncpg://postgres@127.0.0.1:5432/test
POSTGRES_ENV = "RELAIS_TEST_POSTGRES"


def backend() -> str:
    return "postgresql" if os.environ.get(POSTGRES_ENV) else "sqlite"


@pytest.fixture
async def db_url(tmp_path: Path) -> AsyncIterator[str]:
    """A fresh, empty database: a SQLite file, or a new PostgreSQL database dropped afterwards."""
    base = os.environ.get(POSTGRES_ENV)
    if not base:
        yield f"sqlite+aiosqlite:///{tmp_path / 'relais.db'}"
        return
    import asyncpg

    name = f"relais_t_{_secrets.token_hex(6)}"
    dsn = base.replace("postgresql+asyncpg://", "postgresql://")
    admin = await asyncpg.connect(dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    yield base.rsplit("/", 1)[0] + "/" + name
    admin = await asyncpg.connect(dsn)
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.close()


@pytest.fixture
async def database(db_url: str) -> AsyncIterator[Database]:
    """A migrated database on the selected backend."""
    db = Database(db_url)
    await migrate.upgrade(db.engine)
    yield db
    await db.close()
