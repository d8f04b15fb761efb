"""Integration fixtures: a Hub (bot + people + database) on the session Synapse."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hub.devserver import DevSynapse
from tests.hub_harness import Hub, new_tag


@pytest.fixture
async def hub(synapse: DevSynapse, tmp_path: Path, db_url: str) -> AsyncIterator[Hub]:
    h = Hub(synapse, tmp_path, db_url, new_tag())
    try:
        yield h
    finally:
        await h.close()
