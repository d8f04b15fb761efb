"""hub.heap.settle: start-up's garbage collected, its survivors frozen out of the GC's walks."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from pathlib import Path

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


def test_no_collection_inside_uncollected_and_the_collector_resumes_as_it_was() -> None:
    assert gc.isenabled()
    with heap.uncollected():
        assert not gc.isenabled()
        before = gc.get_stats()[0]["collections"]
        cycles = []
        for _ in range(5 * gc.get_threshold()[0]):  # enough allocations for several collections
            node = _Node()
            node.other = node
            cycles.append(weakref.ref(node))
            del node
        assert gc.get_stats()[0]["collections"] == before  # none ran
        assert all(ref() is not None for ref in cycles)  # the cycles wait for the collector
    assert gc.isenabled()
    gc.collect()
    assert all(ref() is None for ref in cycles)  # and it frees them once back

    with pytest.raises(RuntimeError), heap.uncollected():
        raise RuntimeError("an import failed")
    assert gc.isenabled()  # resumed whatever happened inside

    gc.disable()
    try:
        with heap.uncollected():
            pass
        assert not gc.isenabled()  # a collector paused by the caller stays paused
    finally:
        gc.enable()


def test_the_entry_leaves_the_collector_running(tmp_path: Path) -> None:
    """`relais check-config` (any command) imports what it needs without the collector, then
    runs its work with it: the pause never outlives the imports."""
    from hub.__main__ import main

    path = tmp_path / "missing.toml"
    assert main(["check-config", "-c", str(path)]) == 1
    assert gc.isenabled()
