"""hub.heap.settle: start-up's garbage collected, its survivors frozen out of the GC's walks."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from hub import heap


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()  # the rest of the suite runs with an ordinary collector


@pytest.mark.usefixtures("unfrozen")
def test_settle_collects_start_up_garbage_then_freezes_what_lives_on() -> None:
    garbage, alive = _Node(), _Node()
    garbage.other, alive.other = _Node(), _Node()
    garbage.other.other, alive.other.other = garbage, alive  # two reference cycles
    dead = weakref.ref(garbage)
    del garbage  # only the cycle holds it now: refcounting alone never frees it

    frozen = heap.settle()

    assert dead() is None  # collected before the freeze, not kept for good
    assert frozen == gc.get_freeze_count() > 0
    assert not any(o is alive for o in gc.get_objects())  # frozen objects are out of the walks
    later = _Node()
    later.other = later
    assert any(o is later for o in gc.get_objects())  # what is made afterwards is collected as before
