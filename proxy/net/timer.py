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

COMPACT_AFTER = 1024
# why: cancelled entries stay in the heap until they would have fired; past this many (and
# more than half the heap), the heap is rebuilt so finished calls cannot pile up for the
# length of a long timeout.


class Deadline:
    """A registered deadline; ``cancel()`` it when the call ends first."""

    __slots__ = ("_timer", "active", "callback", "when")

    def __init__(self, timer: DeadlineTimer, when: float, callback: Callable[[], None]) -> None:
        self._timer = timer
        self.when = when
        self.callback = callback
        self.active = True

    def cancel(self) -> None:
        if self.active:
            self.active = False
            self._timer._cancelled_one()


class DeadlineTimer:
    def __init__(self, *, tick: float, park_after: float) -> None:
        self._tick = tick
        self._park_after = park_after
        self._heap: list[tuple[float, int, Deadline]] = []
        self._seq = itertools.count()
        self._parked = False
        self._wake = trio.Event()
        self._last_used = 0.0
        self._cancelled = 0

    def add(self, when: float, callback: Callable[[], None]) -> Deadline:
        """Call ``callback`` (on the timer's task) once ``trio.current_time() >= when``."""
        deadline = Deadline(self, when, callback)
        heapq.heappush(self._heap, (when, next(self._seq), deadline))
        self._last_used = trio.current_time()
        if self._parked:
            self._wake.set()
        return deadline

    @property
    def pending(self) -> int:
        """Entries in the heap, cancelled ones included (for tests and stats)."""
        return len(self._heap)

    def _cancelled_one(self) -> None:
        self._cancelled += 1
        if self._cancelled > COMPACT_AFTER and self._cancelled * 2 > len(self._heap):
            self._heap = [entry for entry in self._heap if entry[2].active]
            heapq.heapify(self._heap)
            self._cancelled = 0

    async def run(self) -> None:
        """The timer task; runs until cancelled."""
        while True:
            heap = self._heap
            while heap and not heap[0][2].active:
                heapq.heappop(heap)
                self._cancelled = max(0, self._cancelled - 1)
            if not heap and trio.current_time() - self._last_used > self._park_after:
                self._wake = trio.Event()
                self._parked = True
                await self._wake.wait()
                self._parked = False
            await trio.sleep(self._tick)
            now = trio.current_time()
            heap = self._heap  # (a compaction may have replaced it meanwhile)
            while heap and heap[0][0] <= now:
                _, _, deadline = heapq.heappop(heap)
                if deadline.active:
                    deadline.active = False
                    deadline.callback()
                else:
                    self._cancelled = max(0, self._cancelled - 1)
