"""One multiplexed HTTP/2 connection to a gRPC / Triple provider.

The pool's nursery runs :meth:`H2Upstream.run` (reader and writer). A call opens a stream
with :meth:`open_stream` and reads that stream's events from its own channel; sending is
done on the codec directly (no await) followed by :meth:`kick`. When the connection dies,
every open stream receives :class:`UpstreamLost` at once (TESTS.md R1).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import trio

from proxy.codecs.grpc.connection import H2Connection
from proxy.codecs.grpc.events import (
    DataReceived,
    Event,
    GoAwayReceived,
    ResponseReceived,
    StreamEnded,
    StreamReset,
    TrailersReceived,
    WindowUpdated,
)
from proxy.errors import UpstreamDied
from proxy.net.outbox import Outbox, batched, defer

RECEIVE_SIZE = 64 * 1024
# why: one read drains many frames; HTTP/2 windows bound what can be in flight anyway.


@dataclass(frozen=True, slots=True)
class UpstreamLost:
    """The provider's connection closed or broke with this stream open."""

    reason: str


StreamEvent = (
    ResponseReceived
    | DataReceived
    | TrailersReceived
    | StreamEnded
    | StreamReset
    | WindowUpdated
    | UpstreamLost
)
StreamHandler = Callable[[StreamEvent], None]
# Tuples, not ``A | B`` unions: a union is built anew at every evaluation and checks slower.
_STREAM_EVENTS = (
    ResponseReceived,
    DataReceived,
    TrailersReceived,
    StreamEnded,
    StreamReset,
    WindowUpdated,
)
_STREAM_ENDINGS = (StreamEnded, StreamReset)


class H2Upstream:
    """A connected provider speaking HTTP/2 (gRPC, Triple)."""

    def __init__(self, address: str, stream: trio.abc.Stream) -> None:
        self.address = address
        self._stream = stream
        self.codec = H2Connection(client_side=True)
        # Each open stream's event handler, called synchronously from the reader (no task
        # or channel per call: bench/RESULTS.md).
        self._streams: dict[int, StreamHandler] = {}
        self._outbox = Outbox(stream, self.codec.data_to_send)
        self._closed: str | None = None
        self._goaway = False
        self._cancel = trio.CancelScope()
        self._key = id(self)  # (kick runs several times a call: no bound method per kick)
        self._push = self._push_now

    @property
    def usable(self) -> bool:
        return self._closed is None and not self._goaway and self.codec.can_open_stream()

    @property
    def open_streams(self) -> int:
        return len(self._streams)

    def open_stream(
        self, headers: list[tuple[bytes, bytes]], end_stream: bool, handler: StreamHandler
    ) -> int:
        """Send a request header block on a new stream; ``handler`` gets its events
        (synchronously, on the reader task) until it ends or :meth:`forget`."""
        if not self.usable:
            raise UpstreamDied(f"provider {self.address} takes no new streams")
        stream_id = self.codec.get_next_available_stream_id()
        self._streams[stream_id] = handler
        self.codec.send_headers(stream_id, headers, end_stream)
        self.kick()
        return stream_id

    def forget(self, stream_id: int) -> None:
        """The call is over: stop delivering events for ``stream_id``."""
        self._streams.pop(stream_id, None)

    def kick(self) -> None:
        """Something was queued on the codec: send it (at once when the socket has room,
        once per batch of events)."""
        if not defer(self._key, self._push):
            self._push_now()

    def _push_now(self) -> None:
        try:
            self._outbox.push()
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            self._lose(f"connection to provider {self.address} broke: {exc}")
            self._cancel.cancel()

    def on_flushed(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once everything queued on the codec so far has been written
        to the socket (flow-control acknowledgements wait for this: R11)."""
        self._outbox.on_flushed(callback)
        self.kick()

    def close(self) -> None:
        self._lose(f"connection to provider {self.address} closed by laneway")
        self._cancel.cancel()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        with self._cancel:
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._guarded, self._outbox.run)
                    task_status.started()
                    await self._guarded(self._reader)
                    nursery.cancel_scope.cancel()
            finally:
                self._lose(f"connection to provider {self.address} closed")
                with trio.CancelScope(shield=True):
                    await trio.aclose_forcefully(self._stream)

    async def _guarded(self, task: Callable[[], Awaitable[None]]) -> None:
        try:
            await task()
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            self._lose(f"connection to provider {self.address} broke: {exc}")
            self._cancel.cancel()

    async def _reader(self) -> None:
        while True:
            data = bytes(await self._stream.receive_some(RECEIVE_SIZE))
            if not data:
                self._lose(f"provider {self.address} closed the connection")
                return
            with batched():  # what the events make us send leaves in one write per peer
                for event in self.codec.receive_data(data, trio.current_time()):
                    self._dispatch(event)
                self.kick()  # SETTINGS/PING acks, window updates the codec queued
            if self.codec.terminated:
                self._lose(f"provider {self.address} broke HTTP/2")
                return

    def _dispatch(self, event: Event) -> None:
        if isinstance(event, GoAwayReceived):
            self._goaway = True  # refused streams already got StreamReset(REFUSED_STREAM)
        elif isinstance(event, WindowUpdated) and event.stream_id == 0:
            # The connection window opened: any stream may have sent held data.
            for handler in list(self._streams.values()):
                handler(event)
        elif isinstance(event, _STREAM_EVENTS):
            target = self._streams.get(event.stream_id)
            if target is not None:
                if isinstance(event, _STREAM_ENDINGS):
                    self.forget(event.stream_id)
                target(event)
            elif isinstance(event, DataReceived):
                # DATA for a call that is over (cancelled, timed out): nobody will take it,
                # but the connection window must get the bytes back or it leaks shut.
                self.codec.acknowledge_received_data(event.stream_id, len(event.data))
        # PING / SETTINGS are answered by the codec; ConnectionTerminated is handled after
        # the read (the codec is then terminated).

    def _lose(self, reason: str) -> None:
        if self._closed is None:
            self._closed = reason
        streams, self._streams = self._streams, {}
        lost = UpstreamLost(reason)
        for handler in streams.values():
            handler(lost)
