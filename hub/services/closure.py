"""Closing a file: one unit of work that ends the team, empties the room and keeps the record."""

from __future__ import annotations

import logging
from datetime import datetime
from zoneinfo import ZoneInfo

from hub.clock import DEFAULT_TIMEZONE
from hub.domain import closure
from hub.domain.closure import CloseReason
from hub.domain.effects import Effect
from hub.domain.persons import Person
from hub.i18n.catalog import Catalog
from hub.services import concertations
from hub.storage.database import UnitOfWork

log = logging.getLogger(__name__)


async def close_file(uow: UnitOfWork, person: Person, reason: CloseReason, *, by: str,
                     now: datetime, catalog: Catalog | None = None, tz: ZoneInfo | None = None) -> list[Effect]:
    """A planned concertation that has not ended is cancelled first, with its iCalendar
    cancellation, while its participants are still in the room to receive it: otherwise it would
    stay in their calendars for a meeting that will never be held."""
    ref = person.case_ref
    await uow.persons.lock(ref)
    zone = tz or ZoneInfo(DEFAULT_TIMEZONE)
    closed, ended, effects = closure.close(person, await uow.team.members(ref), reason, by=by, now=now)
    upcoming = await uow.concertations.pending(ref)
    if upcoming is not None and now < upcoming.ends_at:
        cancelled = await concertations.cancel(uow, person, by=by, now=now,
                                               catalog=catalog or Catalog("fr", zone.key), tz=zone)
        effects = [*cancelled, *effects]
    for member in ended:
        await uow.team.end(ref, member)
    assert closed.closed_at is not None
    await uow.persons.close_file(ref, closed.closed_at, reason.value)
    log.info("file %s closed (%s)", ref, reason.value)
    return effects
