"""The process's long-lived objects, set aside from the cyclic garbage collector once started.

After start-up the heap holds hundreds of thousands of objects that live as long as the process
(SQLAlchemy's, pydantic's and nio's classes and caches, the configuration, the rooms of the
first sync). CPython's full collections walk all of them each time, and work that allocates
many objects at once triggers several: in a first re-evaluation sweep over 100 000 files (17 000
prompts), three full collections took 0.26–0.32 s of its 1.2 s (bench/sweep.py, gc callbacks).
`gc.freeze()` moves them to a permanent generation the collector no longer walks (CPython docs,
`gc.freeze`); garbage made later is collected as before.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def uncollected() -> Iterator[None]:
    """No cyclic collection inside the block; the collector resumes as it was after it.

    For the entry's imports: they build classes and functions that live as long as the process
    and leave almost no cyclic garbage (≈ 3 000 objects after `import hub.app`, against 130 000
    tracked), yet allocate enough to trigger dozens of collections, each walking everything
    imported so far: `import hub.app` took 0.78–0.82 s with the collector and 0.66–0.67 s
    without (this machine, 2026-11-30). Keep the block to imports: a long block would keep
    real garbage (the first sync's, say) alive."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def settle() -> int:
    """Collect what start-up left as garbage, then freeze the survivors (they are never
    collected: only what is still referenced once started is frozen). Returns how many objects
    were frozen. Call once, when the process is ready."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
