"""HTTP/2 over one tunnel connection, on laneway's sans-IO codec: many byte streams, one socket.

Both ends of a tunnel run a :class:`Mux` over the connection that the handshake left them
(``proxy.tunnel.wire``). The proxy's is the HTTP/2 *client* (``client_side=True``): it opens
one CONNECT stream per virtual upstream connection and gets a :class:`VirtualStream` — a
``trio.abc.HalfCloseableStream`` that the Dubbo and HTTP/2 upstream connections run over
unchanged. The laptop's is the HTTP/2 *server*: every stream the proxy opens is handed to
``on_request`` in the mux's own nursery, which pipes it to a local provider.

What HTTP/2 gives for free, and what this module adds:

* Flow control bounds memory: a peer can never make us hold more than our connection window
  of unread bytes (``H2Limits.initial_connection_window``, TESTS.md T7); bytes are given back
  (WINDOW_UPDATE) only once a reader took them. Sending waits while a stream holds more than
  ``SEND_HIGH_WATER`` blocked bytes or the socket is behind (``SOFT_UNFLUSHED_BYTES``).
* Heartbeats: a PING every ``heartbeat_interval``; a peer that leaves ``HEARTBEAT_MISSES``
  intervals without acknowledging one is declared dead (:class:`Lease`, TESTS.md T8).
* Any protocol error by the peer ends the whole tunnel (GOAWAY, then close: TESTS.md T3);
  every stream on it then fails at once with ``BrokenResourceError`` (TESTS.md T4).
"""

from __future__ import annotations

import collections
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import trio

from proxy.codecs.grpc.connection import H2Connection
from proxy.codecs.grpc.errors import ErrorCode, H2UsageError
from proxy.codecs.grpc.events import (
    ConnectionTerminated,
    DataReceived,
    Event,
    GoAwayReceived,
    Headers,
    PingAckReceived,
    RequestReceived,
    ResponseReceived,
    StreamEnded,
    StreamReset,
    WindowUpdated,
)
from proxy.codecs.grpc.limits import SOFT_UNFLUSHED_BYTES, H2Limits

RECEIVE_SIZE = 64 * 1024
# why: one read drains many frames; the HTTP/2 windows bound what can be in flight anyway.
SEND_HIGH_WATER = 64 * 1024
# why: a sender may get one stream window ahead of the peer; beyond that it waits (no
# unbounded queue of held DATA inside the codec).
HEARTBEAT_MISSES = 3
# why: TESTS.md T8 / Dubbo / Telepresence: three silent heartbeats make a dead peer.
GOAWAY_FLUSH_SECONDS = 0.2
# why: after a protocol error the GOAWAY is best effort; a peer that does not read loses it.
REPLACED = ErrorCode.CANCEL
"""GOAWAY code of a tunnel closed because a newer one replaced it: the laptop must not
reconnect (it would replace the newer one in turn)."""


@dataclass
class Lease:
    """When a heartbeating peer is due a PING and when it counts as dead. Pure (no clock).

    ``interval`` is the PING period; the peer is dead once ``misses * interval`` pass
    without a PING ACK (or since the start)."""

    interval: float
    misses: int
    last_alive: float
    next_ping: float

    @classmethod
    def start(cls, now: float, interval: float, misses: int = HEARTBEAT_MISSES) -> Lease:
        return cls(interval, misses, now, now)  # the first PING goes out at once

    def alive(self, now: float) -> None:
        """A PING ACK arrived."""
        self.last_alive = max(self.last_alive, now)

    def expired(self, now: float) -> bool:
        return now - self.last_alive >= self.interval * self.misses

    def ping_due(self, now: float) -> bool:
        """True (and schedules the next) when a PING should be sent at ``now``."""
        if now < self.next_ping:
            return False
        self.next_ping = now + self.interval
        return True

    def next_wake(self) -> float:
        return min(self.next_ping, self.last_alive + self.interval * self.misses)


def _code_name(code: int) -> str:
    try:
        return ErrorCode(code).name
    except ValueError:
        return f"error {code}"


class TunnelClosed(trio.BrokenResourceError):
    """The tunnel (or this stream of it) ended; the message says why."""


