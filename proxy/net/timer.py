"""Deadlines for many calls with one task: a heap checked on a tick while in use.

A cancel scope (and a task) per call costs a Python proxy tens of microseconds per call
(``bench/``); calls need deadlines to the millisecond, not to the microsecond. The timer
ticks every ``tick`` seconds while it has deadlines or was used recently, and parks on an
event after ``park_after`` seconds of idleness (waking it per call would cost a task
switch per call).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable

import trio


class Deadline:
    """A registered deadline; ``cancel()`` it when the call ends first."""

    __slots__ = ("active", "callback", "when")

    def __init__(self, when: float, callback: Callable[[], None]) -> None:
        self.when = when
        self.callback = callback
        self.active = True

    def cancel(self) -> None:
        self.active = False


class DeadlineTimer:
    def __init__(self, *, tick: float, park_after: float) -> None:
        self._tick = tick
        self._park_after = park_after
        self._heap: list[tuple[float, int, Deadline]] = []
        self._seq = itertools.count()
        self._parked = False
        self._wake = trio.Event()
        self._last_used = 0.0

    def add(self, when: float, callback: Callable[[], None]) -> Deadline:
        """Call ``callback`` (on the timer's task) once ``trio.current_time() >= when``."""
        deadline = Deadline(when, callback)
        heapq.heappush(self._heap, (when, next(self._seq), deadline))
        self._last_used = trio.current_time()
        if self._parked:
            self._wake.set()
        return deadline

    async def run(self) -> None:
        """The timer task; runs until cancelled."""
        while True:
            heap = self._heap
            while heap and not heap[0][2].active:
                heapq.heappop(heap)
            if not heap and trio.current_time() - self._last_used > self._park_after:
                self._wake = trio.Event()
                self._parked = True
                await self._wake.wait()
                self._parked = False
            await trio.sleep(self._tick)
            now = trio.current_time()
            while heap and heap[0][0] <= now:
                _, _, deadline = heapq.heappop(heap)
                if deadline.active:
                    deadline.active = False
                    deadline.callback()
