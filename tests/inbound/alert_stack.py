"""The alert stack the listener tests run: real MLLP server on TCP, real database, no homeserver."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from functools import partial
from typing import Any

import aiohttp
from aiohttp import web
from sqlalchemy import select

from hub.clock import FakeClock
from hub.config import MllpConfig
from hub.domain.alerts import Alert
from hub.domain.caseload import Limits
from hub.domain.persons import parse_identifier
from hub.domain.settings import Setting
from hub.domain.team import Member, Role
from hub.domain.transitions import PARIS
from hub.inbound.fhir_http import PATH, fhir_routes
from hub.inbound.fhir_notify import parse_bundle
from hub.inbound.hl7v2 import PRODUCTION, parse
from hub.inbound.mllp_server import Hl7Listener, MllpServer
from hub.metrics import Metrics
from hub.services import cases
from hub.services.alerts import AlertService
from hub.storage.database import Database
from hub.storage.models import OutboxRow

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
#: The stack is a test hub, as the demo is (`ins_test_oids`, `processing_ids`): the national PAM
#: example is a debugging message (MSH-11 = D). Tests of the production rule pass their own.
TEST_PROCESSING_IDS = frozenset({"P", "T", "D"})


def parse_on_test_hub(raw: bytes, tz: tzinfo = PARIS) -> Alert:
    """hl7v2.parse as a test hub reads: every processing ID taken."""
    return parse(raw, tz, processing_ids=TEST_PROCESSING_IDS)


PARSERS = {"hl7": parse_on_test_hub, "fhir": partial(parse_bundle, test_data=True)}
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


async def make_stack(db: Database, timezone: str | None = None,
                     processing_ids: frozenset[str] = TEST_PROCESSING_IDS, **mllp: Any) -> Stack:
    """`timezone`: the territory's `[care] timezone`, `processing_ids` its `[alerts] processing_ids`,
    wired as hub/app.py does (default: Paris, a test hub)."""
    clock = FakeClock(NOW) if timezone is None else FakeClock(NOW, timezone)
    metrics = Metrics()
    parsers = {"hl7": partial(parse, tz=clock.tz, processing_ids=processing_ids),
               "fhir": partial(parse_bundle, tz=clock.tz, test_data=bool(processing_ids - PRODUCTION))}
    service = AlertService(db, clock, parsers, ins_test_oids=True, metrics=metrics)
    config = MllpConfig(port=0, **{"max_frame_bytes": MAX_FRAME, **mllp})
    server = MllpServer(config, Hl7Listener(service, clock, metrics).on_frame)
    await server.start()
    return Stack(db, clock, metrics, service, server)


#: The FHIR bearer token the test doors take.
FHIR_TOKEN = "t" * 40
Post = Callable[[dict[str, Any] | bytes], Awaitable[tuple[int, dict[str, Any]]]]


@asynccontextmanager
async def fhir_door(stack: Stack, content_type: str = "application/fhir+json") -> AsyncIterator[Post]:
    """The real `$process-message` route on a loopback socket over the stack's service (metrics
    wired as hub/app.py does): `post(bundle)` sends a dict as JSON, or bytes as they are, and
    returns (status, answer)."""
    app = web.Application()
    app.add_routes(fhir_routes(stack.service, FHIR_TOKEN, stack.metrics))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}{PATH}"
    try:
        async with aiohttp.ClientSession() as http:
            async def post(body: dict[str, Any] | bytes) -> tuple[int, dict[str, Any]]:
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                headers = {"Content-Type": content_type, "Authorization": f"Bearer {FHIR_TOKEN}"}
                async with http.post(url, data=data, headers=headers) as resp:
                    return resp.status, dict(await resp.json(content_type=None))
            yield post
    finally:
        await runner.cleanup()
