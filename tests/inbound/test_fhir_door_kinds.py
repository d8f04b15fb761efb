"""Kinds a FHIR interface engineer found at `POST /fhir/$process-message`, each over real HTTP on
a loopback socket against the stack's service (invented patients; the bundles are files under
tests/inbound/messages/fhir/, varied here only where a test sweeps one element)."""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from hub.domain.settings import Setting
from hub.inbound.fhir_http import PATH, fhir_routes
from tests.inbound.alert_stack import Stack

pytestmark = [pytest.mark.db]

TOKEN = "t" * 40
BUNDLES = Path(__file__).parent / "messages" / "fhir"
IPP = "urn:oid:1.2.250.1.999.4.4:F8301"
Send = Callable[..., Awaitable[tuple[int, dict[str, Any]]]]


def bundle(name: str = "admit-geria.json") -> dict[str, Any]:
    data: dict[str, Any] = json.loads((BUNDLES / name).read_text(encoding="utf-8"))
    return copy.deepcopy(data)


def encounter(data: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = next(e["resource"] for e in data["entry"] if e["resource"]["resourceType"] == "Encounter")
    return found


def accepted(outcome: dict[str, Any]) -> str:
    issue: dict[str, Any] = outcome["issue"][0]
    return str(issue.get("diagnostics", ""))


@pytest.fixture
async def send(stack: Stack) -> AsyncIterator[Send]:
    """POST a bundle (a dict, or the bytes as sent) to the real route, metrics wired as app.py does."""
    app = web.Application()
    app.add_routes(fhir_routes(stack.service, TOKEN, stack.metrics))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}{PATH}"
    async with aiohttp.ClientSession() as http:
        async def post(body: dict[str, Any] | bytes) -> tuple[int, dict[str, Any]]:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            headers = {"Content-Type": "application/fhir+json; fhirVersion=4.0", "Authorization": f"Bearer {TOKEN}"}
            async with http.post(url, data=data, headers=headers) as resp:
                return resp.status, dict(await resp.json(content_type=None))
        yield post
    await runner.cleanup()


def counted(stack: Stack, outcome: str) -> float:
    return stack.metrics.registry.get_sample_value("relais_alerts_total", {"source": "fhir", "outcome": outcome}) or 0.0


# ------------------------------------------------------------ an encounter that has not begun

@pytest.mark.parametrize("name", ["admit-planned.json", "discharge-planned.json"])
async def test_a_planned_encounter_is_not_told_as_done(stack: Stack, send: Send, name: str) -> None:
    # Encounter.status `planned` ("has not yet started": a scheduled admission, an expected
    # discharge date) was posted as an admission (setting: hospital) or a discharge (setting:
    # home) the day the notification came, though the person had not moved.
    ref = await stack.person(IPP)
    status, outcome = await send(bundle(name))
    assert status == 200 and "not acted on" in accepted(outcome)
    assert await stack.notices(ref) == [] and await stack.messages() == 0
    assert (await stack.setting(ref))[0] is Setting.HOME
    assert counted(stack, "not_acted") == 1
    # The admission itself, when it happens, is told.
    status, _ = await send(bundle())
    assert status == 200 and [n["message"] for n in await stack.notices(ref)] == ["alert.admission"]
