"""TLS on both listeners (issue 17 item 10, SPEC §7), with certificates made here (trustme) and
real sockets: MLLP over TLS and mutual TLS, FHIR over HTTPS, /metrics only on the admin address."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import trustme

from hub.app import Relais
from hub.clock import SystemClock
from hub.config import MllpConfig, load_config
from hub.errors import ConfigError
from hub.inbound.fhir_notify import parse_bundle
from hub.inbound.hl7v2 import parse
from hub.inbound.mllp import frame
from hub.inbound.mllp_server import Hl7Listener, MllpServer
from hub.services.alerts import AlertService
from hub.storage.database import Database
from tests.inbound.mllp_client import MllpClient, msa, sample

pytestmark = [pytest.mark.db]

TOKEN = "tls-test-fhir-token-0d6b2f9e41c873a5"


@dataclass
class Pki:
    ca: trustme.CA
    cert: str
    key: str
    ca_file: str
    folder: Path

    def client_context(self, with_cert: trustme.CA | None = None) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        self.ca.configure_trust(context)
        if with_cert is not None:
            with_cert.issue_cert("hospital-interface-engine@chu-x.example").configure_cert(context)
        return context


@pytest.fixture
def pki(tmp_path: Path) -> Iterator[Pki]:
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    cert, key, ca_file = tmp_path / "server.pem", tmp_path / "server.key", tmp_path / "ca.pem"
    server.cert_chain_pems[0].write_to_path(str(cert))
    for extra in server.cert_chain_pems[1:]:
        extra.write_to_path(str(cert), append=True)
    server.private_key_pem.write_to_path(str(key))
    ca.cert_pem.write_to_path(str(ca_file))
    yield Pki(ca, str(cert), str(key), str(ca_file), tmp_path)


async def _mllp(database: Database, **config: Any) -> MllpServer:
    service = AlertService(database, SystemClock(), {"hl7": parse, "fhir": parse_bundle}, ins_test_oids=True)
    server = MllpServer(MllpConfig(port=0, **config), Hl7Listener(service, SystemClock()).on_frame)
    await server.start()
    return server


async def _tls_client(port: int, context: ssl.SSLContext) -> MllpClient:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context, server_hostname="127.0.0.1")
    return MllpClient(reader, writer)


async def _refused(port: int, context: ssl.SSLContext | None) -> bool:
    """True when the listener gives no ACK: the handshake fails, or the connection is closed."""
    try:
        if context is None:
            client = await MllpClient.connect(port)
        else:
            client = await _tls_client(port, context)
    except (ssl.SSLError, ConnectionError):
        return True
    try:
        await client.write(frame(sample("ADT-A01-01.hl7")))
        try:
            await client.ack(timeout=10)
        except (ssl.SSLError, ConnectionError):
            return True
        return False
    finally:
        await client.close()


async def test_mllp_over_tls_and_mutual_tls(database: Database, pki: Pki) -> None:
    server = await _mllp(database, tls_cert=pki.cert, tls_key=pki.key)
    try:
        assert server.port is not None
        client = await _tls_client(server.port, pki.client_context())
        try:
            assert msa(await client.send(sample("ADT-A01-01.hl7")))[0] == "AA"
            assert msa(await client.send(sample("ADT-A03-01.hl7")))[0] == "AA"  # several frames, one session
        finally:
            await client.close()
        assert await _refused(server.port, None)  # plain TCP to the TLS port: no ACK
    finally:
        await server.stop()

    server = await _mllp(database, tls_cert=pki.cert, tls_key=pki.key, tls_client_ca=pki.ca_file)
    try:
        assert server.port is not None
        assert await _refused(server.port, pki.client_context())  # no client certificate
        assert await _refused(server.port, pki.client_context(with_cert=trustme.CA()))  # another CA's
        client = await _tls_client(server.port, pki.client_context(with_cert=pki.ca))
        try:
            assert msa(await client.send(sample("ADT-A01-01.hl7")))[0] == "AA"
        finally:
            await client.close()
    finally:
        await server.stop()


def test_a_certificate_that_does_not_load_is_a_config_error_naming_the_key(pki: Pki) -> None:
    with pytest.raises(ConfigError) as caught:  # the key does not match the certificate
        MllpServer(MllpConfig(tls_cert=pki.cert, tls_key=pki.ca_file), lambda _f: asyncio.sleep(0, None))
    assert caught.value.key == "alerts.mllp.tls_cert"


@pytest.fixture
async def relais_http(pki: Pki, db_url: str, tmp_path: Path) -> AsyncIterator[Relais]:
    config = load_config(None, matrix={"user_id": "@relais:localhost", "password": "not-used-here-4c1f",
                                       "store_path": str(tmp_path / "store")},
                         database={"url": db_url},
                         http={"port": 0, "admin_port": 0, "fhir_token": TOKEN, "tls_cert": pki.cert,
                               "tls_key": pki.key})
    relais = Relais(config)
    await relais._start_http()  # the composition root's own HTTP start, without Matrix
    try:
        yield relais
    finally:
        for runner in (relais._http, relais._admin):
            if runner is not None:
                await runner.cleanup()
        await relais.db.close()


async def test_fhir_over_https_and_metrics_only_on_the_admin_address(relais_http: Relais, pki: Pki) -> None:
    https = f"https://127.0.0.1:{relais_http.http_port}"
    admin = f"http://127.0.0.1:{relais_http.admin_port}"
    connector = aiohttp.TCPConnector(ssl=pki.client_context())
    async with aiohttp.ClientSession(connector=connector) as http:
        async with http.get(f"{https}/healthz") as resp:
            assert resp.status == 200
        async with http.post(f"{https}/fhir/$process-message", data=b"{}",
                             headers={"Authorization": f"Bearer {TOKEN}",
                                      "Content-Type": "application/fhir+json"}) as resp:
            assert resp.status == 400 and (await resp.json(content_type=None))["resourceType"] == "OperationOutcome"
        async with http.get(f"{https}/metrics") as resp:
            assert resp.status == 404  # the hospitals' door does not serve the operator's figures
        async with http.get(f"{admin}/metrics") as resp:
            assert resp.status == 200 and "relais_" in await resp.text()
    async with aiohttp.ClientSession() as plain:  # plain HTTP to the HTTPS port gets nothing
        with pytest.raises(aiohttp.ClientError):
            async with plain.get(f"http://127.0.0.1:{relais_http.http_port}/healthz") as resp:
                await resp.read()