class VirtualStream(trio.abc.HalfCloseableStream):
    """One HTTP/2 stream of a tunnel as a byte stream. Who closes: the user, with
    ``aclose()`` (a stream not ended both ways is reset with CANCEL)."""

    def __init__(self, mux: Mux, stream_id: int) -> None:
        self._mux = mux
        self.stream_id = stream_id
        self.response_headers: Headers | None = None
        self._response = trio.Event()
        self._chunks: collections.deque[bytes] = collections.deque()
        self._readable = trio.Event()
        self._eof = False
        self._sent_eof = False
        self._closed = False
        self._error: str | None = None

    # --- called by the mux (never blocks) ----------------------------------------------

    def _data(self, data: bytes, end: bool) -> None:
        if data:
            self._chunks.append(data)
        if end:
            self._eof = True
        self._readable.set()

    def _end(self) -> None:
        self._eof = True
        self._readable.set()

    def _fail(self, reason: str) -> None:
        if self._error is None:
            self._error = reason
        self._readable.set()
        self._response.set()

    def _got_response(self, headers: Headers, end: bool) -> None:
        self.response_headers = headers
        if end:
            self._eof = True
        self._response.set()

    # --- trio.abc.HalfCloseableStream -----------------------------------------------------

    def _check_send(self) -> None:
        if self._closed or self._sent_eof:
            raise trio.ClosedResourceError("tunnel stream closed for sending")
        if self._error is not None:
            raise TunnelClosed(self._error)

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        self._check_send()
        if data:
            try:
                self._mux.codec.send_data(self.stream_id, bytes(data))
            except H2UsageError as exc:
                raise TunnelClosed(f"tunnel stream {self.stream_id} cannot send: {exc}") from exc
            self._mux.kick()
        await self._mux.wait_writable(self)

    async def wait_send_all_might_not_block(self) -> None:
        await self._mux.wait_writable(self)

    async def send_eof(self) -> None:
        if self._sent_eof or self._closed:
            await trio.lowlevel.checkpoint()
            return
        if self._error is not None:
            raise TunnelClosed(self._error)
        self._sent_eof = True
        try:
            self._mux.codec.end_stream(self.stream_id)
        except H2UsageError as exc:
            raise TunnelClosed(f"tunnel stream {self.stream_id}: {exc}") from exc
        self._mux.kick()
        await trio.lowlevel.checkpoint()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        while not self._chunks:
            if self._closed:
                raise trio.ClosedResourceError("tunnel stream closed")
            if self._eof:
                await trio.lowlevel.checkpoint()
                return b""
            if self._error is not None:
                raise TunnelClosed(self._error)
            self._readable = trio.Event()
            await self._readable.wait()
        chunk = self._chunks.popleft()
        if max_bytes is not None and len(chunk) > max_bytes:
            self._chunks.appendleft(chunk[max_bytes:])
            chunk = chunk[:max_bytes]
        self._mux.acknowledge(self.stream_id, len(chunk))
        await trio.lowlevel.checkpoint()
        return chunk

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            self._mux.release(self, reset=not (self._eof and self._sent_eof))
        await trio.lowlevel.checkpoint()

    def respond(self, headers: list[tuple[bytes, bytes]], end_stream: bool = False) -> None:
        """Server side: send the response header block (``:status`` first)."""
        if self._error is not None:
            raise TunnelClosed(self._error)
        self._mux.codec.send_headers(self.stream_id, headers, end_stream)
        if end_stream:
            self._sent_eof = True
        self._mux.kick()


RequestHandler = Callable[[VirtualStream, Headers], Awaitable[None]]


@dataclass
class MuxStats:
    streams_opened: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    pings_sent: int = 0
    streams_failed: int = 0


