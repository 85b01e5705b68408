"""The sans-IO HTTP/2 connection: bytes in, events out, frames queued for the transport.

One class serves both sides: ``H2Connection(client_side=False)`` faces gRPC clients,
``H2Connection(client_side=True)`` faces upstream providers. The transport owns the
socket and the clock::

    events = conn.receive_data(chunk, now)   # all frames of one read, then the events
    ... act on the events (route, forward, acknowledge_received_data) ...
    await stream.send_all(conn.data_to_send())

Contract:

* Nothing here does I/O, reads a clock, or logs. ``now`` (any monotonic float, seconds)
  is passed to ``receive_data`` for the rate limits.
* Errors never escape ``receive_data``: a connection error queues GOAWAY and yields
  :class:`ConnectionTerminated` (then every later input is ignored and the transport
  must close after flushing); a stream error queues RST_STREAM and yields
  :class:`StreamReset` with ``remote=False``.
* Flow control is end to end: inbound bytes are given back to the peer only through
  :meth:`acknowledge_received_data`. Outbound data beyond the peer's windows is held per
  stream (:meth:`blocked_bytes`) and sent when a WINDOW_UPDATE arrives.
* Rapid reset (H2): events of a stream that is opened *and* reset by the peer within one
  ``receive_data`` call are dropped from the returned list, so the proxy starts no
  upstream work for it (counted in ``counters.coalesced_resets``). Across reads, the
  premature-reset guard (> 50 % of streams reset within 1 s of opening, after 500 streams
  or 250 resets) answers GOAWAY(ENHANCE_YOUR_CALM).
* Stream limit (H10): a stream beyond our MAX_CONCURRENT_STREAMS is refused with
  RST_STREAM(REFUSED_STREAM) (safe for the client to retry); the connection and the
  other streams are untouched. This holds from the first byte, before our SETTINGS are
  acknowledged, because refusing a stream is always allowed.
"""

from __future__ import annotations

import collections
from collections.abc import Sequence

from proxy.codecs.grpc import frames as fr
from proxy.codecs.grpc import headers as hd
from proxy.codecs.grpc.errors import ErrorCode, H2ConnectionError, H2StreamError, H2UsageError
from proxy.codecs.grpc.events import (
    ConnectionTerminated,
    DataReceived,
    Event,
    GoAwayReceived,
    PingAckReceived,
    PingReceived,
    RequestReceived,
    ResponseReceived,
    SettingsAcknowledged,
    SettingsChanged,
    StreamEnded,
    StreamReset,
    TrailersReceived,
    WindowUpdated,
)
from proxy.codecs.grpc.flow import InboundWindow, grow_outbound
from proxy.codecs.grpc.hpack_in import HeaderDecoder
from proxy.codecs.grpc.hpack_out import IndexingEncoder
from proxy.codecs.grpc.limits import (
    DEFAULT_INITIAL_WINDOW_SIZE,
    DEFAULT_LIMITS,
    MAX_STREAM_ID,
    H2Limits,
)
from proxy.codecs.grpc.settings import PeerSettings, SettingCode, local_settings
from proxy.codecs.grpc.streams import Stream, StreamInput, StreamState

_Headers = Sequence[tuple[bytes, bytes]]


#: Every H2Counters field (a module constant: the class is compiled by mypyc, where
#: ``self.__slots__`` is not visible).
_COUNTER_NAMES = (
    "coalesced_resets",
    "compression_errors",
    "connection_errors",
    "continuation_floods",
    "control_rate_trips",
    "empty_frame_trips",
    "frames_on_reset_streams",
    "header_lists_too_large",
    "outbound_floods",
    "oversized_frames",
    "premature_resets",
    "priority_floods",
    "priority_frames",
    "rapid_reset_trips",
    "refused_streams",
    "stream_errors",
    "streams_opened",
    "unknown_frames",
    "window_update_floods",
)


class H2Counters:
    """Named counters of one connection (exported as metrics by the transport)."""

    __slots__ = _COUNTER_NAMES

    def __init__(self) -> None:
        for name in _COUNTER_NAMES:
            setattr(self, name, 0)

    def as_dict(self) -> dict[str, int]:
        """All counters by name."""
        return {name: getattr(self, name) for name in _COUNTER_NAMES}

    coalesced_resets: int
    compression_errors: int
    connection_errors: int
    continuation_floods: int
    control_rate_trips: int
    empty_frame_trips: int
    frames_on_reset_streams: int
    header_lists_too_large: int
    outbound_floods: int
    oversized_frames: int
    premature_resets: int
    priority_floods: int
    priority_frames: int
    rapid_reset_trips: int
    refused_streams: int
    stream_errors: int
    streams_opened: int
    unknown_frames: int
    window_update_floods: int


class _Flood(H2ConnectionError):
    """A protection tripped; ``reason`` names it in ConnectionTerminated."""

    def __init__(self, reason: str, message: str, code: ErrorCode = ErrorCode.ENHANCE_YOUR_CALM):
        super().__init__(code, message)
        self.reason = reason


