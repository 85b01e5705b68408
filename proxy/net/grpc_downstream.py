"""The gRPC / Triple listener (HTTP/2 cleartext, prior knowledge) and its connections.

Tree: ``GrpcFrontend.run`` owns the listeners and a handler nursery; each connection's
``serve`` owns a writer task and the deadline timer; calls are driven by callbacks
(``proxy.grpc_forward``), with a short task only for a call whose provider connection must
be opened first (the codec bounds concurrent streams to MAX_CONCURRENT_STREAMS). A read is
fully processed by the codec before any call starts, so a HEADERS + RST_STREAM pair in one
read starts nothing (TESTS.md H2).
Drain: GOAWAY(2^31-1) + PING, then the final GOAWAY with the last stream id seen; streams
in flight finish within the drain timeout.
"""

from __future__ import annotations

import contextlib
import math
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field

import trio

from proxy.codecs.grpc.connection import H2Connection
from proxy.codecs.grpc.errors import ErrorCode
from proxy.codecs.grpc.events import (
    ConnectionTerminated,
    DataReceived,
    Event,
    GoAwayReceived,
    PingAckReceived,
    RequestReceived,
    StreamEnded,
    StreamReset,
    TrailersReceived,
    WindowUpdated,
)
from proxy.codecs.grpc.limits import SOFT_UNFLUSHED_BYTES
from proxy.grpc_forward import DONE as _DONE
from proxy.grpc_forward import DownstreamEvent, GrpcCall, GrpcForwarder
from proxy.net.listener import Listener
from proxy.net.outbox import Outbox, batched, defer
from proxy.net.rawsock import RawSocketStream
from proxy.net.timer import DeadlineTimer

RECEIVE_SIZE = 64 * 1024
# why: one read holds many frames; the codec bounds what a peer can make us buffer.
DEADLINE_TICK = 0.005
# why: call deadlines are checked on a tick, not with a timer per call; gRPC deadlines are
# in milliseconds, and 5 ms of slack is invisible next to them.
TIMER_PARK_AFTER = 1.0
# why: an idle connection's timer stops ticking; a busy one ticks without per-call wake-ups.
FINAL_FLUSH_TIMEOUT = 1.0
# why: the last frames (GOAWAY) get this long to leave before the connection is closed
# anyway; a peer that does not read them cannot hold the connection open.
DRAIN_PING = b"lanedrn1"
_DELIVERED = (DataReceived, StreamEnded, StreamReset)  # (a tuple: cheaper than a union)
MAX_STREAM_ID = 2**31 - 1


@dataclass
class GrpcFrontendStats:
    accepted: int = 0
    refused_connections: int = 0
    connection_errors: dict[str, int] = field(default_factory=dict)
    streams: int = 0


@dataclass(frozen=True)
class GrpcFrontendLimits:
    max_connections: int
    idle_timeout: float
    handshake_timeout: float = 10.0
    """TLS handshake and ALPN must be done within this (slowloris guard)."""
    request_headers_timeout: float = 10.0
    """A frame or header block, once started, must be complete within this (H8)."""


