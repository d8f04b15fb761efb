"""The MLLP door under attack, on real sockets: connections are capped (each may hold up to
`max_frame_bytes` of an open block for as long as it trickles a byte now and then), and a peer
outside `allowed_peers` is closed before any TLS handshake work is done for it."""

from __future__ import annotations

import asyncio
import ssl

import pytest

from hub.inbound.mllp import frame
from hub.storage.database import Database
from tests.inbound.alert_stack import make_stack
from tests.inbound.mllp_client import MllpClient, msa, sample
from tests.security.test_tls import Pki, pki

__all__ = ["pki"]

pytestmark = [pytest.mark.db]

#: An open block stopped mid-segment: the listener keeps it, waiting for the rest.
HELD = b"\x0bMSH|^~\\&|X|Y|||20260101||ADT^A01|1|P|2.5\rPID|||" + b"A" * 200_000


async def test_connections_past_max_connections_are_closed_and_the_slots_come_back(database: Database) -> None:
    s = await make_stack(database, max_connections=2)
    try:
        holders = [await MllpClient.connect(s.port) for _ in range(2)]
        for holder in holders:
            await holder.write(HELD)  # each keeps its slot and a buffer, trickling for ever
        await asyncio.sleep(0.2)
        third = await MllpClient.connect(s.port)
        await third.write(frame(sample("ADT-A01-01.hl7")))
        assert await third.closed_by_peer()  # no slot: closed at once, no ACK, nothing kept
        await third.close()
        await holders[0].close()
        await asyncio.sleep(0.2)
        fourth = await MllpClient.connect(s.port)  # a slot freed: the next sender is served
        try:
            assert msa(await fourth.send(sample("ADT-A01-01.hl7")))[0] == "AA"
        finally:
            await fourth.close()
            await holders[1].close()
    finally:
        await s.server.stop()


async def test_a_peer_outside_allowed_peers_gets_no_tls_handshake(database: Database, pki: Pki) -> None:
    s = await make_stack(database, allowed_peers=("10.0.0.0/8",), tls_cert=pki.cert, tls_key=pki.key)
    try:
        with pytest.raises((ssl.SSLError, ConnectionError)):
            reader, writer = await asyncio.open_connection("127.0.0.1", s.port, ssl=pki.client_context(),
                                                          server_hostname="127.0.0.1")
            writer.close()
    finally:
        await s.server.stop()
    s = await make_stack(database, allowed_peers=("127.0.0.0/8",), tls_cert=pki.cert, tls_key=pki.key)
    try:  # an allowed peer still speaks TLS
        reader, writer = await asyncio.open_connection("127.0.0.1", s.port, ssl=pki.client_context(),
                                                      server_hostname="127.0.0.1")
        client = MllpClient(reader, writer)
        try:
            assert msa(await client.send(sample("ADT-A01-01.hl7")))[0] == "AA"
        finally:
            await client.close()
    finally:
        await s.server.stop()