class Mux:
    """One tunnel connection's HTTP/2. ``await nursery.start(mux.run)``; ``close(reason)``
    ends it. ``initial`` holds bytes already read past the handshake."""

    def __init__(
        self,
        transport: trio.abc.Stream,
        *,
        client_side: bool,
        limits: H2Limits,
        heartbeat_interval: float | None,
        on_request: RequestHandler | None = None,
        max_streams: int | None = None,
        initial: bytes = b"",
    ) -> None:
        self.codec = H2Connection(client_side=client_side, limits=limits)
        self.stats = MuxStats()
        self.reason: str | None = None
        self._transport = transport
        self._interval = heartbeat_interval
        self._on_request = on_request
        self._max_streams = (
            max_streams if max_streams is not None else limits.max_concurrent_streams
        )
        self._initial = initial
        self._streams: dict[int, VirtualStream] = {}
        self._wake_writer = trio.Event()
        self._progress = trio.Event()
        self._sending = False
        self._cancel = trio.CancelScope()
        self._nursery: trio.Nursery | None = None
        self._ping_counter = 0
        self._farewell: int | None = None
        self.lease: Lease | None = None
        self.goaway_code: int | None = None
        """The error code of the peer's GOAWAY, when it sent one."""

    @property
    def open_streams(self) -> int:
        return len(self._streams)

    @property
    def closed(self) -> bool:
        return self.reason is not None

    def close(self, reason: str, *, goaway: int | None = None) -> None:
        """End the tunnel: every stream fails with ``reason`` at once. With ``goaway`` the
        peer is told why (GOAWAY with that code, best effort) before the socket closes."""
        self._farewell = goaway
        self._lose(reason)
        self._cancel.cancel()

    # --- streams --------------------------------------------------------------------------

    async def open(self, headers: list[tuple[bytes, bytes]]) -> VirtualStream:
        """Client side: open a stream with ``headers`` and wait for a 200 response. Raises
        OSError (the pool's "cannot connect") when the tunnel refuses or is gone."""
        if self.reason is not None:
            raise OSError(f"tunnel closed: {self.reason}")
        if len(self._streams) >= self._max_streams or not self.codec.can_open_stream():
            raise OSError(f"tunnel stream limit reached ({len(self._streams)} open)")
        sid = self.codec.get_next_available_stream_id()
        stream = VirtualStream(self, sid)
        self._streams[sid] = stream
        self.stats.streams_opened += 1
        self.codec.send_headers(sid, headers, end_stream=False)
        self.kick()
        try:
            await stream._response.wait()
        except BaseException:
            await stream.aclose()
            raise
        fields = dict(stream.response_headers or ())
        status = fields.get(b":status")
        if status != b"200" or stream._error is not None:
            why = stream._error or "no response"
            if status is not None and status != b"200":  # the laptop's answer says most
                detail = fields.get(b"laneway-error", b"").decode("utf-8", "replace")
                why = f"status {status.decode()}: {detail}"
            await stream.aclose()
            raise OSError(f"tunnel stream refused: {why}")
        return stream

    def acknowledge(self, stream_id: int, n: int) -> None:
        if self.reason is None:
            self.codec.acknowledge_received_data(stream_id, n)
            self.kick()

    def release(self, stream: VirtualStream, *, reset: bool) -> None:
        if self._streams.pop(stream.stream_id, None) is not None and reset and self.reason is None:
            self.codec.reset_stream(stream.stream_id, ErrorCode.CANCEL)
            self.kick()

    async def wait_writable(self, stream: VirtualStream) -> None:
        """Return once ``stream`` may queue more (held bytes and unflushed output are
        under their marks); raise when the stream or the tunnel failed."""
        while True:
            if stream._error is not None:
                raise TunnelClosed(stream._error)
            if (
                self.codec.blocked_bytes(stream.stream_id) <= SEND_HIGH_WATER
                and self.codec.unflushed_bytes <= SOFT_UNFLUSHED_BYTES
            ):
                await trio.lowlevel.checkpoint()
                return
            progress = self._progress
            await progress.wait()

    def kick(self) -> None:
        self._wake_writer.set()

    def _made_progress(self) -> None:
        self._progress.set()
        self._progress = trio.Event()

    # --- tasks ----------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve the tunnel until the peer leaves, breaks the protocol, stops heartbeating,
        or ``close()``. Closes the transport on the way out."""
        with self._cancel:
            try:
                async with trio.open_nursery() as nursery:
                    self._nursery = nursery
                    nursery.start_soon(self._guarded, self._writer)
                    if self._interval is not None:
                        self.lease = Lease.start(trio.current_time(), self._interval)
                        nursery.start_soon(self._guarded, self._heartbeat)
                    task_status.started()
                    self.kick()  # our preface / SETTINGS go out first
                    if self._initial:
                        self._feed(self._initial)
                    await self._guarded(self._reader)
                    nursery.cancel_scope.cancel()
            finally:
                self._lose(self.reason or "tunnel closed")
                with trio.CancelScope(shield=True):
                    if self._farewell is not None and not self.codec.terminated:
                        await self._say_goodbye(self._farewell)
                    await trio.aclose_forcefully(self._transport)

    async def _say_goodbye(self, code: int) -> None:
        """Every task is done: write the GOAWAY directly (nobody else is sending)."""
        self.codec.goaway(code)
        with trio.move_on_after(GOAWAY_FLUSH_SECONDS):
            try:
                await self._transport.send_all(self.codec.data_to_send())
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                return  # the peer is gone: it learns from the closed socket instead

    async def _guarded(self, task: Callable[[], Awaitable[None]]) -> None:
        try:
            await task()
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            self._lose(f"connection broke: {exc}")
            self._cancel.cancel()

    async def _reader(self) -> None:
        while self.reason is None:
            data = bytes(await self._transport.receive_some(RECEIVE_SIZE))
            if not data:
                self._lose("peer closed the tunnel")
                return
            self.stats.bytes_in += len(data)
            self._feed(data)
            if self.codec.terminated:
                await self._flush_goaway()
                return
            while self.codec.unflushed_bytes > SOFT_UNFLUSHED_BYTES and self.reason is None:
                await self._progress.wait()  # backpressure: the peer must read what we owe it

    def _feed(self, data: bytes) -> None:
        for event in self.codec.receive_data(data, trio.current_time()):
            self._dispatch(event)
        self.kick()

    def _dispatch(self, event: Event) -> None:
        if isinstance(event, DataReceived):
            stream = self._streams.get(event.stream_id)
            if stream is None:  # we closed it: give the window back, drop the bytes
                self.codec.acknowledge_received_data(event.stream_id, len(event.data))
            else:
                stream._data(event.data, event.end_stream)
        elif isinstance(event, ResponseReceived):
            stream = self._streams.get(event.stream_id)
            if stream is not None:
                stream._got_response(event.headers, event.end_stream)
        elif isinstance(event, RequestReceived):
            self._accept(event)
        elif isinstance(event, StreamEnded):
            stream = self._streams.get(event.stream_id)
            if stream is not None:
                stream._end()
        elif isinstance(event, StreamReset):
            stream = self._streams.pop(event.stream_id, None)
            if stream is not None:
                stream._fail(f"tunnel stream {event.stream_id} reset ({event.error_code})")
                self._made_progress()
        elif isinstance(event, WindowUpdated):
            self._made_progress()
        elif isinstance(event, PingAckReceived):
            if self.lease is not None:
                self.lease.alive(trio.current_time())
        elif isinstance(event, GoAwayReceived):
            self.goaway_code = event.error_code
            self._lose(f"peer sent GOAWAY ({_code_name(event.error_code)})")
        elif isinstance(event, ConnectionTerminated):
            self._lose(f"peer broke the tunnel protocol ({event.reason}: {event.message})")

    def _accept(self, event: RequestReceived) -> None:
        if self._on_request is None or self._nursery is None:
            self.codec.reset_stream(event.stream_id, ErrorCode.REFUSED_STREAM)
            return
        stream = VirtualStream(self, event.stream_id)
        if event.end_stream:
            stream._eof = True
        self._streams[event.stream_id] = stream
        self.stats.streams_opened += 1
        self._nursery.start_soon(self._handle, stream, event.headers)

    async def _handle(self, stream: VirtualStream, headers: Headers) -> None:
        """Run ``on_request`` for one stream: the per-stream boundary. A stream that breaks
        (reset by the peer, local provider gone) ends alone, never the tunnel."""
        assert self._on_request is not None
        try:
            await self._on_request(stream, headers)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            self.stats.streams_failed += 1  # the peer learns from the reset (aclose below)
        finally:
            await stream.aclose()

    async def _writer(self) -> None:
        while True:
            await self._wake_writer.wait()
            self._wake_writer = trio.Event()
            data = self.codec.data_to_send()
            if data:
                self._sending = True
                try:
                    await self._transport.send_all(data)
                finally:
                    self._sending = False
                self.stats.bytes_out += len(data)
            self._made_progress()

    async def _flush_goaway(self) -> None:
        self.kick()
        with trio.move_on_after(GOAWAY_FLUSH_SECONDS):
            while self.codec.unflushed_bytes or self._sending:
                await self._progress.wait()

    async def _heartbeat(self) -> None:
        lease = self.lease
        assert lease is not None
        while True:
            now = trio.current_time()
            if lease.expired(now):
                self.close(f"missed {lease.misses} heartbeats ({lease.interval:g} s apart)")
                return
            if lease.ping_due(now) and self.reason is None:
                self._ping_counter += 1
                self.codec.ping(struct.pack(">Q", self._ping_counter))
                self.stats.pings_sent += 1
                self.kick()
            await trio.sleep_until(lease.next_wake())

    def _lose(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason
        streams, self._streams = self._streams, {}
        for stream in streams.values():
            stream._fail(f"tunnel closed: {self.reason}")
        self._made_progress()
