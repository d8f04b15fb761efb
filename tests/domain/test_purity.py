"""The domain stays free of I/O: no module under hub/domain imports storage, Matrix, HTTP or the clock."""

from __future__ import annotations

import ast
from pathlib import Path

import hub.domain

FORBIDDEN = ("hub.services", "hub.storage", "hub.bots", "hub.commands", "hub.inbound", "hub.app",
             "hub.clock", "hub.http", "sqlalchemy", "nio", "aiohttp", "apscheduler", "asyncio",
             "socket", "os", "subprocess", "logging")


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_domain_modules_import_nothing_that_does_io() -> None:
    folder = Path(hub.domain.__file__).parent
    modules = sorted(folder.glob("*.py"))
    assert len(modules) > 5  # the glob found the domain
    offenders = {
        f"{path.name}: {name}"
        for path in modules
        for name in _imports(path)
        if any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN)
    }
    assert not offenders, sorted(offenders)
