"""One multiplexed Dubbo connection to a provider: many calls in flight, ids rewritten.

Who owns what: the pool's nursery runs :meth:`UpstreamConnection.run` (reader, writer and
heartbeat tasks); callers only ``await call(...)``. When the connection dies, every call
in flight on it fails with :class:`UpstreamDied` at once (TESTS.md R2) — nothing waits for
a timeout to notice.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import trio

from proxy.codecs.dubbo import (
    ClientConnection,
    ConnectionClosed,
    ReadOnlyReceived,
    Response,
    ResponseReceived,
    StrayResponse,
)
from proxy.errors import LanewayError, UpstreamDied, UpstreamTimeout

RECEIVE_SIZE = 64 * 1024
# why: one read drains many pipelined responses; larger buffers only cost memory per connection.


@dataclass
class UpstreamStats:
    stray_responses: int = 0  # late answers to calls that timed out (counted, discarded)
    readonly_events: int = 0


@dataclass(eq=False)
class _Waiter:
    event: trio.Event = field(default_factory=trio.Event)
    response: Response | None = None
    error: LanewayError | None = None


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
        self._waiters: dict[int, _Waiter] = {}
        self._wake_writer = trio.Event()
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
        return len(self._waiters)

    async def call(self, frame: bytes, dubbo_version: str, deadline: float) -> Response:
        """Send a two-way request frame and wait for its response until ``deadline``.

        Raises UpstreamTimeout (the late response will be discarded and counted) or
        UpstreamDied (the connection closed or broke with the call in flight).
        """
        if self._closed is not None:
            raise self._closed
        request_id = self._codec.send_request(frame, dubbo_version)
        waiter = self._waiters[request_id] = _Waiter()
        self._kick()
        with trio.move_on_at(deadline):
            await waiter.event.wait()
        if not waiter.event.is_set():
            self._waiters.pop(request_id, None)
            self._codec.forget(request_id)
            raise UpstreamTimeout(f"provider {self.address} did not answer in time")
        if waiter.error is not None:
            raise waiter.error
        assert waiter.response is not None
        return waiter.response

    def send_oneway(self, frame: bytes, dubbo_version: str) -> None:
        """Queue a one-way request (no response will ever come)."""
        if self._closed is not None:
            raise self._closed
        self._codec.send_request(frame, dubbo_version)
        self._kick()

    def close(self) -> None:
        """Stop the connection's tasks; calls in flight fail with UpstreamDied."""
        self._fail(UpstreamDied(f"connection to provider {self.address} closed by laneway"))
        self._cancel.cancel()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Read, write and heartbeat until the peer closes, breaks, idles out or ``close()``."""
        with self._cancel:
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._guarded, self._writer)
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
            for event in self._codec.receive_data(data):
                if isinstance(event, ResponseReceived):
                    waiter = self._waiters.pop(event.response.request_id, None)
                    if waiter is not None:
                        waiter.response = event.response
                        waiter.event.set()
                elif isinstance(event, StrayResponse):
                    self.stats.stray_responses += 1
                elif isinstance(event, ReadOnlyReceived):
                    self.stats.readonly_events += 1
                    self.readonly = True
                    self._on_readonly(self.address)
                elif isinstance(event, ConnectionClosed):
                    self._fail(
                        UpstreamDied(f"provider {self.address} closed the connection mid-call")
                    )
                    return
            self._kick()  # heartbeat answers the codec queued

    async def _writer(self) -> None:
        while True:
            await self._wake_writer.wait()
            self._wake_writer = trio.Event()
            data = self._codec.data_to_send()
            if data:
                self._last_used = trio.current_time()
                await self._stream.send_all(data)

    async def _keepalive(self) -> None:
        """Heartbeat an idle connection; close it when it stays unused past the idle limit."""
        while True:
            await trio.sleep(self._heartbeat_interval)
            idle = trio.current_time() - self._last_used
            if not self._waiters and idle >= self._idle_timeout:
                self._cancel.cancel()
                return
            if self._codec.unanswered_heartbeats >= 3:
                # why 3: Dubbo treats three missed heartbeats as a dead channel.
                raise trio.BrokenResourceError("three heartbeats unanswered")
            if idle >= self._heartbeat_interval:
                self._codec.send_heartbeat()
                self._kick()

    # -- helpers -----------------------------------------------------------------------------

    def _kick(self) -> None:
        self._wake_writer.set()

    def _fail(self, error: LanewayError) -> None:
        if self._closed is None:
            self._closed = error
        waiters, self._waiters = self._waiters, {}
        for waiter in waiters.values():
            waiter.error = error
            waiter.event.set()
