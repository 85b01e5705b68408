"""One multiplexed Dubbo connection to a provider: many calls in flight, ids rewritten.

Who owns what: the pool's nursery runs :meth:`UpstreamConnection.run` (reader, writer and
timer tasks). A call is *submitted* synchronously with a completion callback — no task and
no cancel scope per call: the reader completes calls as responses arrive, the timer expires
them at their deadlines (to ``DEADLINE_TICK``), and when the connection dies every call in
flight on it fails at once with :class:`UpstreamDied` (TESTS.md R2). Measured in
``bench/e2e_dubbo.py``: task hops per call dominate a Python proxy's per-call cost.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial

import trio

from proxy.codecs.dubbo import (
    ClientConnection,
    ConnectionClosed,
    Event,
    ReadOnlyReceived,
    Response,
    ResponseReceived,
    StrayResponse,
)
from proxy.errors import LanewayError, UpstreamDied, UpstreamTimeout
from proxy.net.outbox import Outbox, batched, defer
from proxy.net.timer import Deadline, DeadlineTimer

RECEIVE_SIZE = 64 * 1024
# why: one read drains many pipelined responses; larger buffers only cost memory per connection.
DEADLINE_TICK = 0.005
# why: deadlines are checked on a tick, not with a timer per call; Dubbo timeouts are in ms,
# and 5 ms of slack is invisible next to them while keeping the timer off the per-call path.
TIMER_PARK_AFTER = 1.0
# why: a connection idle this long stops ticking; busy ones tick without per-call wake-ups.
MISSED_HEARTBEATS = 3
# why: Dubbo treats three unanswered heartbeats as a dead channel.

# on_done(response, None) or on_done(None, error): called exactly once per two-way call.
Completion = Callable[[Response | None, LanewayError | None], None]


@dataclass
class UpstreamStats:
    stray_responses: int = 0  # late answers to calls that timed out (counted, discarded)
    readonly_events: int = 0
    timeouts: int = 0


class UpstreamConnection:
    """A connected provider. Build with a connected stream, then ``nursery.start(run)``."""

    def __init__(
        self,
        address: str,
        stream: trio.abc.Stream,
        *,
        heartbeat_interval: float,
        idle_timeout: float,
        on_readonly: Callable[[str], None],
    ) -> None:
        self.address = address
        self._stream = stream
        self._codec = ClientConnection()
        self._pending: dict[int, tuple[Completion, Deadline]] = {}
        self._timer = DeadlineTimer(tick=DEADLINE_TICK, park_after=TIMER_PARK_AFTER)
        self._outbox = Outbox(stream, self._codec.data_to_send)
        self._heartbeat_interval = heartbeat_interval
        self._idle_timeout = idle_timeout
        self._on_readonly = on_readonly
        self._last_used = trio.current_time()
        self._closed: LanewayError | None = None
        self._cancel = trio.CancelScope()
        self.readonly = False
        self.stats = UpstreamStats()

    @property
    def usable(self) -> bool:
        """True while new calls may be sent here."""
        return self._closed is None and not self.readonly

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    def submit(self, frame: bytes, dubbo_version: str, deadline: float, on_done: Completion) -> int:
        """Send a two-way request frame; ``on_done`` runs (on the reader or timer task) with
        the response, or with UpstreamTimeout / UpstreamDied. Returns the upstream id (for
        :meth:`abandon`). Raises UpstreamDied at once if the connection is already gone."""
        if self._closed is not None:
            raise self._closed
        request_id = self._codec.send_request(frame, dubbo_version)
        expiry = self._timer.add(deadline, partial(self._expire, request_id))
        self._pending[request_id] = (on_done, expiry)
        self._push()
        return request_id

    def send_oneway(self, frame: bytes, dubbo_version: str) -> None:
        """Queue a one-way request (no response will ever come)."""
        if self._closed is not None:
            raise self._closed
        self._codec.send_request(frame, dubbo_version)
        self._push()

    def abandon(self, request_id: int) -> None:
        """The caller went away: free the slot; a late response is discarded and counted."""
        entry = self._pending.pop(request_id, None)
        if entry is not None:
            entry[1].cancel()
            self._codec.forget(request_id)

    def close(self) -> None:
        """Stop the connection's tasks; calls in flight fail with UpstreamDied."""
        self._fail(UpstreamDied(f"connection to provider {self.address} closed by laneway"))
        self._cancel.cancel()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Read, write, expire and heartbeat until the peer closes, breaks, idles out or
        ``close()``."""
        with self._cancel:
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._guarded, self._outbox.run)
                    nursery.start_soon(self._guarded, self._timer.run)
                    nursery.start_soon(self._guarded, self._keepalive)
                    task_status.started()
                    await self._guarded(self._reader)
                    nursery.cancel_scope.cancel()
            finally:
                self._fail(UpstreamDied(f"connection to provider {self.address} closed"))
                with trio.CancelScope(shield=True):
                    await trio.aclose_forcefully(self._stream)

    async def _guarded(self, task: Callable[[], Awaitable[None]]) -> None:
        """Run one of the connection's tasks; a broken socket or a protocol error ends the
        whole connection (and fails its calls) instead of escaping as an exception group."""
        try:
            await task()
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            self._fail(UpstreamDied(f"connection to provider {self.address} broke: {exc}"))
            self._cancel.cancel()
        except LanewayError as exc:  # the provider sent garbage (BadResponse)
            self._fail(UpstreamDied(f"provider {self.address} broke the protocol: {exc}"))
            self._cancel.cancel()

    # -- tasks -------------------------------------------------------------------------------

    async def _reader(self) -> None:
        while True:
            data = bytes(await self._stream.receive_some(RECEIVE_SIZE))
            with batched():  # answers to one consumer leave in one write
                closed = self._dispatch(self._codec.receive_data(data))
            if closed:
                return

    def _dispatch(self, events: list[Event]) -> bool:
        """Complete calls from one read's events; True when the provider closed."""
        for event in events:
            if isinstance(event, ResponseReceived):
                entry = self._pending.pop(event.response.request_id, None)
                if entry is not None:
                    entry[1].cancel()
                    entry[0](event.response, None)
            elif isinstance(event, StrayResponse):
                self.stats.stray_responses += 1
            elif isinstance(event, ReadOnlyReceived):
                self.stats.readonly_events += 1
                self.readonly = True
                self._on_readonly(self.address)
            elif isinstance(event, ConnectionClosed):
                self._fail(UpstreamDied(f"provider {self.address} closed the connection mid-call"))
                return True
        if not events:
            # A read without events may hold the provider's heartbeat, which the codec
            # answered: send the answer.
            self._push()
        return False

    def _push(self) -> None:
        self._last_used = trio.current_time()
        if defer(id(self), self._push_now):
            return
        self._push_now()

    def _push_now(self) -> None:
        try:
            self._outbox.push()
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            self._fail(UpstreamDied(f"connection to provider {self.address} broke: {exc}"))
            self._cancel.cancel()

    def _expire(self, request_id: int) -> None:
        """The timer found ``request_id`` past its deadline."""
        entry = self._pending.pop(request_id, None)
        if entry is not None:
            self._codec.forget(request_id)
            self.stats.timeouts += 1
            entry[0](None, UpstreamTimeout(f"provider {self.address} did not answer in time"))

    async def _keepalive(self) -> None:
        """Heartbeat an idle connection; close it when it stays unused past the idle limit."""
        while True:
            await trio.sleep(self._heartbeat_interval)
            idle = trio.current_time() - self._last_used
            if not self._pending and idle >= self._idle_timeout:
                self._cancel.cancel()
                return
            if self._codec.unanswered_heartbeats >= MISSED_HEARTBEATS:
                raise trio.BrokenResourceError(f"{MISSED_HEARTBEATS} heartbeats unanswered")
            if idle >= self._heartbeat_interval:
                self._codec.send_heartbeat()
                self._push()

    # -- helpers -----------------------------------------------------------------------------

    def _fail(self, error: LanewayError) -> None:
        if self._closed is None:
            self._closed = error
        pending, self._pending = self._pending, {}
        for on_done, expiry in pending.values():
            expiry.cancel()
            on_done(None, error)
