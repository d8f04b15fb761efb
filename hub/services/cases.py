"""Use cases about files: open one, add identifiers, read the caseload."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from hub.clock import local_date
from hub.domain import caseload, persons
from hub.domain.effects import CreateRoom, Effect, Invite, Notify
from hub.domain.errors import DomainError
from hub.domain.persons import Identifier, Person
from hub.domain.team import Member, Role
from hub.services import plans
from hub.storage.database import UnitOfWork


def month_start(now: datetime, tz: ZoneInfo) -> datetime:
    """The first instant of the territory's current month (intake is counted per local month)."""
    local = now.astimezone(tz)
    return local.replace(day=1, hour=0, minute=0, second=0, microsecond=0).astimezone(UTC)


async def load_caseload(uow: UnitOfWork, referent: str, now: datetime, tz: ZoneInfo) -> caseload.Caseload:
    """`tz` is required: the month of the intake and "today" are the territory's (SPEC §5)."""
    zone = tz
    refs = await uow.persons.active_refs(referent)
    return caseload.Caseload(
        active=len(refs),
        intake_this_month=await uow.persons.count_opened_since(referent, month_start(now, zone)),
        without_gp=await uow.team.count_without_gp(refs),
        overdue_reevaluations=await plans.count_overdue(uow, referent, local_date(now, zone)),
        items_without_provider=await uow.plans.count_without_provider(referent),
        rights_reviews=await uow.rights.count_open(referent),
    )


async def check_identifiers_free(uow: UnitOfWork, identifiers: Sequence[Identifier]) -> None:
    """Refuse an identifier an open file holds (however its authority is spelled:
    PersonRepo.owner_of). One a closed file holds is free: the person may be followed again."""
    for ident in identifiers:
        if await uow.persons.owner_of(ident) is not None:
            raise DomainError("error.identifier_taken", value=ident.label())


async def take_from_closed(uow: UnitOfWork, identifiers: Sequence[Identifier], *, to: str, by: str,
                           now: datetime) -> list[str]:
    """Move identifiers still held by closed files to the file `to` (opened again for a person
    followed before, or given by `!id add`): hospital messages then find the open file. Each
    closed file's audit log says where they went (no identifier in it). Returns those files'
    case references, in order, once each."""
    previous: list[str] = []
    for ident in identifiers:
        closed = await uow.persons.release_closed(ident)
        if closed is not None and closed not in previous:
            previous.append(closed)
    for closed in previous:
        await uow.audit.record(now, by, "identifiers moved", closed, {"to": to})
    return previous


async def open_case(
    uow: UnitOfWork, *, referent: str, name: str, born: date | None, identifiers: Sequence[Identifier],
    limits: caseload.Limits, now: datetime, tz: ZoneInfo,
) -> tuple[Person, list[str], list[Effect]]:
    display = persons.check_display_name(name)
    zone = tz
    persons.check_birth_date(born, local_date(now, zone))
    persons.check_new_identifiers((), tuple(identifiers))
    await check_identifiers_free(uow, identifiers)
    load = await load_caseload(uow, referent, now, zone)
    warnings = caseload.check_intake(load, limits)
    year = local_date(now, zone).year
    ref = persons.case_ref(year, await uow.persons.next_sequence(year))
    person = Person(case_ref=ref, display_name=display, referent=referent, opened_at=now,
                    birth_date=born, identifiers=tuple(identifiers))
    previous = await take_from_closed(uow, identifiers, to=ref, by=referent, now=now)
    await uow.persons.add(person)
    await uow.team.add(ref, Member(user_id=referent, role=Role.CASE_MANAGER, since=now))
    effects: list[Effect] = [
        CreateRoom(ref),
        Invite(ref, referent),
        Notify("team.update", ref, "team.opened",
               {"case": ref, "name": display,
                "born": {"key": "team.born", "params": {"born": born.isoformat()}} if born else "",
                "referent": referent}, mentions=(referent,)),
    ]
    if previous:  # followed before: said in the new room, where the team will look for the history
        effects.append(Notify("team.update", ref, "team.previous", {"cases": ", ".join(previous)}))
    return person, warnings, effects
