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


def settle() -> int:
    """Collect what start-up left as garbage, then freeze the survivors (they are never
    collected: only what is still referenced once started is frozen). Returns how many objects
    were frozen. Call once, when the process is ready."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
