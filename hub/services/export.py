"""A file's export, for the person's right of access: everything kept about them, as named sections.

Each section is one small async function of the unit of work and the person; another feature
adds its own by appending to `SECTIONS` (e.g. consent records). Values are JSON-ready.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict
from datetime import date, datetime
from enum import Enum
from typing import Any

from hub.domain.errors import DomainError
from hub.domain.persons import Person
from hub.services import concertations, consent, referrals, rights
from hub.storage.database import UnitOfWork

SectionFn = Callable[[UnitOfWork, Person], Awaitable[Any]]
FORMAT = "relais-export/1"


def plain(value: Any) -> Any:
    """Dataclasses, enums and dates as JSON values."""
    if hasattr(value, "__dataclass_fields__"):
        return plain(asdict(value))
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


async def _person(uow: UnitOfWork, person: Person) -> Any:
    return plain({
        "case_ref": person.case_ref, "display_name": person.display_name, "birth_date": person.birth_date,
        "referent": person.referent, "opened_at": person.opened_at, "closed_at": person.closed_at,
        "close_reason": person.close_reason, "setting": person.setting, "setting_since": person.setting_since,
        "hospital_return": person.hospital_return,
    })


async def _identifiers(uow: UnitOfWork, person: Person) -> Any:
    return [{"authority": i.authority, "value": i.value} for i in person.identifiers]


async def _team(uow: UnitOfWork, person: Person) -> Any:
    return plain(await uow.team.members(person.case_ref))


async def _plan(uow: UnitOfWork, person: Person) -> Any:
    return plain(await uow.plans.versions(person.case_ref))


async def _evaluations(uow: UnitOfWork, person: Person) -> Any:
    return [plain(asdict(e) | {"recorded_at": at}) for e, at in await uow.reports.evaluations(person.case_ref)]


async def _settings(uow: UnitOfWork, person: Person) -> Any:
    return plain(await uow.alerts.changes(person.case_ref))


async def _alerts(uow: UnitOfWork, person: Person) -> Any:
    return plain(await uow.alerts.alerts_of(person.case_ref))


async def _handovers(uow: UnitOfWork, person: Person) -> Any:
    return plain(await uow.handovers.of_case(person.case_ref))


async def _breaks(uow: UnitOfWork, person: Person) -> Any:
    return plain(await uow.handovers.breaks(person.case_ref))


async def _audit(uow: UnitOfWork, person: Person) -> Any:
    return [plain({"at": at, "actor": actor, "action": action, "detail": detail})
            for at, actor, action, detail in await uow.audit.entries(person.case_ref)]


async def _referral(uow: UnitOfWork, person: Person) -> Any:
    return await referrals.export_section(uow, person.case_ref)


SECTIONS: tuple[tuple[str, SectionFn], ...] = (
    ("person", _person),
    ("identifiers", _identifiers),
    ("team", _team),
    ("plan_versions", _plan),
    ("evaluations", _evaluations),
    ("settings", _settings),
    ("alerts", _alerts),
    ("handovers", _handovers),
    ("continuity_breaks", _breaks),
    ("audit", _audit),
    ("consent", consent.export_section),
    ("concertations", concertations.export_section),
    ("referral", _referral),
    ("rights_reviews", rights.export_section),
)


async def export(uow: UnitOfWork, case_ref: str, now: datetime,
                 sections: Sequence[tuple[str, SectionFn]] = SECTIONS) -> dict[str, Any]:
    person = await uow.persons.get(case_ref)
    if person is None:
        raise DomainError("error.unknown_case", case=case_ref)
    out: dict[str, Any] = {"format": FORMAT, "exported_at": now.isoformat()}
    for name, section in sections:
        out[name] = await section(uow, person)
    return out
