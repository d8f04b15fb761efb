"""Use cases about files: open one, add identifiers, read the caseload."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime

from hub.domain import caseload, identity, persons
from hub.domain.effects import CreateRoom, Effect, Invite, Notify
from hub.domain.errors import DomainError
from hub.domain.persons import Identifier, Person
from hub.domain.team import Member, Role
from hub.services import plans
from hub.storage.database import UnitOfWork


def month_start(now: datetime) -> datetime:
    return datetime(now.year, now.month, 1, tzinfo=UTC)


async def load_caseload(uow: UnitOfWork, referent: str, now: datetime) -> caseload.Caseload:
    refs = await uow.persons.active_refs(referent)
    return caseload.Caseload(
        active=len(refs),
        intake_this_month=await uow.persons.count_opened_since(referent, month_start(now)),
        without_gp=await uow.team.count_without_gp(refs),
        overdue_reevaluations=await plans.count_overdue(uow, referent, now.date()),
        items_without_provider=await uow.plans.count_without_provider(referent),
        rights_reviews=await uow.rights.count_open(referent),
    )


async def check_identifiers_free(uow: UnitOfWork, identifiers: Sequence[Identifier]) -> None:
    for ident in identifiers:
        for authority in identity.spellings(ident.authority):  # an OID bare or as urn:oid:
            if await uow.persons.owner_of(Identifier(authority, ident.value)) is not None:
                raise DomainError("error.identifier_taken", value=ident.label())


async def open_case(
    uow: UnitOfWork, *, referent: str, name: str, born: date | None, identifiers: Sequence[Identifier],
    limits: caseload.Limits, now: datetime,
) -> tuple[Person, list[str], list[Effect]]:
    display = persons.check_display_name(name)
    persons.check_birth_date(born, now.date())
    persons.check_new_identifiers((), tuple(identifiers))
    await check_identifiers_free(uow, identifiers)
    load = await load_caseload(uow, referent, now)
    warnings = caseload.check_intake(load, limits)
    ref = persons.case_ref(now.year, await uow.persons.next_sequence(now.year))
    person = Person(case_ref=ref, display_name=display, referent=referent, opened_at=now,
                    birth_date=born, identifiers=tuple(identifiers))
    await uow.persons.add(person)
    await uow.team.add(ref, Member(user_id=referent, role=Role.CASE_MANAGER, since=now))
    effects: list[Effect] = [
        CreateRoom(ref),
        Invite(ref, referent),
        Notify("team.update", ref, "team.opened",
               {"case": ref, "name": display, "born": f" ({born.isoformat()})" if born else "",
                "referent": referent}, mentions=(referent,)),
    ]
    return person, warnings, effects
