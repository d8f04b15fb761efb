"""Both FHIR doors refuse hostile bodies with a clear 4xx, on real HTTP (docs/security.md "Input
limits"): a body over the size limit → 413, JSON nested too deep → 400, each with an
OperationOutcome — never a 503 that asks the sender to resend the same body for ever."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from hub.app import Relais
from hub.config import load_config

pytestmark = [pytest.mark.db]

TOKEN = "limits-test-fhir-token-7b1e0c94d2a35f68"
PATHS = ("/fhir/$process-message", "/fhir/ServiceRequest")


@pytest.fixture
async def relais_http(db_url: str, tmp_path: Path) -> AsyncIterator[Relais]:
    config = load_config(None, matrix={"user_id": "@relais:localhost", "password": "not-used-here-4c1f",
                                       "store_path": str(tmp_path / "store")},
                         database={"url": db_url},
                         care={"case_managers": ["@cm:localhost"], "coordinators": ["@coord:localhost"]},
                         http={"port": 0, "admin_port": 0, "fhir_token": TOKEN})
    relais = Relais(config)
    await relais._start_http()  # the composition root's own HTTP start, without Matrix
    try:
        yield relais
    finally:
        for runner in (relais._http, relais._admin):
            if runner is not None:
                await runner.cleanup()
        await relais.db.close()


def _deep_service_request(levels: int) -> bytes:
    inner = b'{"resourceType":"ServiceRequest","contained":[' * levels + b"]}" * levels
    return b'{"resourceType":"ServiceRequest","status":"active","contained":[' + inner + b"]}"


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(("body", "status"), [
    (b"[" * 100_000, 400),  # too deep for the decoder itself
    (b'{"resourceType":"ServiceRequest","note":' + b"[" * 3000 + b"]" * 3000 + b"}", 400),
    (_deep_service_request(200), 400),  # valid JSON, within the decoder, too deep for the models
    (b'{"resourceType":"ServiceRequest","note":"' + b"x" * (2 << 20) + b'"}', 413),
])
async def test_hostile_bodies_get_a_clear_4xx_on_both_fhir_doors(
        relais_http: Relais, caplog: pytest.LogCaptureFixture, path: str, body: bytes, status: int) -> None:
    caplog.set_level(logging.INFO)
    url = f"http://127.0.0.1:{relais_http.http_port}{path}"
    async with aiohttp.ClientSession() as http:
        async with http.post(url, data=body, headers={"Authorization": f"Bearer {TOKEN}",
                                                      "Content-Type": "application/fhir+json"}) as resp:
            answer = await resp.json(content_type=None)
            assert resp.status == status, answer
            assert "Retry-After" not in resp.headers
    assert answer["resourceType"] == "OperationOutcome"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]  # bad input is not a fault of ours


async def test_a_servicerequest_the_parser_trips_on_is_a_422_not_a_503(
        relais_http: Relais, monkeypatch: pytest.MonkeyPatch) -> None:
    import hub.inbound.fhir_referral as fhir_referral

    def trips(_body: bytes, _ins_test_oids: bool = False) -> None:
        raise AttributeError("'bool' object has no attribute 'strip' (Paulette Exemple)")

    monkeypatch.setattr(fhir_referral, "parse_referral", trips)
    url = f"http://127.0.0.1:{relais_http.http_port}/fhir/ServiceRequest"
    async with aiohttp.ClientSession() as http:
        async with http.post(url, data=b'{"resourceType":"ServiceRequest"}',
                             headers={"Authorization": f"Bearer {TOKEN}",
                                      "Content-Type": "application/fhir+json"}) as resp:
            answer = await resp.json(content_type=None)
            assert resp.status == 422 and "Retry-After" not in resp.headers
    assert "Paulette" not in str(answer)
