"""The operator's read-only commands: `relais export` (one file, JSON) and `relais report` (CSV).

They open the database directly, refuse a schema that is not current, and never touch Matrix.
"""

from __future__ import annotations

import getpass
import json
import os
import secrets
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from hub.clock import SystemClock
from hub.config import Config
from hub.domain.caseload import Limits
from hub.domain.errors import DomainError
from hub.errors import RelaisError
from hub.i18n.catalog import Catalog
from hub.services import export, report
from hub.storage import migrate
from hub.storage.database import Database


class RecordError(RelaisError):
    """A refused export or report, in the configured language."""


def _refusal(config: Config, exc: DomainError) -> RecordError:
    return RecordError(Catalog(config.care.language).text(exc.key, **exc.params))


def _system_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (a container's numeric uid)
        return str(os.getuid())


async def export_json(config: Config, case_ref: str) -> str:
    db = Database(config.database.url)
    try:
        await migrate.require_head(db.engine)
        async with db.unit() as uow:
            now = datetime.now(UTC)
            data = await export.export(uow, case_ref, now)
            # Who read the whole record, as for a command (SPEC §4): the system account that ran it.
            await uow.audit.record(now, f"operator:{_system_user()}", "export", case_ref, {})
    except DomainError as exc:
        raise _refusal(config, exc) from None
    finally:
        await db.close()
    return json.dumps(data, ensure_ascii=False, indent=2)


async def report_csv(config: Config, start: date | None, end: date | None) -> str:
    care = config.care
    db = Database(config.database.url)
    try:
        await migrate.require_head(db.engine)
        today = SystemClock(care.timezone).today()  # the territory's date
        async with db.unit() as uow:
            period, sections = await report.build(
                uow, start, end, today=today, tz=ZoneInfo(care.timezone), case_managers=care.case_managers,
                limits=Limits(care.caseload_target, care.caseload_max, care.intake_per_month))
    except DomainError as exc:
        raise _refusal(config, exc) from None
    finally:
        await db.close()
    return report.to_csv(period, sections, today)


def write_private(path: str, text: str) -> None:
    """Write the export (personal data) readable by its owner only, whole or not at all.

    The text goes to a temporary file in the same folder, created 0600 with O_EXCL and
    O_NOFOLLOW (a symlink planted at the temporary name is refused, never followed), then
    renamed over `path`: an existing file's looser mode or a symlink at `path` is replaced, not
    written through. Raises RecordError naming the path when the folder cannot take it.
    """
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        raise RecordError(f"cannot write {path}: {exc.strerror}") from None
    try:
        os.fchmod(fd, 0o600)  # whatever the umask
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise RecordError(f"cannot write {path}: {exc.strerror}") from None
