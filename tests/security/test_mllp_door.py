"""The MLLP door under attack, on real sockets: connections are capped (each may hold up to
`max_frame_bytes` of an open block for as long as it trickles a byte now and then) by closing
the one stalled longest, and a peer outside `allowed_peers` is closed before any TLS handshake
work is done for it."""

from __future__ import annotations

import asyncio
import ssl

import pytest

from hub.storage.database import Database
from tests.inbound.alert_stack import make_stack
from tests.inbound.mllp_client import MllpClient, msa, sample
from tests.security.test_tls import Pki, pki

__all__ = ["pki"]

pytestmark = [pytest.mark.db]

#: An open block stopped mid-segment: the listener keeps it, waiting for the rest.
HELD = b"\x0bMSH|^~\\&|X|Y|||20260101||ADT^A01|1|P|2.5\rPID|||" + b"A" * 200_000


async def test_past_max_connections_the_longest_stalled_one_makes_room_for_the_newcomer(
        database: Database) -> None:
    """Two holders of a half-sent block fill the slots; a third sender (the hospital's engine
    after a flood of half-open connections) is served, and the holder stalled longest is the
    one closed: a flood can neither grow memory nor lock the real sender out."""
    s = await make_stack(database, max_connections=2)
    try:
        holders = [await MllpClient.connect(s.port) for _ in range(2)]
        for holder in holders:
            await holder.write(HELD)  # each keeps its slot and a buffer, trickling for ever
            await asyncio.sleep(0.05)  # holders[0] stalled first
        third = await MllpClient.connect(s.port)
        try:
            assert msa(await third.send(sample("ADT-A01-01.hl7")))[0] == "AA"  # served
            assert await _hung_up(holders[0])  # the longest stalled made room
            fourth = await MllpClient.connect(s.port)  # and again: the next stalled one goes
            try:
                assert msa(await fourth.send(sample("ADT-A01-01.hl7")))[0] == "AA"
                assert await _hung_up(holders[1])
            finally:
                await fourth.close()
        finally:
            await third.close()
            for holder in holders:
                await holder.close()
    finally:
        await s.server.stop()


async def _hung_up(client: MllpClient) -> bool:
    """True once the listener has closed the connection (an answer to the half-sent block may
    come first: a block left open is answered after partial_frame_timeout_s)."""
    async with asyncio.timeout(30):
        while True:
            try:
                if await client.reader.read(65536) == b"":
                    return True
            except ConnectionResetError:
                return True


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
