"""Bad input never crashes a surface and always gets a clear error (hypothesis; counts recorded).

The counts are bounded here (the suite's time budget); bench/reliability.py runs many more."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from hub.clock import SystemClock
from hub.inbound.fhir_http import PATH, fhir_routes
from hub.inbound.fhir_notify import parse_bundle
from hub.inbound.hl7v2 import parse as parse_hl7
from hub.services.alerts import AlertService
from hub.storage.database import Database
from tests.fuzz.surfaces import fuzz_command_parser, fuzz_fhir, fuzz_hl7, fuzz_mllp
from tests.samples_path import SAMPLES

TOKEN = "fuzz-fhir-token-5e1f-8b3a0c7e2d9f4a61"
N = {"commands": 400, "hl7": 400, "mllp": 300, "fhir": 200}


def test_command_parser_never_crashes() -> None:
    assert fuzz_command_parser(N["commands"]) >= N["commands"] // 2


def test_hl7_parser_never_crashes() -> None:
    assert fuzz_hl7(N["hl7"]) >= N["hl7"] // 2


def test_mllp_framing_gives_back_exactly_the_frames() -> None:
    assert fuzz_mllp(N["mllp"]) >= N["mllp"] // 2


class FhirEndpoint:
    """The real FHIR route (bearer token, AlertService, database) on a real loopback socket."""

    def __init__(self, db: Database) -> None:
        self.service = AlertService(db, SystemClock(), {"hl7": parse_hl7, "fhir": parse_bundle}, ins_test_oids=False)
        app = web.Application(client_max_size=256 * 1024)
        app.add_routes(fhir_routes(self.service, TOKEN))
        self.runner = web.AppRunner(app, access_log=None)
        self.url = ""
        self.http: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = self.runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}{PATH}"
        self.http = aiohttp.ClientSession()

    async def post(self, body: bytes, kind: str) -> tuple[int, dict[str, Any]]:
        headers = {"Content-Type": "application/fhir+json", "Authorization": f"Bearer {TOKEN}"}
        if kind == "none":
            del headers["Authorization"]
        elif kind == "wrong":
            headers["Authorization"] = "Bearer not-the-token"
        elif kind == "basic":
            headers["Authorization"] = f"Basic {TOKEN}"
        elif kind == "bad-type":
            headers["Content-Type"] = "text/plain"
        assert self.http is not None
        async with self.http.post(self.url, data=body, headers=headers) as resp:
            return resp.status, dict(await resp.json(content_type=None))

    async def stop(self) -> None:
        if self.http is not None:
            await self.http.close()
        await self.runner.cleanup()


@pytest.fixture
async def fhir(database: Database) -> AsyncIterator[FhirEndpoint]:
    endpoint = FhirEndpoint(database)
    await endpoint.start()
    yield endpoint
    await endpoint.stop()


@pytest.mark.db
@pytest.mark.parametrize("body", [
    b"[" * 100_000,  # issue 17: the JSON decoder's recursion gave up → 500
    b"[" * 100_000 + b"]" * 100_000,
    b'{"resourceType": "Bundle", "type": "message", "entry": ' + b"[" * 500 + b"]" * 500 + b"}",
    b'{"a": ' * 20_000 + b"1" + b"}" * 20_000,
])
async def test_deeply_nested_json_is_a_400_with_an_operation_outcome(fhir: FhirEndpoint, body: bytes) -> None:
    status, outcome = await fhir.post(body, "good")
    assert status == 400, (status, outcome)
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["code"] == "structure" and "nested" in outcome["issue"][0]["diagnostics"]


@pytest.mark.db
async def test_fhir_endpoint_answers_every_body_with_an_operation_outcome(fhir: FhirEndpoint) -> None:
    loop = asyncio.get_running_loop()
    tried = await asyncio.to_thread(fuzz_fhir, N["fhir"], fhir.post, loop)
    assert tried >= N["fhir"] // 2
    # Still serving: a too-large body is refused cleanly too.
    status, outcome = await fhir.post(b"{" + b" " * 300_000 + b"}", "good")
    assert status == 413 and outcome["resourceType"] == "OperationOutcome"


@pytest.mark.db
async def test_an_encounter_location_without_its_location_is_read_not_a_500(fhir: FhirEndpoint) -> None:
    # Found by bench/reliability.py's FHIR fuzz (100 000 inputs): Encounter.location.location is
    # 1..1 in FHIR R4 but the models let it be absent, and reading its display crashed (500).
    bundle = json.loads((SAMPLES / "fhir" / "admit-notification-message-bundle-01.json").read_text(encoding="utf-8"))
    for item in bundle["entry"]:
        if item["resource"]["resourceType"] == "Encounter":
            item["resource"]["location"] = [{"location": None, "status": "active"}]
    status, outcome = await fhir.post(json.dumps(bundle).encode(), "good")
    assert status in (200, 422), (status, outcome)  # read (the patient is not followed here) or refused
    assert outcome["resourceType"] == "OperationOutcome"
    assert parse_bundle(bundle).unit == ""  # and the parser itself reads it with no unit


@pytest.mark.db
async def test_a_parser_bug_is_a_422_with_its_class_never_a_500(fhir: FhirEndpoint,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(raw: bytes) -> object:
        raise AttributeError("'NoneType' object has no attribute 'display' — Jeanne Dupont")

    monkeypatch.setitem(fhir.service.parsers, "fhir", broken)  # type: ignore[arg-type]
    status, outcome = await fhir.post(b'{"resourceType": "Bundle"}', "good")
    assert status == 422 and outcome["issue"][0]["code"] == "processing"
    assert "AttributeError" in outcome["issue"][0]["diagnostics"] and "Jeanne" not in json.dumps(outcome)
