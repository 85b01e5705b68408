"""Hand events from foreign threads (kazoo's) to one trio task, in order, never blocking.

kazoo calls state listeners on its connection thread, watches and async completions on
its callback thread, and sometimes a watch on the *calling* thread (which may be trio's
own). ``trio.from_thread.run_sync`` would block the kazoo thread until trio runs the
function, and deadlocks when called on the trio thread. ``TrioToken.run_sync_soon`` does
neither: it is thread-safe from any thread (trio's included), returns at once, and runs
callbacks in FIFO order, so events reach the channel in the order kazoo produced them.

The channel is bounded. If the consumer falls that far behind, the bridge drops the event
and raises ``overflowed``; the consumer then re-reads the registry from scratch (every
event here is a hint to re-read, so nothing is lost by coalescing).
"""

from __future__ import annotations

import contextlib
from typing import Generic, TypeVar

import trio

T = TypeVar("T")

BRIDGE_BUFFER = 65_536
# why: a full resync of 13k services yields ~13k completions at once; beyond 64k pending
# events the consumer is hopelessly behind and a resync is cheaper than the backlog.


class TrioBridge(Generic[T]):
    """Thread-safe, non-blocking ``post`` into a memory channel owned by a trio task.

    Create it on the trio thread (it captures the current trio token); read events from
    ``receive``. ``post`` may be called from any thread, including the trio thread.
    """

    def __init__(self, buffer: int = BRIDGE_BUFFER) -> None:
        self._token = trio.lowlevel.current_trio_token()
        self._send, self.receive = trio.open_memory_channel[T](buffer)
        self.overflowed = False
        self.dropped = 0

    def post(self, event: T) -> None:
        """Queue ``event`` for the trio side; returns immediately, never raises."""
        with contextlib.suppress(trio.RunFinishedError):  # trio is gone: nobody to tell
            self._token.run_sync_soon(self._deliver, event)

    def _deliver(self, event: T) -> None:  # runs on the trio thread
        try:
            self._send.send_nowait(event)
        except trio.WouldBlock:
            self.overflowed = True
            self.dropped += 1
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            pass  # the consumer has shut down

    def close(self) -> None:
        """Stop delivering (call on the trio thread when the consumer ends)."""
        self._send.close()