def server_tls_context(cert: str, key: str) -> ssl.SSLContext:
    """A TLS server context offering only ALPN ``h2`` (RFC 9113 §3.2), TLS 1.2+."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    context.set_alpn_protocols(["h2"])
    return context


class H2Downstream:
    """One gRPC client connection."""

    def __init__(self, stream: trio.abc.Stream, frontend: GrpcFrontend) -> None:
        self._stream = stream
        self._frontend = frontend
        self.codec = H2Connection(client_side=False)
        self._calls: dict[int, GrpcCall] = {}
        self._outbox = Outbox(stream, self.codec.data_to_send)
        self.timer = DeadlineTimer(tick=DEADLINE_TICK, park_after=TIMER_PARK_AFTER)
        self._reading = trio.CancelScope()
        self._key = id(self)  # (kick runs ~7 times a call: no bound method built per kick)
        self._push = self._push_now
        self._read_scope: trio.CancelScope | None = None  # the read loop's deadline
        self._partial_since: float | None = None  # when the current incomplete input began
        self._last_active = trio.current_time()  # the last read, or the last call's end

    def kick(self) -> None:
        """Something was queued on the codec: send it (at once when the socket has room,
        once per batch of events)."""
        if not defer(self._key, self._push):
            self._push_now()

    def _push_now(self) -> None:
        try:
            self._outbox.push()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self._reading.cancel()  # the client is gone: end the connection

    def on_flushed(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once everything queued so far has been written to the socket."""
        self._outbox.on_flushed(callback)
        self.kick()

    @property
    def active_streams(self) -> int:
        return len(self._calls)

    def stream_done(self, stream_id: int) -> None:
        """A call ended: deliver it no more events."""
        if self._calls.pop(stream_id, None) is not None:
            self._frontend.stream_done()
            if not self._calls:  # idle from now on
                self._last_active = trio.current_time()
                scope = self._read_scope
                if scope is not None and scope.deadline == math.inf:
                    scope.deadline = self._read_deadline()

    async def serve(self) -> None:
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._write_loop)
                nursery.start_soon(self.timer.run)
                with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                    with self._reading:
                        await self._read_loop(nursery)
                    # The peer closed or broke HTTP/2: flush what is queued (a GOAWAY),
                    # then end.
                    with trio.move_on_after(FINAL_FLUSH_TIMEOUT):
                        await self._outbox.flush()
                nursery.cancel_scope.cancel()
        finally:
            for call in list(self._calls.values()):
                call.client_gone()  # cancel their upstream streams; count them
            with trio.CancelScope(shield=True):
                await trio.aclose_forcefully(self._stream)

    def begin_drain(self) -> None:
        """First drain step: GOAWAY(2^31-1) and a PING; the final GOAWAY follows its ACK."""
        if self.codec.terminated:
            return
        self.codec.goaway(ErrorCode.NO_ERROR, last_stream_id=MAX_STREAM_ID)
        self.codec.ping(DRAIN_PING)
        self.kick()

    def _read_deadline(self) -> float:
        """When the read loop gives up waiting: idle (no call open) or a frame or header
        block trickling in (slowloris, H8); never while calls are open and input is whole."""
        limits = self._frontend.limits
        deadline = self._last_active + limits.idle_timeout if not self._calls else math.inf
        if self._partial_since is not None:
            deadline = min(deadline, self._partial_since + limits.request_headers_timeout)
        return deadline

    async def _read_loop(self, nursery: trio.Nursery) -> None:
        # One cancel scope for many reads (a scope per read cost ~5 us). Its deadline is
        # only ever brought *forward* (input went partial; the last call ended while it was
        # infinite), never pushed back per read: when it fires, the real deadline is
        # recomputed and the loop goes on in a new scope unless it has passed, so a busy
        # connection pays one spurious wake-up per idle timeout instead of two deadline
        # updates per call. Only the receive is a checkpoint inside the scope, so a deadline
        # never interrupts a flush halfway (a receive may be interrupted: it loses nothing).
        while True:
            scope = self._read_scope = trio.CancelScope(deadline=self._read_deadline())
            flush = False
            with scope:
                while True:
                    data = bytes(await self._stream.receive_some(RECEIVE_SIZE))
                    if not data:
                        return
                    now = self._last_active = trio.current_time()
                    with batched():  # everything these events make us send: one write
                        events = self.codec.receive_data(data, now)
                        if self._handle(events, nursery):
                            return
                    if not self.codec.input_pending:
                        self._partial_since = None
                    elif self._partial_since is None:
                        self._partial_since = now
                        deadline = self._read_deadline()
                        if deadline < scope.deadline:
                            scope.deadline = deadline
                    # Backpressure: stop reading while the peer is not taking our bytes
                    # (the flush runs outside this scope).
                    if self.codec.unflushed_bytes + self._outbox.backlog > SOFT_UNFLUSHED_BYTES:
                        flush = True
                        break
            self._read_scope = None
            if scope.cancelled_caught and trio.current_time() >= self._read_deadline():
                if self._partial_since is not None:
                    # A frame or header block trickled in too slowly (slowloris, H8).
                    self._frontend.count_error("request-headers-timeout")
                self.codec.goaway(ErrorCode.NO_ERROR)
                return
            if flush:
                await self._outbox.flush()

    def _handle(self, events: list[Event], nursery: trio.Nursery) -> bool:
        """Act on one read's events; True when the connection is over (codec terminated)."""
        for event in events:
            if isinstance(event, RequestReceived):
                self._start(event, nursery)
            elif isinstance(event, _DELIVERED):
                self._deliver(event.stream_id, event)
            elif isinstance(event, TrailersReceived):
                pass  # client trailers carry nothing for gRPC; StreamEnded follows
            elif isinstance(event, WindowUpdated):
                if event.stream_id == 0:
                    for sid in list(self._calls):
                        self._deliver(sid, event)
                else:
                    self._deliver(event.stream_id, event)
            elif isinstance(event, PingAckReceived) and event.data == DRAIN_PING:
                self.codec.goaway(ErrorCode.NO_ERROR)  # final: last stream id seen
            elif isinstance(event, GoAwayReceived):
                pass  # the client will open nothing new; streams in flight finish
            elif isinstance(event, ConnectionTerminated):
                self._frontend.count_error(event.reason)
        self.kick()
        return self.codec.terminated

    def _start(self, event: RequestReceived, nursery: trio.Nursery) -> None:
        self._frontend.stats.streams += 1
        call = self._frontend.forwarder.start(
            self, event.stream_id, event.headers, event.end_stream
        )
        if call.mode is not _DONE:
            self._calls[event.stream_id] = call
        if call.slow is not None:
            nursery.start_soon(call.slow)

    def _deliver(self, stream_id: int, event: DownstreamEvent) -> None:
        call = self._calls.get(stream_id)
        if call is not None:
            call.on_client(event)

    async def _write_loop(self) -> None:
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await self._outbox.run()


