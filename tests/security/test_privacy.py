"""What Relais keeps stays private to it (issue 17 items 5 and 6): no SQL parameter in a log line,
the SQLite file 0600 in a 0700 folder whatever the umask, the export written 0600 and never
through a symlink."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from hub.domain.persons import INS, Identifier, Person
from hub.records import RecordError, write_private
from hub.storage import migrate
from hub.storage.database import Database, make_engine

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
NAME = "Jeanne Zéphyrine Secretname"
NIR = "255081416802538"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask_022() -> Iterator[None]:
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


@pytest.mark.db
@pytest.mark.parametrize("clash", ["case reference", "INS"])
async def test_a_database_error_leaves_no_personal_data_in_the_log(
        database: Database, caplog: pytest.LogCaptureFixture, clash: str) -> None:
    first = Person("R-2026-0001", NAME, "@cm:x", NOW, date(1938, 5, 14), (Identifier(INS, NIR),))
    # The same file again, or another file with the same INS: a unique violation either way.
    second = first if clash == "case reference" else Person("R-2026-0002", "Paul Secretname", "@cm:x", NOW,
                                                            date(1938, 5, 14), (Identifier(INS, NIR),))
    async with database.unit() as uow:
        await uow.persons.add(first)
    log = logging.getLogger("hub.commands.dispatcher")
    with caplog.at_level(logging.INFO):  # `relais run`'s level (aiosqlite's debug lines are off there)
        try:
            async with database.unit() as uow:
                await uow.persons.add(second)
        except Exception:
            log.exception("command failed in room %s (reference %s)", "!room:x", "abcd")  # as the dispatcher
        else:
            raise AssertionError("the duplicate was accepted")
    assert "IntegrityError" in caplog.text or "UniqueViolation" in caplog.text, caplog.text
    for secret in ("Secretname", "Zéphyrine", "1938-05-14", "1938, 5, 14", NIR):
        assert secret not in caplog.text, caplog.text


@pytest.mark.backend_independent
async def test_the_sqlite_file_is_private_whatever_the_umask(tmp_path: Path, umask_022: None) -> None:
    folder = tmp_path / "var" / "data"
    engine = make_engine(f"sqlite+aiosqlite:///{folder / 'relais.db'}")
    try:
        await migrate.upgrade(engine)
        async with engine.connect() as conn:  # WAL and SHM exist while a connection is open
            await conn.exec_driver_sql("SELECT 1")
            files = sorted(folder.iterdir())
            assert [f.name for f in files][:1] == ["relais.db"], files
            assert {f.name: mode(f) for f in files} == {f.name: 0o600 for f in files}
    finally:
        await engine.dispose()
    assert mode(folder) == 0o700
    # A file an older Relais created 0644 is tightened at the next start.
    loose = tmp_path / "old.db"
    loose.touch(mode=0o644)
    os.chmod(loose, 0o644)
    engine = make_engine(f"sqlite+aiosqlite:///{loose}")
    await engine.dispose()
    assert mode(loose) == 0o600


def test_the_export_is_written_0600_through_a_temporary_file(tmp_path: Path, umask_022: None) -> None:
    out = tmp_path / "export.json"
    out.write_text("old", encoding="utf-8")
    os.chmod(out, 0o644)
    write_private(str(out), '{"case": "R-2026-0001"}')
    assert out.read_text(encoding="utf-8") == '{"case": "R-2026-0001"}\n'
    assert mode(out) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["export.json"]  # no temporary file left


def test_the_export_never_writes_through_a_symlink(tmp_path: Path, umask_022: None) -> None:
    elsewhere = tmp_path / "someone-elses-file"
    elsewhere.write_text("theirs", encoding="utf-8")
    os.chmod(elsewhere, 0o644)
    out = tmp_path / "export.json"
    out.symlink_to(elsewhere)
    write_private(str(out), '{"case": "R-2026-0001"}')
    assert elsewhere.read_text(encoding="utf-8") == "theirs" and mode(elsewhere) == 0o644
    assert not out.is_symlink() and mode(out) == 0o600


def test_an_export_to_a_folder_that_does_not_exist_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(RecordError, match=r"cannot write .*missing"):
        write_private(str(tmp_path / "missing" / "export.json"), "{}")
