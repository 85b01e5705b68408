"""The Dubbo listener and one task tree per consumer connection.

Tree: ``DubboFrontend.run`` owns the listeners and a handler nursery; each connection's
``serve`` owns a writer task and a nursery for the few calls whose provider connection must
be opened first; every other call runs no task of its own (``DubboCall`` is completed by a
callback from the provider connection's reader), and admission bounds calls in flight.
Drain (``begin_drain``): stop accepting, tell every consumer READONLY, let calls finish
within the drain timeout; the caller then cancels the tree.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field

import trio

from proxy.codecs.dubbo import (
    ConnectionClosed,
    Event,
    Request,
    RequestReceived,
    ServerConnection,
)
from proxy.errors import LanewayError, Overloaded
from proxy.forward import DubboCall, DubboForwarder, Reply
from proxy.net.listener import Listener
from proxy.net.outbox import Outbox, batched, defer
from proxy.net.rawsock import RawSocketStream

RECEIVE_SIZE = 64 * 1024
# why: one read may hold many pipelined requests; bigger buffers cost memory per consumer.


@dataclass
class FrontendStats:
    accepted: int = 0
    refused_connections: int = 0  # over max_connections
    protocol_errors: int = 0  # connections closed for bad input (D1-D4, D6-D7)
    read_timeouts: int = 0  # a frame started and did not finish in time (D5)
    idle_closed: int = 0  # consumers silent past the idle timeout
    overloaded: int = 0  # calls answered status 100
    in_flight: int = 0
    by_status: dict[int, int] = field(default_factory=dict)


@dataclass(frozen=True)
class FrontendLimits:
    request_read_timeout: float
    max_inflight_per_connection: int
    max_inflight_total: int
    max_connections: int
    idle_timeout: float


class DownstreamConnection:
    """One consumer connection: a read loop that starts calls, a writer that sends answers.

    No task per call: a call is started synchronously from the read loop (the forwarder's
    fast path) and answered through a callback that queues the response on the codec and
    wakes the writer, which sends everything queued in one write.
    """

    def __init__(self, stream: trio.abc.Stream, frontend: DubboFrontend) -> None:
        self._stream = stream
        self._frontend = frontend
        self.codec = ServerConnection()
        self.in_flight = 0
        self._calls: dict[int, DubboCall] = {}
        self._outbox = Outbox(stream, self.codec.data_to_send)
        self._read_cancel = trio.CancelScope()
        self._read_scope: trio.CancelScope | None = None  # the read loop's deadline
        self._last_active = trio.current_time()  # the last read (see _read_deadline)
        self._partial_since: float | None = None  # when the incomplete frame began
        self._partial_id: int | None = None  # its request id, once its header is in
        self._closing = False
        self._gone = False

    async def serve(self) -> None:
        try:
            async with trio.open_nursery() as tasks:
                tasks.start_soon(self._writer)
                with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                    with self._read_cancel:
                        await self._read_loop(tasks)  # (a vanished consumer: nothing to answer)
                    await self.flush()  # a refusal queued before the loop ended
                tasks.cancel_scope.cancel()  # the consumer is gone: its calls are moot
        finally:
            self._gone = True
            for call in list(self._calls.values()):
                call.abandon()  # free the upstream slots; late answers are counted, dropped
            self._calls.clear()
            with trio.CancelScope(shield=True):
                await trio.aclose_forcefully(self._stream)

    async def send_readonly(self) -> None:
        self.codec.send_readonly()
        await self.flush()

    async def flush(self) -> None:
        """Send everything queued now (drain uses it before closing)."""
        await self._outbox.flush()

    async def _writer(self) -> None:
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await self._outbox.run()

    def _send(self) -> None:
        """Send what the codec queued (at once when the socket has room, once per batch of
        events). A refusal that must close the connection ends the read loop; serve()
        flushes it, then closes."""
        if defer(id(self), self._send_now):
            return
        self._send_now()

    def _send_now(self) -> None:
        try:
            self._outbox.push()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self._read_cancel.cancel()  # the consumer is gone: end the connection
        if self._closing:
            self._read_cancel.cancel()  # serve() flushes the refusal, then closes

    def _read_deadline(self) -> float:
        """When the read loop gives up waiting: idle (no call in flight; measured from the
        last read, or from the end of a call that outlived a deadline) or a frame trickling
        in (D5); never while calls are in flight and input is whole."""
        limits = self._frontend.limits
        deadline = self._last_active + limits.idle_timeout if not self.in_flight else math.inf
        if self._partial_since is not None:
            deadline = min(deadline, self._partial_since + limits.request_read_timeout)
        return deadline

    async def _read_loop(self, tasks: trio.Nursery) -> None:
        # One cancel scope for many reads (a scope per read cost ~5 us). Its deadline is
        # only ever brought *forward* (a new frame went partial; the last call ended while
        # it was infinite), never pushed back per read: when it fires, the real deadline is
        # recomputed and the loop goes on in a new scope unless it has passed, so a busy
        # connection pays one spurious wake-up per idle timeout instead of a scope per
        # read. Only the receive is a checkpoint inside the scope, so a deadline never
        # interrupts a flush (a receive may be interrupted: it loses nothing).
        while not self._closing:
            scope = self._read_scope = trio.CancelScope(deadline=self._read_deadline())
            refusal: LanewayError | None = None
            with scope:
                while not self._closing:
                    data = bytes(await self._stream.receive_some(RECEIVE_SIZE))
                    now = self._last_active = trio.current_time()
                    try:
                        events = self.codec.receive_data(data)
                    except LanewayError as exc:
                        refusal = exc
                        break
                    with batched():  # requests to one provider leave in one write
                        if self._handle(events, tasks):
                            return
                    codec = self.codec
                    if codec.partial_frame_pending:
                        partial_id = codec.partial_request_id
                        # A new frame (or a header still incomplete) starts the D5 clock.
                        if partial_id is None or partial_id != self._partial_id:
                            self._partial_since = now
                            self._partial_id = partial_id
                            if now + self._frontend.limits.request_read_timeout < scope.deadline:
                                scope.deadline = self._read_deadline()
                    elif self._partial_since is not None:
                        self._partial_since = self._partial_id = None
                    if not events:
                        self._send()  # a heartbeat the codec answered
            self._read_scope = None
            if refusal is not None:
                await self._refuse(refusal)
                return
            now = trio.current_time()
            if scope.cancelled_caught and now >= self._read_deadline():
                limits = self._frontend.limits
                partial = self._partial_since
                if partial is not None and now >= partial + limits.request_read_timeout:
                    # A frame started and did not finish in time (TESTS.md D5).
                    self._frontend.stats.read_timeouts += 1
                else:
                    self._frontend.stats.idle_closed += 1
                return

    def _handle(self, events: list[Event], tasks: trio.Nursery) -> bool:
        """Start the calls of one read's events; True when the consumer closed."""
        for event in events:
            if isinstance(event, RequestReceived):
                self._admit(event.request, tasks)
            elif isinstance(event, ConnectionClosed):
                return True
        return False

    def _admit(self, request: Request, tasks: trio.Nursery) -> None:
        frontend = self._frontend
        limits = frontend.limits
        if (
            self.in_flight >= limits.max_inflight_per_connection
            or frontend.stats.in_flight >= limits.max_inflight_total
        ):
            frontend.stats.overloaded += 1
            if request.two_way:
                error = Overloaded(
                    f"laneway is at its in-flight limit; {request.path}.{request.method} refused"
                )
                self._answer_error(request.request_id, error)
                self._send()
            return
        self.in_flight += 1
        frontend.stats.in_flight += 1
        try:
            call = frontend.forwarder.start(request, self._replier(request))
        except LanewayError as exc:  # malformed attachments: answer, then close (40)
            self._finished()
            if request.two_way:
                self._answer_error(request.request_id, exc)
            self._closing = exc.close
            self._send()
            return
        if call.upstream is not None or call.slow is not None:
            self._calls[request.request_id] = call
        if call.slow is not None:
            tasks.start_soon(call.slow)

    def _replier(self, request: Request) -> Reply:
        def reply(frame: bytes | None, error: LanewayError | None) -> None:
            self._calls.pop(request.request_id, None)
            self._finished()
            if self._gone:
                return
            if error is None:
                if frame is not None:
                    self.codec.send_response(frame)
                    self._frontend.count(20)
            else:
                if request.two_way:
                    self._answer_error(request.request_id, error)
                if error.close:
                    self._closing = True
            self._send()

        return reply

    def _finished(self) -> None:
        self.in_flight -= 1
        self._frontend.stats.in_flight -= 1
        self._frontend.wake_drain()
        if not self.in_flight:
            scope = self._read_scope
            if scope is not None and scope.deadline == math.inf:
                # The deadline was computed while calls were in flight: idle from now on.
                self._last_active = trio.current_time()
                scope.deadline = self._read_deadline()

    def _answer_error(self, request_id: int, exc: LanewayError) -> None:
        self.codec.send_error(request_id, int(exc.dubbo_status), exc.message)
        self._frontend.count(int(exc.dubbo_status))

    async def _refuse(self, exc: LanewayError) -> None:
        """The consumer broke the protocol: answer the request id if known, then close."""
        self._frontend.stats.protocol_errors += 1
        if exc.request_id is not None:
            self._answer_error(exc.request_id, exc)
            await self.flush()


