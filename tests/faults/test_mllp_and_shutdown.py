"""The MLLP listener under a slow peer, a cut network and a flood of half-open connections; graceful
shutdown; and no secret, name or clinical text in the hub's DEBUG log, its metrics or room state.
Relais runs as a real subprocess (`python -m hub -v run`) on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from hub.devserver import DevSynapse
from hub.inbound.mllp import frame
from tests.faults.harness import FHIR_TOKEN, PATIENT_NAME, Hospital, World
from tests.faults.scenarios import check
from tests.hub_harness import BOT_PASSWORD
from tests.inbound.mllp_client import MllpClient, msa

# Socket faults do not depend on the database: the PostgreSQL pass deselects them.
pytestmark = [pytest.mark.matrix, pytest.mark.backend_independent]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


async def flood(port: int, connections: int, partial: bytes) -> int:
    """Open `connections` sockets at once, each sending a frame start and never its end; returns
    how many were opened. Past `max_connections` the listener closes the ones stalled longest
    to make room, so a write may meet a connection it already closed."""
    opened = 0
    for _ in range(connections):
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        opened += 1
        try:
            writer.write(partial)
            await writer.drain()
        except ConnectionError:
            pass
    return opened


@pytest.fixture
async def world(synapse: DevSynapse, tmp_path: Path, db_url: str) -> AsyncIterator[World]:
    w = World(synapse, tmp_path, db_url, verbose=True)
    try:
        await w.setup()
        yield w
    finally:
        await w.close()


async def test_slow_peer_cut_frames_flood_and_graceful_stop(world: World) -> None:
    hospital = Hospital(world.mllp_port)
    hospital.add(4)
    first, slow, cut, late = hospital.queue  # in time order: A01, A03, A01, A03

    # A slow peer trickles its frame byte by byte; a normal peer meanwhile is answered at once.
    trickle = await MllpClient.connect(world.mllp_port)
    data = frame(slow[2])
    for i in range(0, len(data) // 2):
        await trickle.write(data[i:i + 1])
    hospital.queue = [first]
    assert await hospital.deliver() == 1  # not held up by the slow peer
    for i in range(len(data) // 2, len(data)):
        await trickle.write(data[i:i + 1])
    assert msa(await trickle.ack()) == ("AA", slow[0])
    await trickle.close()
    hospital.acked.append(slow[0])
    hospital.triggers[slow[1]] += 1

    # The network is cut in the middle of a frame: nothing stored, no answer; the resend is answered once.
    half = await MllpClient.connect(world.mllp_port)
    await half.write(frame(cut[2])[: len(cut[2]) // 2])
    half.writer.transport.abort()
    hospital.queue = [cut]
    await hospital.deliver_all()
    # Cut after the frame but before the ACK was read: stored; the resend is a duplicate, acknowledged.
    gone = await MllpClient.connect(world.mllp_port)
    await gone.write(frame(late[2]))
    gone.writer.transport.abort()
    hospital.queue = [late]
    await hospital.deliver_all()

    # 500 connections each holding half a frame: RSS stays bounded and a normal peer still gets its ACK.
    pid = world.relais.proc.pid if world.relais.proc else 0
    before = rss_kib(pid)
    opened = await flood(world.mllp_port, 500, b"\x0bMSH|^~\\&|FLOOD|" + b"x" * 2000)
    hospital.add(2)
    await hospital.deliver_all()
    during = rss_kib(pid)
    growth_mib = (during - before) / 1024
    assert opened == 500
    # Past max_connections (32) the stalled ones are closed to make room and the hospital is
    # served (asserted below); which ones were closed: tests/security/test_mllp_door.py.
    assert growth_mib < 200, f"RSS grew by {growth_mib:.0f} MiB under 500 half-open connections"

    figures = await check(world, hospital, "mllp faults", flood_connections=opened, rss_growth_mib=growth_mib)
    assert figures.problems == [], (figures, [(k, b[:90]) for k, _c, b in await world.notices()])
    assert figures.alerts_acked == 6 and figures.alert_notices == 6

    # Nothing secret, nominative or clinical in the DEBUG log, the metrics or the room state.
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{world.admin_port}/metrics") as r:
        metrics = await r.text()
    gp = await world.hub.client("gp")
    state = json.dumps([e for e in (await gp.room_get_state(world.room_id)).events])
    session = json.loads((world.tmp / f"store{world.hub.tag}" / "session.json").read_text())
    device = session["device_id"]

    # Graceful stop: exits 0, the MLLP port is closed, the device is kept for the next start.
    assert await world.relais.terminate() == 0
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", world.mllp_port)
    log = world.relais.log.read_text(encoding="utf-8", errors="replace")
    assert "DEBUG" in log  # the scenario really ran at DEBUG
    for secret in (BOT_PASSWORD, session["access_token"], FHIR_TOKEN):
        for where, text in (("log", log), ("metrics", metrics), ("room state", state)):
            assert secret not in text, f"a secret leaked into the {where}"
    for personal in (PATIENT_NAME, "Germaine", "FAULTIERE", "19360101", "besoin", "Gériatrie"):
        for where, text in (("log", log), ("metrics", metrics), ("room state", state)):
            assert personal not in text, f"{personal!r} leaked into the {where}"
    await world.relais.start()
    again = json.loads((world.tmp / f"store{world.hub.tag}" / "session.json").read_text())
    assert again["device_id"] == device
