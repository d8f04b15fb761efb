"""The operator's read-only commands: `relais export` (one file, JSON) and `relais report` (CSV).

They open the database directly, refuse a schema that is not current, and never touch Matrix.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, date, datetime
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


async def export_json(config: Config, case_ref: str) -> str:
    db = Database(config.database.url)
    try:
        await migrate.require_head(db.engine)
        async with db.unit() as uow:
            data = await export.export(uow, case_ref, datetime.now(UTC))
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
        async with db.unit() as uow:
            period, sections = await report.build(
                uow, start, end, today=SystemClock(care.timezone).today(), tz=ZoneInfo(care.timezone),
                case_managers=care.case_managers,
                limits=Limits(care.caseload_target, care.caseload_max, care.intake_per_month))
    except DomainError as exc:
        raise _refusal(config, exc) from None
    finally:
        await db.close()
    return report.to_csv(period, sections)


def write_private(path: str, text: str) -> None:
    """The export holds personal data: readable by its owner only."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text + "\n")