class DubboFrontend:
    """The Dubbo listener. ``run`` reports the bound ``host:port`` through task_status."""

    def __init__(self, forwarder: DubboForwarder, limits: FrontendLimits) -> None:
        self.forwarder = forwarder
        self.limits = limits
        self.stats = FrontendStats()
        self._connections: set[DownstreamConnection] = set()
        self._listener = Listener(
            self._serve_one, max_connections=limits.max_connections, counters=self.stats
        )
        self._idle = trio.Event()

    def count(self, status: int) -> None:
        self.stats.by_status[status] = self.stats.by_status.get(status, 0) + 1

    def wake_drain(self) -> None:
        if self.stats.in_flight == 0:
            self._idle.set()

    async def run(
        self, listen: str, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED
    ) -> None:
        await self._listener.run(listen, task_status=task_status)

    async def _serve_one(self, stream: RawSocketStream) -> None:
        conn = DownstreamConnection(stream, self)
        self._connections.add(conn)
        try:
            await conn.serve()
        finally:
            self._connections.discard(conn)

    async def drain(self) -> None:
        """Stop accepting, send READONLY to every consumer, and return once no call is in
        flight. The caller bounds it with the drain timeout and cancels what is left."""
        self._listener.stop_accepting()
        for conn in list(self._connections):
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await conn.send_readonly()  # (a consumer already gone needs no notice)
        while self.stats.in_flight > 0:
            self._idle = trio.Event()
            await self._idle.wait()
        # Every call has its answer queued; send them before the caller cancels the tree.
        for conn in list(self._connections):
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await conn.flush()
