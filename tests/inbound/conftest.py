"""The listener tests' stack: a real MLLP server on TCP over the test database."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from hub.storage.database import Database
from tests.inbound.alert_stack import Stack, make_stack


@pytest.fixture
async def stack(database: Database) -> AsyncIterator[Stack]:
    s = await make_stack(database)
    try:
        yield s
    finally:
        await s.server.stop()


