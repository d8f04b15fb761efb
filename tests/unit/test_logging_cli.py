"""Library INFO lines stay out of the operator's way unless -v asks for them (issue 13)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CONFIG = """
[matrix]
user_id = "@relais:example.org"
password = "a-long-real-secret"
[care]
case_managers = ["@cm:example.org"]
[database]
url = "sqlite+aiosqlite:///{db}"
"""


def _upgrade(tmp_path: Path, *options: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "relais.toml"
    path.write_text(CONFIG.format(db=tmp_path / "relais.db"), encoding="utf-8")
    return subprocess.run([sys.executable, "-m", "hub", *options, "db", "upgrade", "-c", str(path)],
                          capture_output=True, text=True, check=False, timeout=120)


def test_db_upgrade_prints_its_result_not_alembics_info_lines(tmp_path: Path) -> None:
    result = _upgrade(tmp_path)
    assert result.returncode == 0, result.stderr
    assert "database schema: empty →" in result.stdout
    # Without -v alembic printed its plugin list and one line per migration on stderr.
    assert "alembic" not in result.stderr
    assert "Running upgrade" not in result.stderr


def test_verbose_lets_the_library_lines_through(tmp_path: Path) -> None:
    result = _upgrade(tmp_path, "-v")
    assert result.returncode == 0, result.stderr
    assert "INFO alembic.runtime.migration: Running upgrade  -> 0001" in result.stderr
