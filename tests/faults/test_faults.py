"""Faults against real processes on 127.0.0.1: the hub killed, the homeserver killed, 429s,
the database away. After each: every acknowledged alert and every accepted command gave
exactly one notice (as the GP's own client reads the room), none twice, no state lost."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hub.devserver import DevSynapse, free_port
from tests.conftest import backend
from tests.faults.harness import World
from tests.faults.scenarios import (
    RateLimitingProxy,
    crash_loop,
    database_unavailable,
    homeserver_restart,
    rate_limited,
    room_deleted,
)

pytestmark = [pytest.mark.matrix, pytest.mark.db]
#: Faults of the homeserver do not depend on the database: the PostgreSQL pass of .ci/run
#: deselects them (-m "... and not backend_independent") instead of skipping them.
sqlite_pass_only = pytest.mark.backend_independent


@pytest.fixture
async def world(synapse: DevSynapse, tmp_path: Path, db_url: str) -> AsyncIterator[World]:
    w = World(synapse, tmp_path, db_url)
    try:
        await w.setup()
        yield w
    finally:
        await w.close()


async def test_hub_killed_at_random_points_loses_and_repeats_nothing(world: World) -> None:
    cycles = 3 if backend() == "sqlite" else 2
    figures = await crash_loop(world, cycles=cycles, alerts_per_cycle=4, commands_per_cycle=2, seed=11,
                               files_every=1)
    assert figures.problems == [], (figures, world.relais.tail())
    assert figures.extra["files_opened"] == cycles  # each with one room, none created twice
    assert figures.alerts_acked == 4 * cycles and figures.commands_sent == 3 * cycles
    assert figures.alert_notices == 4 * cycles and figures.command_notices == 2 * cycles  # one per alert
    assert figures.extra["kills"] >= cycles


@sqlite_pass_only
async def test_homeserver_killed_during_a_burst(tmp_path: Path, db_url: str) -> None:
    own = DevSynapse(tmp_path / "hs", port=free_port())  # the same port after the restart
    await own.start()
    w = World(own, tmp_path, db_url)
    try:
        await w.setup()
        figures = await homeserver_restart(w, own, rounds=1, alerts=4, commands=2)
        assert figures.problems == [], (figures, w.relais.tail())
        assert figures.alerts_acked == 8 and figures.commands_sent == 4
        assert figures.alert_notices == 8 and figures.command_notices == 4
        assert figures.extra["readyz_down_seen"] == 1
    finally:
        await w.close()
        await own.stop()


@sqlite_pass_only
async def test_homeserver_answering_429_with_retry_after(synapse: DevSynapse, tmp_path: Path, db_url: str) -> None:
    proxy = RateLimitingProxy(synapse.url, every=3, retry_after_ms=150)
    await proxy.start()
    w = World(synapse, tmp_path, db_url)
    try:
        await w.setup()
        await w.restart_through(proxy.url)
        figures = await rate_limited(w, proxy, alerts=4, commands=3)
        assert figures.problems == [], (figures, w.relais.tail())
        assert figures.alert_notices == 4 and figures.command_notices == 3
        assert proxy.limited["send"] >= 1 and proxy.limited["sync"] >= 1, proxy.limited
    finally:
        await w.close()
        await proxy.stop()


async def test_database_unavailable_for_a_while(world: World, db_url: str) -> None:
    figures = await database_unavailable(world, db_url, outage_s=2.0, alerts=4, commands=2)
    assert figures.problems == [], (figures, world.relais.tail())
    assert figures.alerts_acked == 8 and figures.alert_notices == 8 and figures.command_notices == 2


@sqlite_pass_only
async def test_one_file_room_deleted_while_the_other_keeps_its_alerts(world: World) -> None:
    figures = await room_deleted(world, rounds=2)
    assert figures.problems == [], (figures, world.relais.tail())
    assert figures.extra["dead_lettered"] == 2 and figures.extra["reported"] == 2  # one notice per hospital event
