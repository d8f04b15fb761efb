"""The alert stack the listener tests run: real MLLP server on TCP, real database, no homeserver."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

from sqlalchemy import select

from hub.clock import FakeClock
from hub.config import MllpConfig
from hub.domain.caseload import Limits
from hub.domain.persons import parse_identifier
from hub.domain.settings import Setting
from hub.domain.team import Member, Role
from hub.inbound.fhir_notify import parse_bundle
from hub.inbound.hl7v2 import parse
from hub.inbound.mllp_server import Hl7Listener, MllpServer
from hub.metrics import Metrics
from hub.services import cases
from hub.services.alerts import AlertService
from hub.storage.database import Database
from hub.storage.models import OutboxRow

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
PARSERS = {"hl7": parse, "fhir": parse_bundle}
MAX_FRAME = 16384


@dataclass
class Stack:
    db: Database
    clock: FakeClock
    metrics: Metrics
    service: AlertService
    server: MllpServer

    @property
    def port(self) -> int:
        assert self.server.port is not None
        return self.server.port

    async def person(self, *ids: str, gp: str | None = "@gp:test") -> str:
        async with self.db.unit() as uow:
            person, _warn, _effects = await cases.open_case(
                uow, referent="@cm:test", name="Jeanne Test", born=None,
                identifiers=[parse_identifier(i) for i in ids], limits=Limits(40, 60, 50), now=self.clock.now(),
                tz=self.clock.tz)
            if gp:
                await uow.team.add(person.case_ref, Member(gp, Role.GP, self.clock.now()))
        return person.case_ref

    async def notices(self, case_ref: str) -> list[dict[str, Any]]:
        async with self.db.unit() as uow:
            rows = await uow.session.execute(
                select(OutboxRow).where(OutboxRow.case_ref == case_ref, OutboxRow.action == "notify",
                                        OutboxRow.key.like("alert:%")).order_by(OutboxRow.id))
            return [{"key": r.key, **r.payload} for r in rows.scalars()]

    async def messages(self) -> int:
        async with self.db.unit() as uow:
            return await uow.alerts.count_messages()

    async def setting(self, case_ref: str) -> tuple[Setting, Any]:
        async with self.db.unit() as uow:
            person = await uow.persons.get(case_ref)
        assert person is not None
        return person.setting, person.hospital_return


async def make_stack(db: Database, timezone: str | None = None, **mllp: Any) -> Stack:
    """`timezone`: the territory's `[care] timezone`, wired as hub/app.py does (default: Paris)."""
    clock = FakeClock(NOW) if timezone is None else FakeClock(NOW, timezone)
    metrics = Metrics()
    parsers = PARSERS if timezone is None else {"hl7": partial(parse, tz=clock.tz),
                                                "fhir": partial(parse_bundle, tz=clock.tz)}
    service = AlertService(db, clock, parsers, ins_test_oids=True, metrics=metrics)
    config = MllpConfig(port=0, **{"max_frame_bytes": MAX_FRAME, **mllp})
    server = MllpServer(config, Hl7Listener(service, clock, metrics).on_frame)
    await server.start()
    return Stack(db, clock, metrics, service, server)
