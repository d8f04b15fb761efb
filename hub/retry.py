"""Wait for a dependency at start: retry with backoff, one log line per attempt.

A reboot starts PostgreSQL, the homeserver and Relais in any order; Relais waits for what is
not there yet instead of dying. What waiting cannot fix (a missing database, a wrong password)
is raised at once by `attempt` as a RelaisError carrying the one line the operator reads.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Turns an exception into the reason to wait ("connection refused"), or None: not transient.
Classifier = Callable[[BaseException], str | None]


class Stopped(Exception):
    """A stop was asked for while waiting."""


async def pause(seconds: float | None, stop: asyncio.Event | None) -> None:
    """Sleep `seconds` (None: for ever), or raise Stopped as soon as `stop` is set."""
    if stop is None:
        await asyncio.sleep(seconds if seconds is not None else float("inf"))
        return
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        return
    raise Stopped


async def wait_until(what: str, attempt: Callable[[], Awaitable[T]], transient: Classifier, *,
                     stop: asyncio.Event | None = None, first_s: float = 1.0, max_s: float = 30.0) -> T:
    """Call `attempt` until it returns; between transient failures wait 1, 2, 4… up to `max_s`
    seconds and log `<what> unreachable (<reason>): attempt n, next in s`. `what` names the
    dependency with its URL, never a credential. Other exceptions pass through; Stopped when
    `stop` is set during a wait."""
    delay = first_s
    tries = 0
    while True:
        tries += 1
        try:
            return await attempt()
        except Exception as exc:
            reason = transient(exc)
            if reason is None:
                raise
        log.warning("%s unreachable (%s): attempt %d, next in %.0f s", what, reason, tries, delay)
        await pause(delay, stop)
        delay = min(delay * 2, max_s)