class H2Connection:
    """One HTTP/2 connection, either side. See the module docstring for the contract."""

    def __init__(self, *, client_side: bool, limits: H2Limits = DEFAULT_LIMITS) -> None:
        self.client_side = client_side
        self.limits = limits
        self.counters = H2Counters()
        self.peer_settings = PeerSettings()
        #: True once a connection error was found or GOAWAY was received and handled.
        self.terminated = False
        self.streams: dict[int, Stream] = {}
        self._out = bytearray()
        self._queued_control = 0
        self._inbuf = b""
        self._preface_left = b"" if client_side else fr.PREFACE
        self._settings_seen = False
        self._settings_seen_once = False
        self._decoder = HeaderDecoder(max_header_list_size=limits.max_header_list_size)
        self._encoder = IndexingEncoder()
        # Our SETTINGS take effect for the peer when it ACKs them; until then the RFC
        # defaults govern what it may send (RFC 9113 §6.5.3).
        self._local_initial_window = DEFAULT_INITIAL_WINDOW_SIZE
        self._unacked_settings: collections.deque[dict[int, int]] = collections.deque()
        self._conn_in = InboundWindow(DEFAULT_INITIAL_WINDOW_SIZE)
        self._conn_out = DEFAULT_INITIAL_WINDOW_SIZE
        self._blocked: dict[int, None] = {}
        # Closed stream ids we still recognise -> True when *we* reset it (frames ignored).
        self._closed: collections.OrderedDict[int, bool] = collections.OrderedDict()
        self._highest_peer_id = 0
        self._first_local_id = self._next_local_id = 1 if client_side else 2
        self._peer_parity = 0 if client_side else 1
        self._peer_open = 0
        self._local_open = 0
        self._goaway_sent_last: int | None = None
        self._goaway_received_last: int | None = None
        # Header block being assembled: stream id (0 = none), END_STREAM, fragments.
        self._hb_stream = 0
        self._hb_end_stream = False
        self._hb_parts: list[bytes] = []
        self._hb_frames = 0
        self._hb_size = 0
        self._hb_stream_error: H2StreamError | None = None
        self._empty_frames = 0
        self._priority_frames = 0
        self._window_updates = 0
        self._data_frames_sent = 0
        self._tokens = limits.control_frame_burst
        self._tokens_at: float | None = None
        self._premature = 0
        # Per-receive_data state.
        self._events: list[Event] = []
        self._now = 0.0
        self._opened_this_read: set[int] = set()
        self._suppressed: set[int] = set()
        self._handlers = {
            fr.DATA: self._on_data,
            fr.HEADERS: self._on_headers,
            fr.PRIORITY: self._on_priority,
            fr.RST_STREAM: self._on_rst_stream,
            fr.SETTINGS: self._on_settings,
            fr.PUSH_PROMISE: self._on_push_promise,
            fr.PING: self._on_ping,
            fr.GOAWAY: self._on_goaway,
            fr.WINDOW_UPDATE: self._on_window_update,
            fr.CONTINUATION: self._on_continuation,
        }
        self._start()

    # --- public API: input ----------------------------------------------------------------

    @property
    def input_pending(self) -> bool:
        """True while a frame or a header block has started and not finished arriving (the
        transport times this: a request-headers timeout against slowloris, TESTS.md H8)."""
        return bool(self._inbuf) or self._hb_stream != 0

    def receive_data(self, data: bytes, now: float) -> list[Event]:
        """Process every complete frame in ``data`` (plus what was buffered); return events.

        At most one incomplete frame is kept between calls, and a frame header declaring
        more than our MAX_FRAME_SIZE is rejected before its body is awaited (H7).
        """
        if self.terminated:
            return []
        events: list[Event] = []
        self._events = events
        self._now = now
        self._opened_this_read = set()
        buf = self._inbuf + data if self._inbuf else data
        pos = 0
        try:
            if self._preface_left:
                pos = self._check_preface(buf)
            end = len(buf)
            limit = self.limits.max_inbound_frame_size
            handlers = self._handlers
            unpack = fr.HEADER_STRUCT.unpack_from
            while end - pos >= 9:
                high, low, ftype, flags, sid = unpack(buf, pos)  # (fr.parse_header, inlined)
                length = (high << 8) | low
                sid &= fr.STREAM_ID_MASK
                if length > limit:
                    self.counters.oversized_frames += 1
                    raise _Flood(
                        "frame-size",
                        f"frame of {length} bytes > MAX_FRAME_SIZE {limit}",
                        ErrorCode.FRAME_SIZE_ERROR,
                    )
                if end - pos - 9 < length:
                    break
                body = buf[pos + 9 : pos + 9 + length]  # (bytes: buf is bytes)
                pos += 9 + length
                if not self._settings_seen:
                    if ftype != fr.SETTINGS or flags & fr.ACK:
                        raise H2ConnectionError(
                            ErrorCode.PROTOCOL_ERROR, "the first frame must be SETTINGS"
                        )
                    self._settings_seen = True
                if self._hb_stream and ftype != fr.CONTINUATION:
                    raise H2ConnectionError(ErrorCode.PROTOCOL_ERROR, "frame inside a header block")
                handler = handlers.get(ftype)
                try:
                    if handler is None:
                        self.counters.unknown_frames += 1  # RFC 9113 §5.5: ignore
                    else:
                        # DATA and HEADERS on a stream need no check: both belong on one
                        # and have no fixed length.
                        if ftype > fr.HEADERS or sid == 0:
                            fr.check_association(ftype, sid, length)
                        handler(flags, sid, body)
                except H2StreamError as exc:
                    self._stream_error(exc)
                if len(self._out) > self.limits.max_unflushed_bytes or (
                    self._queued_control > self.limits.max_queued_control_frames
                ):
                    self.counters.outbound_floods += 1
                    raise _Flood(
                        "outbound-flood",
                        f"{self._queued_control} control frames, {len(self._out)} bytes unflushed",
                    )
            self._inbuf = bytes(buf[pos:])
        except H2ConnectionError as exc:
            self._terminate(exc)
        if self._suppressed:
            events = self._drop_suppressed(events)
        self._events = []
        return events

    def acknowledge_received_data(self, stream_id: int, n: int) -> None:
        """The consumer took ``n`` bytes of ``stream_id``'s DATA: give the peer window back.

        WINDOW_UPDATEs are batched (see :class:`InboundWindow`); acknowledging a stream
        that has since closed still returns the bytes to the connection window.
        """
        if n <= 0 or self.terminated:
            return
        inc = self._conn_in.acknowledge(n)
        if inc:
            self._queue(fr.window_update_frame(0, inc))
        stream = self.streams.get(stream_id)
        if stream is not None and stream.state in (StreamState.OPEN, StreamState.HALF_CLOSED_LOCAL):
            inc = stream.inbound.acknowledge(n)
            if inc:
                self._queue(fr.window_update_frame(stream_id, inc))

    # --- public API: output ---------------------------------------------------------------

    def data_to_send(self, amount: int | None = None) -> bytes:
        """Take up to ``amount`` (default: all) queued bytes for the transport to write."""
        if amount is None or amount >= len(self._out):
            out = bytes(self._out)
            self._out.clear()
            self._queued_control = 0
            return out
        out = bytes(self._out[:amount])
        del self._out[:amount]
        return out

    @property
    def unflushed_bytes(self) -> int:
        """Bytes queued but not yet taken by :meth:`data_to_send`.

        The transport stops reading from this peer while this exceeds
        ``SOFT_UNFLUSHED_BYTES`` (backpressure); the codec itself closes the connection
        beyond ``limits.max_unflushed_bytes`` (H5).
        """
        return len(self._out)

    def get_next_available_stream_id(self) -> int:
        """The id :meth:`send_headers` expects for our next new stream."""
        return self._next_local_id

    def can_open_stream(self) -> bool:
        """True when the peer's MAX_CONCURRENT_STREAMS and GOAWAY allow one more stream."""
        return (
            not self.terminated
            and self._goaway_received_last is None
            and self._local_open < self.peer_settings.max_concurrent_streams
            and self._next_local_id <= MAX_STREAM_ID
        )

    def send_headers(self, stream_id: int, headers: _Headers, end_stream: bool = False) -> None:
        """Queue a header block: a request on a new stream, a response, or trailers.

        Trailers (a second block, which must have ``end_stream``) wait behind held DATA.
        A stream that was reset meanwhile is silently skipped; any other state that does
        not allow it raises :class:`H2UsageError`.
        """
        self._check_usable()
        stream = self.streams.get(stream_id)
        if stream is None:
            if stream_id in self._closed:
                return  # reset meanwhile (a normal race in a proxy): nothing to send
            stream = self._open_local_stream(stream_id)
        elif stream.pending or stream.pending_end:
            if not end_stream:
                raise H2UsageError(f"stream {stream_id}: trailers must end the stream")
            if stream.pending_end or stream.pending_trailers is not None:
                raise H2UsageError(f"stream {stream_id}: already ending")
            stream.pending_trailers = headers
            return
        self._send_block(stream, headers, end_stream)

    def send_data(self, stream_id: int, data: bytes, end_stream: bool = False) -> int:
        """Queue DATA; return how many bytes flow control holds back for this stream.

        Data is split to the peer's MAX_FRAME_SIZE and sent as far as the stream and
        connection windows allow; the rest follows on WINDOW_UPDATE (see WindowUpdated).
        A stream that was reset meanwhile is silently skipped (returns 0).
        """
        self._check_usable()
        stream = self.streams.get(stream_id)
        if stream is None and stream_id in self._closed:
            return 0  # reset meanwhile (a normal race in a proxy): nothing to send
        if stream is None or stream.state not in (StreamState.OPEN, StreamState.HALF_CLOSED_REMOTE):
            raise H2UsageError(f"stream {stream_id} cannot send DATA")
        if stream.pending_end or stream.pending_trailers is not None:
            raise H2UsageError(f"stream {stream_id} is already ending")
        n = len(data)
        if (
            n
            and not stream.pending
            and n <= stream.outbound
            and n <= self._conn_out
            and n <= self.peer_settings.max_frame_size
        ):
            # The common case (a message that fits the windows and one frame, nothing held):
            # one frame now, what _flush would do without the queue round trip.
            stream.outbound -= n
            self._conn_out -= n
            self._data_frames_sent += 1
            self._queue(
                fr.frame(fr.DATA, fr.END_STREAM if end_stream else 0, stream_id, data), False
            )
            if end_stream:
                self._local_end(stream)
            return 0
        if data:
            stream.pending.append(data)
            stream.pending_bytes += n
        stream.pending_end = end_stream
        self._flush(stream)
        return stream.pending_bytes

    def end_stream(self, stream_id: int) -> None:
        """Send END_STREAM (after any held data) without more payload."""
        self.send_data(stream_id, b"", end_stream=True)

    def blocked_bytes(self, stream_id: int) -> int:
        """Bytes of ``stream_id`` held back by flow control (0 for unknown streams)."""
        stream = self.streams.get(stream_id)
        return 0 if stream is None else stream.pending_bytes

    def reset_stream(self, stream_id: int, error_code: int = ErrorCode.CANCEL) -> None:
        """Queue RST_STREAM and forget the stream (held data is dropped). Idempotent."""
        stream = self.streams.get(stream_id)
        if stream is None or self.terminated:
            return
        self._queue(fr.rst_stream_frame(stream_id, error_code))
        self._close(stream, reset_by_us=True)

    def ping(self, opaque: bytes) -> None:
        """Queue a PING with 8 opaque bytes."""
        if len(opaque) != 8:
            raise H2UsageError("PING data must be 8 bytes")
        self._check_usable()
        self._queue(fr.ping_frame(opaque))

    def goaway(
        self, error_code: int = ErrorCode.NO_ERROR, last_stream_id: int | None = None
    ) -> None:
        """Queue GOAWAY. ``last_stream_id=2**31-1`` is the first step of a graceful drain.

        Peer streams above the announced id are refused from now on; a later call may
        lower the id (the final GOAWAY of a drain), never raise it.
        """
        self._check_usable()
        last = self._highest_peer_id if last_stream_id is None else last_stream_id
        if self._goaway_sent_last is not None:
            last = min(last, self._goaway_sent_last)
        self._goaway_sent_last = last
        self._queue(fr.goaway_frame(last, error_code))

    def update_settings(self, settings: dict[int, int]) -> None:
        """Announce new local SETTINGS; they take effect when the peer ACKs them."""
        self._check_usable()
        self._unacked_settings.append(dict(settings))
        self._queue(fr.settings_frame(settings))

    # --- connection start and end ---------------------------------------------------------

    def _start(self) -> None:
        if self.client_side:
            self._out += fr.PREFACE
        settings = local_settings(self.limits)
        self._unacked_settings.append(settings)
        self._out += fr.settings_frame(settings)
        grow = self.limits.initial_connection_window - DEFAULT_INITIAL_WINDOW_SIZE
        if grow > 0:
            self._conn_in = InboundWindow(self.limits.initial_connection_window)
            self._out += fr.window_update_frame(0, grow)

    def _check_preface(self, buf: bytes) -> int:
        want = self._preface_left
        got = buf[: len(want)]
        if want[: len(got)] != got:
            raise H2ConnectionError(ErrorCode.PROTOCOL_ERROR, "invalid connection preface")
        self._preface_left = want[len(got) :]
        return len(got)

    def _terminate(self, exc: H2ConnectionError) -> None:
        self.counters.connection_errors += 1
        self._inbuf = b""
        self._hb_parts = []
        reason = exc.reason if isinstance(exc, _Flood) else _reason_of(exc)
        last = self._highest_peer_id
        self._queue(fr.goaway_frame(last, exc.code, exc.message.encode()[:256]))
        self.terminated = True
        self._events.append(ConnectionTerminated(int(exc.code), reason, exc.message, last))

    def _check_usable(self) -> None:
        if self.terminated:
            raise H2UsageError("connection terminated")

    def _queue(self, data: bytes, control: bool = True) -> None:
        self._out += data
        if control:
            self._queued_control += 1

    # --- frame handlers (flags, stream id, body) ------------------------------------------

    def _on_data(self, flags: int, sid: int, body: bytes) -> None:
        stream = self._stream_for(sid, fr.DATA)
        flow_len = len(body)
        data = fr.strip_padding(body, flags, fr.DATA)[1] if flags & fr.PADDED else body
        if not self._conn_in.consume(flow_len):
            raise H2ConnectionError(ErrorCode.FLOW_CONTROL_ERROR, "connection window exceeded")
        end = bool(flags & fr.END_STREAM)
        if data or end:
            self._empty_frames = 0
        else:
            self._empty_frames += 1
            if self._empty_frames > self.limits.max_consecutive_empty_frames:
                self.counters.empty_frame_trips += 1
                raise _Flood("empty-frames", f"{self._empty_frames} empty DATA frames in a row")
        if stream is None:  # a stream we reset: ignore, but give the bytes back
            self._return_to_connection(flow_len)
            return
        consumer_len = len(data)
        try:
            if stream.step(StreamInput.RECV_DATA) is None:
                raise H2StreamError(sid, ErrorCode.STREAM_CLOSED, f"DATA on {stream.state.name}")
            if not stream.inbound.consume(flow_len):
                raise H2StreamError(sid, ErrorCode.FLOW_CONTROL_ERROR, "stream window exceeded")
            if not stream.headers_received:
                raise H2StreamError(sid, ErrorCode.PROTOCOL_ERROR, "DATA before HEADERS")
            limit = stream.content_length
            if limit is not None and stream.data_received + consumer_len > limit:
                raise H2StreamError(sid, ErrorCode.PROTOCOL_ERROR, "DATA beyond content-length")
        except H2StreamError:
            self._return_to_connection(flow_len)
            raise
        if flow_len != consumer_len:  # padding never reaches the consumer: ack it now
            self._return_to_connection(flow_len - consumer_len)
            stream.inbound.acknowledge(flow_len - consumer_len)
        stream.data_received += consumer_len
        self._events.append(DataReceived(sid, data, end))
        if end:
            self._remote_end(stream)

    def _on_headers(self, flags: int, sid: int, body: bytes) -> None:
        if flags & (fr.PADDED | fr.PRIORITY_FLAG):
            start, block = fr.strip_padding(body, flags, fr.HEADERS)
        else:
            start, block = 0, body
        self._empty_frames = 0
        self._hb_stream_error = None
        if flags & fr.PRIORITY_FLAG and fr.priority_dependency(body, start) == sid:
            self._hb_stream_error = H2StreamError(
                sid, ErrorCode.PROTOCOL_ERROR, "stream depends on itself"
            )
        if flags & fr.END_HEADERS:
            self._header_block(sid, bool(flags & fr.END_STREAM), block)
            return
        self._hb_stream = sid
        self._hb_end_stream = bool(flags & fr.END_STREAM)
        self._hb_parts = [block]
        self._hb_frames = 0
        self._hb_size = len(block)

    def _on_continuation(self, flags: int, sid: int, body: bytes) -> None:
        if not self._hb_stream or sid != self._hb_stream:
            raise H2ConnectionError(ErrorCode.PROTOCOL_ERROR, "CONTINUATION out of place")
        self._hb_frames += 1
        self._hb_size += len(body)
        if self._hb_frames > self.limits.max_continuation_frames:
            self.counters.continuation_floods += 1
            raise _Flood("continuation-flood", f"{self._hb_frames} CONTINUATION frames")
        if self._hb_size > self.limits.max_header_list_size + self.limits.max_inbound_frame_size:
            self.counters.header_lists_too_large += 1
            raise _Flood("header-list-size", f"header block of {self._hb_size} bytes")
        self._hb_parts.append(body)
        if flags & fr.END_HEADERS:
            block = b"".join(self._hb_parts)
            self._hb_stream = 0
            self._hb_parts = []
            self._header_block(sid, self._hb_end_stream, block)

    def _header_block(self, sid: int, end_stream: bool, block: bytes) -> None:
        """A complete header block arrived on ``sid``: decode it, then apply it."""
        try:
            headers = self._decoder.decode(block)
        except hd.HeaderListTooLarge:
            self.counters.header_lists_too_large += 1
            raise
        except H2ConnectionError:
            self.counters.compression_errors += 1
            raise
        stream = self.streams.get(sid)
        if stream is None:
            stream = self._new_peer_stream(sid)
            if stream is None:
                return
        if self._hb_stream_error is not None:
            raise self._hb_stream_error
        if stream.step(StreamInput.RECV_HEADERS) is None:
            raise H2StreamError(sid, ErrorCode.STREAM_CLOSED, f"HEADERS on {stream.state.name}")
        first = not stream.headers_received
        kind = (hd.RESPONSE if self.client_side else hd.REQUEST) if first else hd.TRAILERS
        if not first and not end_stream:
            raise H2StreamError(sid, ErrorCode.PROTOCOL_ERROR, "trailers without END_STREAM")
        memo = self._decoder.last_memo
        content_length = hd.validate_once(
            None if memo is None else memo.checks, headers, kind, sid, self.limits.max_header_count
        )
        if kind == hd.RESPONSE and headers[0][1][:1] == b"1":
            # RFC 9113 §8.1: an informational (1xx) response precedes the real one; gRPC
            # has no use for it, so it is consumed here (:status is first: validated).
            if end_stream:
                raise H2StreamError(sid, ErrorCode.PROTOCOL_ERROR, "1xx with END_STREAM")
            return
        stream.headers_received += 1
        if first:
            stream.content_length = content_length
            if self.client_side:
                self._events.append(ResponseReceived(sid, headers, end_stream))
            else:
                self._events.append(RequestReceived(sid, headers, end_stream))
        else:
            self._events.append(TrailersReceived(sid, headers))
        if end_stream:
            self._remote_end(stream)

    def _new_peer_stream(self, sid: int) -> Stream | None:
        """Open the peer's new stream ``sid``; None when it is refused or ignored."""
        if sid in self._closed:
            if self._closed[sid]:
                self.counters.frames_on_reset_streams += 1
                return None
            raise H2ConnectionError(ErrorCode.STREAM_CLOSED, f"HEADERS on closed stream {sid}")
        if sid % 2 != self._peer_parity or self.client_side:
            raise H2ConnectionError(ErrorCode.PROTOCOL_ERROR, f"peer cannot open stream {sid}")
        if sid <= self._highest_peer_id:
            raise H2ConnectionError(ErrorCode.PROTOCOL_ERROR, f"stream id {sid} went backwards")
        self._highest_peer_id = sid
        if self._hb_stream_error is not None:
            self._remember_closed(sid, reset_by_us=True)
            raise self._hb_stream_error
        refused = self._goaway_sent_last is not None and sid > self._goaway_sent_last
        if refused or self._peer_open >= self.limits.max_concurrent_streams:
            self.counters.refused_streams += 1
            self._remember_closed(sid, reset_by_us=True)
            raise H2StreamError(sid, ErrorCode.REFUSED_STREAM, "too many concurrent streams")
        stream = Stream(
            sid, self._local_initial_window, self.peer_settings.initial_window_size, self._now
        )
        self.streams[sid] = stream
        self._peer_open += 1
        self.counters.streams_opened += 1
        self._opened_this_read.add(sid)
        return stream

    def _on_priority(self, flags: int, sid: int, body: bytes) -> None:
        self.counters.priority_frames += 1
        self._priority_frames += 1
        allowed = self.limits.max_priority_frames_per_stream * (1 + self.counters.streams_opened)
        if self._priority_frames > allowed:
            self.counters.priority_floods += 1
            raise _Flood("priority-flood", f"{self._priority_frames} PRIORITY frames")
        if fr.parse_priority(body, sid) == sid:
            raise H2StreamError(sid, ErrorCode.PROTOCOL_ERROR, "stream depends on itself")

    def _on_rst_stream(self, flags: int, sid: int, body: bytes) -> None:
        stream = self._stream_for(sid, fr.RST_STREAM)
        if stream is None:
            return
        code = fr.parse_u32(body)
        stream.step(StreamInput.RECV_RST)
        self._close(stream, reset_by_us=False)
        if sid in self._opened_this_read:
            # Opened and reset in the same read: the proxy never hears of it (H2).
            self.counters.coalesced_resets += 1
            self._suppressed.add(sid)
        else:
            self._events.append(StreamReset(sid, code, True))
        if sid % 2 == self._peer_parity:
            self._count_premature_reset(stream)

    def _count_premature_reset(self, stream: Stream) -> None:
        if self._now - stream.opened_at >= self.limits.rapid_reset_window_s:
            return
        self._premature += 1
        self.counters.premature_resets += 1
        opened = self.counters.streams_opened
        enough = (
            opened >= self.limits.rapid_reset_min_streams
            or self._premature >= self.limits.rapid_reset_early_trip
        )
        if enough and self._premature * 2 > opened:
            self.counters.rapid_reset_trips += 1
            raise _Flood("rapid-reset", f"{self._premature} of {opened} streams reset early")

    def _on_settings(self, flags: int, sid: int, body: bytes) -> None:
        settings = fr.parse_settings(body, flags)
        if flags & fr.ACK:
            if not self._unacked_settings:
                raise H2ConnectionError(ErrorCode.PROTOCOL_ERROR, "unexpected SETTINGS ACK")
            self._local_settings_acked(self._unacked_settings.popleft())
            self._events.append(SettingsAcknowledged())
            return
        if self._settings_seen_once:
            self._spend_control_token("SETTINGS")
        self._settings_seen_once = True  # the preface's SETTINGS is mandatory: not counted
        old_window = self.peer_settings.initial_window_size
        changed = self.peer_settings.apply(settings)
        if SettingCode.HEADER_TABLE_SIZE in changed:
            self._encoder.set_max_size(changed[SettingCode.HEADER_TABLE_SIZE])
        self._queue(fr.settings_ack())
        self._events.append(SettingsChanged(changed))
        delta = self.peer_settings.initial_window_size - old_window
        if delta:
            for stream in list(self.streams.values()):
                new = grow_outbound(stream.outbound, delta)
                if new is None:
                    raise H2ConnectionError(
                        ErrorCode.FLOW_CONTROL_ERROR, "INITIAL_WINDOW_SIZE overflows a window"
                    )
                stream.outbound = new
            if delta > 0:
                for stream_id in list(self._blocked):
                    self._events.append(WindowUpdated(stream_id, delta))
                self._flush_blocked()

    def _local_settings_acked(self, settings: dict[int, int]) -> None:
        window = settings.get(SettingCode.INITIAL_WINDOW_SIZE)
        if window is not None and window != self._local_initial_window:
            self._local_initial_window = window
            for stream in self.streams.values():
                stream.inbound.retarget(window)

    def _on_push_promise(self, flags: int, sid: int, body: bytes) -> None:
        raise H2ConnectionError(ErrorCode.PROTOCOL_ERROR, "PUSH_PROMISE (push is disabled)")

    def _on_ping(self, flags: int, sid: int, body: bytes) -> None:
        if flags & fr.ACK:
            self._events.append(PingAckReceived(body))
            return
        self._spend_control_token("PING")
        self._queue(fr.ping_frame(body, ack=True))
        self._events.append(PingReceived(body))

    def _spend_control_token(self, what: str) -> None:
        """Token bucket for inbound PING + SETTINGS (CVE-2019-9512/9515)."""
        limits = self.limits
        if self._tokens_at is not None:
            elapsed = max(0.0, self._now - self._tokens_at)
            self._tokens = min(
                limits.control_frame_burst, self._tokens + elapsed * limits.control_frame_rate
            )
        self._tokens_at = self._now
        if self._tokens < 1.0:
            self.counters.control_rate_trips += 1
            raise _Flood("control-rate", f"{what} flood beyond {limits.control_frame_rate}/s")
        self._tokens -= 1.0

    def _on_goaway(self, flags: int, sid: int, body: bytes) -> None:
        goaway = fr.parse_goaway(body)
        self._goaway_received_last = goaway.last_stream_id
        for stream_id, stream in list(self.streams.items()):
            if stream_id % 2 != self._peer_parity and stream_id > goaway.last_stream_id:
                self._close(stream, reset_by_us=False)
                self._events.append(StreamReset(stream_id, ErrorCode.REFUSED_STREAM, True))
        self._events.append(
            GoAwayReceived(goaway.last_stream_id, goaway.error_code, goaway.debug_data)
        )

    def _on_window_update(self, flags: int, sid: int, body: bytes) -> None:
        self._window_updates += 1
        # Envoy's formula: WINDOW_UPDATEs are earned by streams (either side's) and by DATA
        # we send; the base allowance covers a connection's start.
        per_data = self.limits.max_window_updates_per_data_frame
        streams = self.counters.streams_opened + (self._next_local_id - self._first_local_id) // 2
        allowed = per_data + 2 * (streams + per_data * self._data_frames_sent)
        if self._window_updates > allowed:
            self.counters.window_update_floods += 1
            raise _Flood("window-update-flood", f"{self._window_updates} WINDOW_UPDATE frames")
        increment = fr.parse_u32(body) & 0x7FFFFFFF
        if sid == 0:
            if increment == 0:
                raise H2ConnectionError(ErrorCode.PROTOCOL_ERROR, "WINDOW_UPDATE of 0")
            new = grow_outbound(self._conn_out, increment)
            if new is None:
                raise H2ConnectionError(ErrorCode.FLOW_CONTROL_ERROR, "connection window > 2^31-1")
            self._conn_out = new
            self._events.append(WindowUpdated(0, increment))
            self._flush_blocked()
            return
        stream = self._stream_for(sid, fr.WINDOW_UPDATE)
        if stream is None:
            return
        if increment == 0:
            raise H2StreamError(sid, ErrorCode.PROTOCOL_ERROR, "WINDOW_UPDATE of 0")
        new = grow_outbound(stream.outbound, increment)
        if new is None:
            raise H2StreamError(sid, ErrorCode.FLOW_CONTROL_ERROR, "stream window > 2^31-1")
        stream.outbound = new
        self._events.append(WindowUpdated(sid, increment))
        if stream.pending or stream.pending_end or stream.pending_trailers is not None:
            self._flush(stream)

    # --- stream bookkeeping ---------------------------------------------------------------

    def _stream_for(self, sid: int, ftype: int) -> Stream | None:
        """The open stream a DATA/RST_STREAM/WINDOW_UPDATE refers to.

        None for a stream we reset or (for RST/WINDOW_UPDATE) one that closed: ignored.
        An idle stream is a PROTOCOL_ERROR, DATA on a closed one STREAM_CLOSED (§5.1).
        """
        stream = self.streams.get(sid)
        if stream is not None:
            return stream
        reset_by_us = self._closed.get(sid)
        if reset_by_us:
            self.counters.frames_on_reset_streams += 1
            return None
        if self._is_idle(sid):
            name = fr.FrameType(ftype).name
            raise H2ConnectionError(ErrorCode.PROTOCOL_ERROR, f"{name} on idle stream {sid}")
        if ftype == fr.DATA:
            raise H2ConnectionError(ErrorCode.STREAM_CLOSED, f"DATA on closed stream {sid}")
        return None

    def _is_idle(self, sid: int) -> bool:
        if sid % 2 == self._peer_parity:
            return sid > self._highest_peer_id
        return sid >= self._next_local_id

    def _open_local_stream(self, stream_id: int) -> Stream:
        if stream_id != self._next_local_id:
            raise H2UsageError(f"next stream id is {self._next_local_id}, not {stream_id}")
        if not self.can_open_stream():
            raise H2UsageError("the peer's stream limit or GOAWAY forbids a new stream")
        self._next_local_id += 2
        stream = Stream(
            stream_id, self._local_initial_window, self.peer_settings.initial_window_size, 0.0
        )
        self.streams[stream_id] = stream
        self._local_open += 1
        return stream

    def _remote_end(self, stream: Stream) -> None:
        if stream.content_length is not None and stream.data_received != stream.content_length:
            raise H2StreamError(
                stream.stream_id, ErrorCode.PROTOCOL_ERROR, "content-length mismatch"
            )
        if stream.step(StreamInput.RECV_END_STREAM) is None:
            raise H2StreamError(stream.stream_id, ErrorCode.STREAM_CLOSED, "END_STREAM twice")
        self._events.append(StreamEnded(stream.stream_id))
        if stream.state is StreamState.CLOSED:
            self._close(stream, reset_by_us=False)

    def _close(self, stream: Stream, reset_by_us: bool) -> None:
        sid = stream.stream_id
        stream.state = StreamState.CLOSED
        if self.streams.pop(sid, None) is None:
            return
        if sid % 2 == self._peer_parity:
            self._peer_open -= 1
        else:
            self._local_open -= 1
        self._blocked.pop(sid, None)
        self._remember_closed(sid, reset_by_us)

    def _remember_closed(self, sid: int, reset_by_us: bool) -> None:
        closed = self._closed
        closed[sid] = reset_by_us
        if len(closed) > self.limits.max_remembered_closed_streams:
            closed.popitem(last=False)

    def _stream_error(self, exc: H2StreamError) -> None:
        """Reset the stream named by ``exc`` and report it (the connection lives on)."""
        self.counters.stream_errors += 1
        sid = exc.stream_id
        self._queue(fr.rst_stream_frame(sid, exc.code))
        stream = self.streams.get(sid)
        if stream is not None:
            self._close(stream, reset_by_us=True)
        else:
            self._remember_closed(sid, reset_by_us=True)
        self._events.append(StreamReset(sid, int(exc.code), False))

    def _return_to_connection(self, n: int) -> None:
        """Bytes the consumer will never see (padding, ignored streams) count as taken."""
        inc = self._conn_in.acknowledge(n)
        if inc:
            self._queue(fr.window_update_frame(0, inc))

    def _drop_suppressed(self, events: list[Event]) -> list[Event]:
        suppressed = self._suppressed
        kept: list[Event] = []
        for event in events:
            sid = getattr(event, "stream_id", 0)
            if sid in suppressed:
                if isinstance(event, DataReceived):
                    self._return_to_connection(len(event.data))
                continue
            kept.append(event)
        suppressed.clear()
        return kept

    # --- sending --------------------------------------------------------------------------

    def _send_block(self, stream: Stream, headers: _Headers, end_stream: bool) -> None:
        if stream.step(StreamInput.SEND_HEADERS) is None:
            raise H2UsageError(f"stream {stream.stream_id} cannot send HEADERS")
        block = self._encoder.encode(headers)
        flags = fr.END_STREAM if end_stream else 0
        size = self.peer_settings.max_frame_size
        sid = stream.stream_id
        if len(block) <= size:
            self._queue(fr.frame(fr.HEADERS, flags | fr.END_HEADERS, sid, block), False)
        else:
            self._queue(fr.frame(fr.HEADERS, flags, sid, block[:size]), False)
            for i in range(size, len(block), size):
                last = fr.END_HEADERS if i + size >= len(block) else 0
                self._queue(fr.frame(fr.CONTINUATION, last, sid, block[i : i + size]), False)
        if end_stream:
            self._local_end(stream)

    def _local_end(self, stream: Stream) -> None:
        stream.step(StreamInput.SEND_END_STREAM)
        stream.pending_end = False
        if stream.state is StreamState.CLOSED:
            self._close(stream, reset_by_us=False)

    def _flush(self, stream: Stream) -> None:
        """Send held DATA of ``stream`` as far as windows allow, then its END_STREAM/trailers."""
        pending = stream.pending
        sid = stream.stream_id
        max_frame = self.peer_settings.max_frame_size
        while pending:
            room = min(stream.outbound, self._conn_out, max_frame)
            if room <= 0:
                self._blocked[sid] = None
                return
            chunk = pending[0]
            if len(chunk) <= room:
                pending.popleft()
            else:
                pending[0] = chunk[room:]
                chunk = chunk[:room]
            n = len(chunk)
            stream.pending_bytes -= n
            stream.outbound -= n
            self._conn_out -= n
            last = not pending and stream.pending_end
            self._data_frames_sent += 1
            self._queue(fr.frame(fr.DATA, fr.END_STREAM if last else 0, sid, chunk), False)
            if last:
                self._blocked.pop(sid, None)
                self._local_end(stream)
                return
        self._blocked.pop(sid, None)
        trailers = stream.pending_trailers
        if trailers is not None:
            stream.pending_trailers = None
            self._send_block(stream, trailers, True)
        elif stream.pending_end:
            self._queue(fr.frame(fr.DATA, fr.END_STREAM, sid), False)
            self._local_end(stream)

    def _flush_blocked(self) -> None:
        for sid in list(self._blocked):
            if self._conn_out <= 0:
                return
            stream = self.streams.get(sid)
            if stream is None:
                self._blocked.pop(sid, None)
            else:
                self._flush(stream)


def _reason_of(exc: H2ConnectionError) -> str:
    if isinstance(exc, hd.HeaderListTooLarge):
        return "header-list-size"
    return {
        ErrorCode.COMPRESSION_ERROR: "compression",
        ErrorCode.FLOW_CONTROL_ERROR: "flow-control",
        ErrorCode.FRAME_SIZE_ERROR: "frame-size",
        ErrorCode.STREAM_CLOSED: "stream-closed",
    }.get(ErrorCode(exc.code), "protocol")
