"""Closing a file: one unit of work that ends the team, empties the room and keeps the record."""

from __future__ import annotations

import logging
from datetime import datetime

from hub.domain import closure
from hub.domain.closure import CloseReason
from hub.domain.effects import Effect
from hub.domain.persons import Person
from hub.storage.database import UnitOfWork

log = logging.getLogger(__name__)


async def close_file(uow: UnitOfWork, person: Person, reason: CloseReason, *, by: str,
                     now: datetime) -> list[Effect]:
    ref = person.case_ref
    await uow.persons.lock(ref)
    closed, ended, effects = closure.close(person, await uow.team.members(ref), reason, by=by, now=now)
    for member in ended:
        await uow.team.end(ref, member)
    assert closed.closed_at is not None
    await uow.persons.close_file(ref, closed.closed_at, reason.value)
    log.info("file %s closed (%s)", ref, reason.value)
    return effects
