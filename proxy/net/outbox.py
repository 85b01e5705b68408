"""Ordered, mostly synchronous sending for a connection shared by many calls.

``push()`` is called from whichever task has bytes to send (a read loop, an upstream
reader completing calls). When nothing is waiting and the stream can send without
blocking (``RawSocketStream.send_nowait``), the bytes leave at once, with no task switch;
the rest waits, in order, for the connection's writer task (``run``), which also serves
streams that cannot send synchronously (TLS, tunnels). Measured reason: in
``bench/e2e_dubbo.py`` each task wake-up costs a Python proxy tens of microseconds.
"""

from __future__ import annotations

from collections.abc import Callable

import trio

from proxy.net.rawsock import RawSocketStream


class Outbox:
    """The send side of one connection. ``source()`` returns the bytes queued since the
    last call (a codec's ``data_to_send``)."""

    def __init__(self, stream: trio.abc.Stream, source: Callable[[], bytes]) -> None:
        self._stream = stream
        self._source = source
        self._direct = stream if isinstance(stream, RawSocketStream) else None
        self._backlog = b""
        self._writing = False
        self._lock = trio.Lock()
        self._wake = trio.Event()
        self._callbacks: list[Callable[[], None]] = []

    def on_flushed(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once everything queued so far has been written to the socket
        (HTTP/2 flow-control credit is given back only then: TESTS.md R11)."""
        self._callbacks.append(callback)

    @property
    def backlog(self) -> int:
        """Bytes waiting for the writer (the socket is full or not directly writable)."""
        return len(self._backlog)

    def push(self) -> None:
        """Send what the source has queued: now if possible, else via the writer task.
        Raises Broken/ClosedResourceError when the peer is gone."""
        if self._backlog or self._writing or self._direct is None:
            self._wake.set()
            return
        data = self._source()
        if data:
            sent = self._direct.send_nowait(data)
            if sent < len(data):
                self._backlog = data[sent:]
                self._wake.set()
                return
        self._run_callbacks()

    async def flush(self) -> None:
        """Send everything queued, waiting for the socket if needed (one flusher at a time:
        the writer, or a drain making sure answers left before the connection closes)."""
        async with self._lock:
            self._writing = True
            try:
                while True:
                    callbacks, self._callbacks = self._callbacks, []
                    data = self._backlog + self._source()
                    self._backlog = b""
                    if data:
                        await self._stream.send_all(data)
                    for callback in callbacks:
                        callback()
                    if not data and not self._callbacks:
                        return
            finally:
                self._writing = False

    def _run_callbacks(self) -> None:
        while self._callbacks:
            callbacks, self._callbacks = self._callbacks, []
            for callback in callbacks:
                callback()

    async def run(self) -> None:
        """The writer task: sends whatever ``push`` could not. Runs until cancelled or the
        stream breaks (Broken/ClosedResourceError propagate)."""
        while True:
            await self._wake.wait()
            self._wake = trio.Event()
            await self.flush()


# Pushes made while a task processes one read's worth of events are deferred to the end of
# that batch, so many answers (or requests) to one peer leave in one write: sending each
# at once costs the peer one packet and us one syscall per call under pipelined load.
# A batch is a plain module-level dict, not a ContextVar: every ``with batched():`` block
# is synchronous (no await inside), so no other task can run while one is open, and a task
# spawned inside the block first runs after the block has ended. (A ContextVar plus a
# current-task check cost ~1 us per ``defer``, ten of them per relayed gRPC call.)
_batch: dict[int, Callable[[], None]] | None = None
# Work that must not delay the batch's sends (a finished call's bookkeeping: metrics,
# health, timers) runs after them: it is off a sequential call's critical path.
_after: list[Callable[[], None]] | None = None


def defer(key: int, push: Callable[[], None]) -> bool:
    """Inside ``batched()``, remember ``push`` once per ``key`` and return True; otherwise
    return False (the caller pushes now)."""
    batch = _batch
    if batch is None:
        return False
    if key not in batch:
        batch[key] = push
    return True


def after_sends(callback: Callable[[], None]) -> None:
    """Run ``callback`` once the current batch's pushes are done (now, outside a batch)."""
    after = _after
    if after is None:
        callback()
    else:
        after.append(callback)


class batched:  # lower case: used as ``with batched():``, like a function
    """Run a *synchronous* block with pushes deferred; run each deferred push once at its
    end, then the ``after_sends`` callbacks. A nested block batches its own pushes and
    callbacks and runs them at its own end."""

    __slots__ = ("_outer", "_outer_after")

    def __enter__(self) -> None:
        global _batch, _after
        self._outer = _batch
        self._outer_after = _after
        _batch = {}
        _after = []

    def __exit__(self, *exc: object) -> None:
        global _batch, _after
        batch, _batch = _batch, self._outer
        after, _after = _after, self._outer_after
        try:
            if batch:
                for push in batch.values():
                    push()
        finally:
            if after:
                for callback in after:
                    callback()
