"""Relais writes keys once with INSERT … ON CONFLICT … RETURNING (SQLite ≥ 3.35): an older SQLite
is refused at once, with what to do, instead of failing on the first command."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.errors import RelaisError
from hub.storage import database
from hub.storage.database import SQLITE_MINIMUM, make_engine


def test_an_older_sqlite_is_refused_with_what_to_do(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(database.sqlite3, "sqlite_version_info", (3, 34, 1))
    monkeypatch.setattr(database.sqlite3, "sqlite_version", "3.34.1")
    with pytest.raises(RelaisError, match=r"SQLite 3\.35\.0 or newer .* this Python has 3\.34\.1: use PostgreSQL"):
        make_engine(f"sqlite+aiosqlite:///{tmp_path / 'relais.db'}")
    assert not (tmp_path / "relais.db").exists()  # refused before anything is made
    make_engine("postgresql+asyncpg://relais@127.0.0.1:5432/relais")  # PostgreSQL is not concerned


def test_this_python_has_a_recent_enough_sqlite() -> None:
    assert database.sqlite3.sqlite_version_info >= SQLITE_MINIMUM