class GrpcFrontend:
    """The gRPC listener. ``run`` reports the bound ``host:port`` through task_status."""

    def __init__(
        self,
        forwarder: GrpcForwarder,
        limits: GrpcFrontendLimits,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.forwarder = forwarder
        self.limits = limits
        self._tls = tls
        self.stats = GrpcFrontendStats()
        self._connections: set[H2Downstream] = set()
        self._listener = Listener(
            self._serve_one, max_connections=limits.max_connections, counters=self.stats
        )
        self._idle = trio.Event()
        self._draining = False

    def stream_done(self) -> None:
        # Only a drain waits for the last stream; scanning every connection per finished
        # call would cost O(connections) on the hot path.
        if self._draining and not any(c.active_streams for c in self._connections):
            self._idle.set()

    async def run(
        self, listen: str, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED
    ) -> None:
        await self._listener.run(listen, task_status=task_status)

    async def _serve_one(self, stream: RawSocketStream) -> None:
        transport: trio.abc.Stream = stream
        if self._tls is not None:
            tls = await self._handshake(stream, self._tls)
            if tls is None:
                return
            transport = tls
        conn = H2Downstream(transport, self)
        self._connections.add(conn)
        try:
            await conn.serve()
        finally:
            self._connections.discard(conn)

    async def _handshake(
        self, stream: RawSocketStream, context: ssl.SSLContext
    ) -> trio.SSLStream[RawSocketStream] | None:
        """TLS with ALPN h2, or None (connection closed, counted) when it fails."""
        tls = trio.SSLStream(stream, context, server_side=True)
        with trio.move_on_after(self.limits.handshake_timeout):
            try:
                await tls.do_handshake()
            except (trio.BrokenResourceError, ssl.SSLError):
                self.count_error("tls-handshake")
                await trio.aclose_forcefully(stream)
                return None
            if tls.selected_alpn_protocol() == "h2":
                return tls
            self.count_error("alpn-not-h2")
            await trio.aclose_forcefully(tls)
            return None
        self.count_error("tls-timeout")
        await trio.aclose_forcefully(stream)
        return None

    def count_error(self, reason: str) -> None:
        errors = self.stats.connection_errors
        errors[reason] = errors.get(reason, 0) + 1

    async def drain(self) -> None:
        """Stop accepting, GOAWAY every client (graceful, two steps), and return once no
        stream is in flight. The caller bounds it with the drain timeout."""
        self._listener.stop_accepting()
        self._draining = True
        for conn in list(self._connections):
            conn.begin_drain()
        while any(c.active_streams for c in self._connections):
            self._idle = trio.Event()
            await self._idle.wait()
