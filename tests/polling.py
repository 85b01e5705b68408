"""Waiting in tests for state that other tasks or threads own."""

from __future__ import annotations

from collections.abc import Callable

import trio

POLL_INTERVAL = 0.01
UNTIL_LIMIT = 10.0
# why: every condition polled in these tests holds within milliseconds when the code works;
# the limit only turns a broken run into a clear failure on a loaded 2-core CI machine.


async def until(predicate: Callable[[], bool]) -> None:
    """Poll ``predicate`` until true; fail after UNTIL_LIMIT seconds."""
    for _ in range(int(UNTIL_LIMIT / POLL_INTERVAL)):
        if predicate():
            return
        await trio.sleep(POLL_INTERVAL)
    raise AssertionError(f"condition not met within {UNTIL_LIMIT}s")
