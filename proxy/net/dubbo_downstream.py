"""The Dubbo listener and one task tree per consumer connection.

Tree: ``DubboFrontend.run`` owns the listeners and a handler nursery; each connection's
``serve`` owns a nursery of its in-flight calls (one task per call, bounded by admission).
Drain (``begin_drain``): stop accepting, tell every consumer READONLY, let calls finish
within the drain timeout; the caller then cancels the tree.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field

import trio

from proxy.codecs.dubbo import ConnectionClosed, Request, RequestReceived, ServerConnection
from proxy.errors import LanewayError, Overloaded
from proxy.forward import DubboForwarder
from proxy.registry.model import join_address

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
    """One consumer connection: reads frames, starts a task per call, writes answers."""

    def __init__(self, stream: trio.SocketStream, frontend: DubboFrontend) -> None:
        self._stream = stream
        self._frontend = frontend
        self.codec = ServerConnection()
        self.in_flight = 0
        self._send_lock = trio.Lock()
        self._closing = False

    async def serve(self) -> None:
        try:
            async with trio.open_nursery() as calls:
                with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                    await self._read_loop(calls)  # (a vanished consumer: nothing to answer)
                calls.cancel_scope.cancel()  # the consumer is gone: its calls are moot
        finally:
            with trio.CancelScope(shield=True):
                await trio.aclose_forcefully(self._stream)

    async def send_readonly(self) -> None:
        self.codec.send_readonly()
        await self._flush()

    async def _read_loop(self, calls: trio.Nursery) -> None:
        limits = self._frontend.limits
        frame_deadline = math.inf
        partial_id: int | None = None
        while not self._closing:
            data: bytes | None = None
            idle_deadline = trio.current_time() + limits.idle_timeout
            with trio.move_on_at(min(frame_deadline, idle_deadline)):
                data = bytes(await self._stream.receive_some(RECEIVE_SIZE))
            if data is None:
                if frame_deadline <= trio.current_time():
                    # A frame started and did not finish in time (TESTS.md D5).
                    self._frontend.stats.read_timeouts += 1
                elif not self.in_flight:
                    self._frontend.stats.idle_closed += 1
                else:
                    continue  # silent while its calls are in flight: that is fine
                return
            try:
                events = self.codec.receive_data(data)
            except LanewayError as exc:
                await self._refuse(exc)
                return
            for event in events:
                if isinstance(event, RequestReceived):
                    self._admit(event.request, calls)
                elif isinstance(event, ConnectionClosed):
                    return
            if self.codec.partial_frame_pending:
                if partial_id is None or self.codec.partial_request_id != partial_id:
                    frame_deadline = trio.current_time() + limits.request_read_timeout
                    partial_id = self.codec.partial_request_id
            else:
                frame_deadline = math.inf
                partial_id = None
            await self._flush()  # heartbeat answers the codec queued

    def _admit(self, request: Request, calls: trio.Nursery) -> None:
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
                calls.start_soon(self._flush_quietly)
            return
        self.in_flight += 1
        frontend.stats.in_flight += 1
        calls.start_soon(self._handle, request)

    async def _handle(self, request: Request) -> None:
        frontend = self._frontend
        try:
            try:
                frame = await frontend.forwarder.forward(request)
                if frame is not None:
                    self.codec.send_response(frame)
                    frontend.count(20)
            except LanewayError as exc:
                if request.two_way:
                    self._answer_error(request.request_id, exc)
                if exc.close:
                    self._closing = True
            # The answer is written before the call stops counting as in flight, so a drain
            # never cancels a call whose response is still in our buffer.
            await self._flush_quietly()
        finally:
            self.in_flight -= 1
            frontend.stats.in_flight -= 1
            frontend.wake_drain()
        if self._closing:
            await self._stream.aclose()

    def _answer_error(self, request_id: int, exc: LanewayError) -> None:
        self.codec.send_error(request_id, int(exc.dubbo_status), exc.message)
        self._frontend.count(int(exc.dubbo_status))

    async def _refuse(self, exc: LanewayError) -> None:
        """The consumer broke the protocol: answer the request id if known, then close."""
        self._frontend.stats.protocol_errors += 1
        if exc.request_id is not None:
            self._answer_error(exc.request_id, exc)
            await self._flush()

    async def _flush_quietly(self) -> None:
        """Flush from a call task: if the consumer is gone, the read loop sees it and ends
        the connection; the call task just stops."""
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await self._flush()

    async def _flush(self) -> None:
        async with self._send_lock:
            data = self.codec.data_to_send()
            if data:
                await self._stream.send_all(data)


class DubboFrontend:
    """The Dubbo listener. ``run`` reports the bound ``host:port`` through task_status."""

    def __init__(self, forwarder: DubboForwarder, limits: FrontendLimits) -> None:
        self.forwarder = forwarder
        self.limits = limits
        self.stats = FrontendStats()
        self._connections: set[DownstreamConnection] = set()
        self._accepting = trio.CancelScope()
        self._idle = trio.Event()

    def count(self, status: int) -> None:
        self.stats.by_status[status] = self.stats.by_status.get(status, 0) + 1

    def wake_drain(self) -> None:
        if self.stats.in_flight == 0:
            self._idle.set()

    async def run(
        self, listen: str, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED
    ) -> None:
        host, _, port_text = listen.rpartition(":")
        port = int(port_text)
        listeners = await trio.open_tcp_listeners(port, host=host)
        bound = listeners[0].socket.getsockname()
        try:
            async with trio.open_nursery() as handlers:
                task_status.started(join_address(bound[0], bound[1]))
                with self._accepting:
                    async with trio.open_nursery() as acceptors:
                        for listener in listeners:
                            acceptors.start_soon(self._accept_loop, listener, handlers)
                _close_listeners(listeners)  # drain: refuse new consumers at once
                # Handlers keep serving in-flight calls until cancelled from above.
        finally:
            _close_listeners(listeners)

    async def _accept_loop(self, listener: trio.SocketListener, handlers: trio.Nursery) -> None:
        while True:
            stream = await listener.accept()
            if len(self._connections) >= self.limits.max_connections:
                self.stats.refused_connections += 1
                await trio.aclose_forcefully(stream)
                continue
            self.stats.accepted += 1
            handlers.start_soon(self._serve_one, stream)

    async def _serve_one(self, stream: trio.SocketStream) -> None:
        conn = DownstreamConnection(stream, self)
        self._connections.add(conn)
        try:
            await conn.serve()
        finally:
            self._connections.discard(conn)

    async def drain(self) -> None:
        """Stop accepting, send READONLY to every consumer, and return once no call is in
        flight. The caller bounds it with the drain timeout and cancels what is left."""
        self._accepting.cancel()
        for conn in list(self._connections):
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await conn.send_readonly()  # (a consumer already gone needs no notice)
        while self.stats.in_flight > 0:
            self._idle = trio.Event()
            await self._idle.wait()


def _close_listeners(listeners: list[trio.SocketListener]) -> None:
    """Close listening sockets synchronously (safe inside a cancelled scope)."""
    for listener in listeners:
        listener.socket.close()
