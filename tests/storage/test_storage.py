"""Storage on the selected backend (SQLite by default, PostgreSQL in CI's second pass)."""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import text

from hub.domain.persons import INS, Identifier, Person
from hub.domain.team import Member, Role
from hub.errors import SchemaError
from hub.storage import migrate
from hub.storage.database import Database
from tests.conftest import backend

pytestmark = pytest.mark.db
NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


async def test_backend_is_the_one_ci_selected(database: Database) -> None:
    assert database.engine.dialect.name == backend()


async def test_person_round_trip_with_identifiers_and_team(database: Database) -> None:
    person = Person("R-2026-0001", "Jeanne Dupont", "@cm:x", NOW, date(1940, 2, 3),
                    (Identifier(INS, "255081416802538"), Identifier("CHU-X", "42")))
    async with database.unit() as uow:
        await uow.persons.add(person)
        await uow.team.add(person.case_ref, Member("@gp:x", Role.GP, NOW, "Cabinet"))
    async with database.unit() as uow:
        loaded = await uow.persons.get("R-2026-0001")
        members = await uow.team.members("R-2026-0001")
        owner = await uow.persons.owner_of(Identifier("CHU-X", "42"))
    assert loaded == person
    assert members == [Member("@gp:x", Role.GP, NOW, "Cabinet")]
    assert owner == "R-2026-0001"


async def test_case_sequence_is_per_year_and_never_reused(database: Database) -> None:
    async with database.unit() as uow:
        got = [await uow.persons.next_sequence(2026) for _ in range(3)]
        other = await uow.persons.next_sequence(2027)
    assert got == [1, 2, 3]
    assert other == 1


async def test_a_failed_unit_of_work_changes_nothing(database: Database) -> None:
    with pytest.raises(RuntimeError):
        async with database.unit() as uow:
            await uow.outbox.add("k:1", "notify", None, {"x": 1}, NOW)
            raise RuntimeError("boom")
    async with database.unit() as uow:
        assert await uow.outbox.count("pending") == 0


async def test_outbox_key_is_idempotent(database: Database) -> None:
    async with database.unit() as uow:
        assert await uow.outbox.add("cmd:$e:0", "notify", None, {}, NOW) is True
        assert await uow.outbox.add("cmd:$e:0", "notify", None, {}, NOW) is False
        assert await uow.events.claim("$e", NOW) is True
        assert await uow.events.claim("$e", NOW) is False
    async with database.unit() as uow:
        assert len(await uow.outbox.pending(NOW)) == 1


async def test_run_refuses_an_unmigrated_or_newer_database(db_url: str) -> None:
    db = Database(db_url)
    try:
        with pytest.raises(SchemaError, match="relais db upgrade"):
            await migrate.require_head(db.engine)
        await migrate.upgrade(db.engine)
        await migrate.require_head(db.engine)
        async with db.engine.begin() as conn:
            await conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
        with pytest.raises(SchemaError, match="newer"):
            await migrate.require_head(db.engine)
    finally:
        await db.close()


def test_head_revision_constant_is_alembics_head() -> None:
    # `relais run` compares the database with this constant without importing Alembic.
    assert migrate.HEAD_REVISION == migrate.head_revision()


async def test_start_on_a_migrated_database_does_not_import_alembic(db_url: str) -> None:
    db = Database(db_url)
    try:
        await migrate.upgrade(db.engine)
    finally:
        await db.close()
    script = (
        "import asyncio, sys\n"
        "from hub.storage import migrate\n"
        "from hub.storage.database import Database\n"
        "async def main():\n"
        f"    db = Database({db_url!r})\n"
        "    await migrate.require_head(db.engine)\n"
        "    await db.close()\n"
        "asyncio.run(main())\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'alembic'))\n"
    )
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", script, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    assert out.decode().strip() == "[]"
