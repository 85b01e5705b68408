"""H1 h2-conformance: the h2spec case list (summerwind/h2spec ``http2/`` and ``hpack/``),
re-implemented as table-driven cases against the server-side codec.

Each case names its h2spec id (``http2/<section>/<n>``, ``hpack/<section>/<n>``), sends
frames built by an independent writer (hyperframe + hpack, ``tests/unit/h2/helpers.py``)
and expects one of: a connection error (GOAWAY with the code, ConnectionTerminated), a
stream error (RST_STREAM with the code, the connection still answers PING), or
acceptance (no GOAWAY, no RST, the case's own check, PING still answered). Where h2spec
accepts either a stream or a connection error, the table states which one laneway sends.

h2spec checks http2/6.9.1/1 and 6.9.2/1-2 by reading a *response body* from the server;
here they are the send-side tests at the end of this module (client-side setup).
Not mapped at codec level: TLS/ALPN (h2spec ``-t``) and h2spec's ``generic`` section,
which needs an application answering requests (the proxy data path's tests).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest
from hyperframe.frame import DataFrame, Frame, PingFrame, SettingsFrame

from proxy.codecs.grpc import events as ev
from proxy.codecs.grpc.connection import H2Connection
from proxy.codecs.grpc.errors import ErrorCode
from proxy.codecs.grpc.frames import PREFACE
from tests.unit.h2.helpers import (
    REQUEST,
    RESPONSE,
    FrameFactory,
    Peer,
    client,
    goaway_code,
    kinds,
    parse_frames,
    raw,
    rst_codes,
    server,
    terminated,
)

E = ErrorCode
Send = Callable[[FrameFactory], list[bytes]]
Check = Callable[[list[ev.Event], list[Frame], Peer], None]


@dataclasses.dataclass(frozen=True)
class Conn:
    """Expect a connection error with ``code``."""

    code: ErrorCode


@dataclasses.dataclass(frozen=True)
class Strm:
    """Expect a stream error on ``stream_id`` with ``code``; the connection lives."""

    stream_id: int
    code: ErrorCode


@dataclasses.dataclass(frozen=True)
class Ok:
    """Expect no error; ``check`` inspects the result."""

    check: Check | None = None


@dataclasses.dataclass(frozen=True)
class Case:
    id: str
    what: str
    setup: str
    send: Send
    expect: Conn | Strm | Ok


def _req(path: bytes = b"/pkg.Svc/Method") -> list[tuple[bytes, bytes]]:
    return [(k, path if k == b":path" else v) for k, v in REQUEST]


def _replace(name: bytes, value: bytes | None) -> list[tuple[bytes, bytes]]:
    """REQUEST with ``name`` set to ``value`` (None: removed)."""
    out = [(k, v) for k, v in REQUEST if k != name]
    if value is not None:
        out.insert(0, (name, value))
    return out


def _has(kind: type) -> Check:
    def check(events: list[ev.Event], frames: list[Frame], peer: Peer) -> None:
        assert any(isinstance(e, kind) for e in events), kinds(events)

    return check


def _ping_acked(data: bytes) -> Check:
    def check(events: list[ev.Event], frames: list[Frame], peer: Peer) -> None:
        acks = [f for f in frames if isinstance(f, PingFrame) and "ACK" in f.flags]
        assert [a.opaque_data for a in acks] == [data]

    return check


def _no_output(events: list[ev.Event], frames: list[Frame], peer: Peer) -> None:
    assert frames == []


def _settings_acked(events: list[ev.Event], frames: list[Frame], peer: Peer) -> None:
    assert any(isinstance(f, SettingsFrame) and "ACK" in f.flags for f in frames)


def _window_is(value: int) -> Check:
    def check(events: list[ev.Event], frames: list[Frame], peer: Peer) -> None:
        assert peer.conn.peer_settings.initial_window_size == value
        _settings_acked(events, frames, peer)

    return check


def _data_len(n: int) -> Check:
    def check(events: list[ev.Event], frames: list[Frame], peer: Peer) -> None:
        data = [e for e in events if isinstance(e, ev.DataReceived)]
        assert [len(d.data) for d in data] == [n]

    return check


H = 0x1  # HEADERS
D = 0x0  # DATA
C = 0x9  # CONTINUATION
EH = 0x4  # END_HEADERS
ES = 0x1  # END_STREAM

CASES = [
    # --- 3.5 connection preface ---------------------------------------------------------
    Case("http2/3.5/1", "valid preface", "fresh", lambda f: [PREFACE, f.settings()],
         Ok(_settings_acked)),
    Case("http2/3.5/2", "invalid preface", "fresh",
         lambda f: [b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n"], Conn(E.PROTOCOL_ERROR)),
    # --- 4.1 frame format ---------------------------------------------------------------
    Case("http2/4.1/1", "unknown frame type is ignored", "server",
         lambda f: [raw(0x16, 0, 0, b"xxxx"), f.ping(b"ping0001")], Ok(_ping_acked(b"ping0001"))),
    Case("http2/4.1/2", "undefined flags are ignored", "server",
         lambda f: [raw(0x6, 0x16, 0, b"ping0002")], Ok(_ping_acked(b"ping0002"))),
    Case("http2/4.1/3", "reserved stream-id bit is ignored", "server",
         lambda f: [raw(H, EH | ES, 0x80000001, f.block(REQUEST))],
         Ok(_has(ev.RequestReceived))),
    # --- 4.2 frame size -------------------------------------------------------------------
    Case("http2/4.2/1", "DATA of 2^14 octets", "open",
         lambda f: [f.data(1, b"x" * 16384)], Ok(_data_len(16384))),
    Case("http2/4.2/2", "DATA larger than MAX_FRAME_SIZE", "open",
         lambda f: [f.data(1, b"x" * 16385)], Conn(E.FRAME_SIZE_ERROR)),
    Case("http2/4.2/3", "HEADERS larger than MAX_FRAME_SIZE", "server",
         lambda f: [raw(H, EH, 1, b"\x00" * 16385)], Conn(E.FRAME_SIZE_ERROR)),
    # --- 4.3 header compression -----------------------------------------------------------
    Case("http2/4.3/1", "invalid header block fragment", "server",
         lambda f: [raw(H, EH | ES, 1, b"\x40\x05ab")], Conn(E.COMPRESSION_ERROR)),
    Case("http2/4.3/2", "PRIORITY inside a header block", "server",
         lambda f: [f.headers(1, REQUEST, end_headers=False), f.priority(1)],
         Conn(E.PROTOCOL_ERROR)),
    Case("http2/4.3/3", "HEADERS of another stream inside a header block", "server",
         lambda f: [f.headers(1, REQUEST, end_headers=False), f.headers(3, REQUEST)],
         Conn(E.PROTOCOL_ERROR)),
    # --- 5.1 stream states ----------------------------------------------------------------
    Case("http2/5.1/1", "idle: DATA", "server", lambda f: [f.data(1, b"x")],
         Conn(E.PROTOCOL_ERROR)),
    Case("http2/5.1/2", "idle: RST_STREAM", "server", lambda f: [f.rst(1)],
         Conn(E.PROTOCOL_ERROR)),
    Case("http2/5.1/3", "idle: WINDOW_UPDATE", "server", lambda f: [f.window_update(1, 100)],
         Conn(E.PROTOCOL_ERROR)),
    Case("http2/5.1/4", "idle: CONTINUATION", "server",
         lambda f: [f.continuation(1, f.block(REQUEST))], Conn(E.PROTOCOL_ERROR)),
    Case("http2/5.1/5", "half-closed (remote): DATA", "half_closed",
         lambda f: [f.data(1, b"x")], Strm(1, E.STREAM_CLOSED)),
    Case("http2/5.1/6", "half-closed (remote): HEADERS", "half_closed",
         lambda f: [f.headers(1, [(b"x-a", b"b")], end_stream=True)],
         Strm(1, E.STREAM_CLOSED)),
    Case("http2/5.1/7", "half-closed (remote): CONTINUATION", "half_closed",
         lambda f: [f.continuation(1, f.block([(b"x-a", b"b")]))], Conn(E.PROTOCOL_ERROR)),
    Case("http2/5.1/8", "closed: DATA after the peer's RST_STREAM", "open",
         lambda f: [f.rst(1), f.data(1, b"x")], Conn(E.STREAM_CLOSED)),
    Case("http2/5.1/9", "closed: HEADERS after the peer's RST_STREAM", "open",
         lambda f: [f.rst(1), f.headers(1, [(b"x-a", b"b")], end_stream=True)],
         Conn(E.STREAM_CLOSED)),
    Case("http2/5.1/10", "closed: CONTINUATION after the peer's RST_STREAM", "open",
         lambda f: [f.rst(1), f.continuation(1, f.block([(b"x-a", b"b")]))],
         Conn(E.PROTOCOL_ERROR)),
    Case("http2/5.1/11", "closed: DATA", "closed", lambda f: [f.data(1, b"x")],
         Conn(E.STREAM_CLOSED)),
    Case("http2/5.1/12", "closed: HEADERS", "closed",
         lambda f: [f.headers(1, REQUEST, end_stream=True)], Conn(E.STREAM_CLOSED)),
    Case("http2/5.1/13", "closed: CONTINUATION", "closed",
         lambda f: [f.continuation(1, f.block(REQUEST))], Conn(E.PROTOCOL_ERROR)),
    Case("http2/5.1.1/1", "even stream id from a client", "server",
         lambda f: [f.headers(2, REQUEST, end_stream=True)], Conn(E.PROTOCOL_ERROR)),
    Case("http2/5.1.1/2", "stream id smaller than a previous one", "server",
         lambda f: [f.headers(5, REQUEST, end_stream=True), f.headers(3, REQUEST, end_stream=True)],
         Conn(E.PROTOCOL_ERROR)),
    Case("http2/5.1.2/1", "more streams than MAX_CONCURRENT_STREAMS (laneway: refuse #101)",
         "server", lambda f: [f.headers(sid, REQUEST) for sid in range(1, 203, 2)],
         Strm(201, E.REFUSED_STREAM)),
    # --- 5.3 priority -----------------------------------------------------------------------
    Case("http2/5.3.1/1", "HEADERS depending on itself", "server",
         lambda f: [f.headers(1, REQUEST, end_stream=True, depends_on=1)],
         Strm(1, E.PROTOCOL_ERROR)),
    Case("http2/5.3.1/2", "PRIORITY depending on itself", "server",
         lambda f: [f.priority(1, depends_on=1)], Strm(1, E.PROTOCOL_ERROR)),
    # --- 5.4 / 5.5 --------------------------------------------------------------------------
    Case("http2/5.4.1/1", "invalid PING closes the connection", "server",
         lambda f: [raw(0x6, 0, 0, b"123456")], Conn(E.FRAME_SIZE_ERROR)),
    Case("http2/5.4.1/2", "invalid PING: GOAWAY", "server",
         lambda f: [raw(0x6, 0, 3, b"12345678")], Conn(E.PROTOCOL_ERROR)),
    Case("http2/5.5/1", "unknown extension frame", "server",
         lambda f: [raw(0xFF, 0, 0, b"ext"), f.ping(b"ping0003")], Ok(_ping_acked(b"ping0003"))),
    Case("http2/5.5/2", "unknown extension frame inside a header block", "server",
         lambda f: [f.headers(1, REQUEST, end_headers=False), raw(0xFF, 0, 1, b"ext")],
         Conn(E.PROTOCOL_ERROR)),
    # --- 6.1 DATA ---------------------------------------------------------------------------
    Case("http2/6.1/1", "DATA on stream 0", "server", lambda f: [raw(D, 0, 0, b"x")],
         Conn(E.PROTOCOL_ERROR)),
    Case("http2/6.1/2", "DATA on a half-closed (remote) stream", "half_closed",
         lambda f: [f.data(1, b"x", end_stream=True)], Strm(1, E.STREAM_CLOSED)),
    Case("http2/6.1/3", "DATA with an invalid pad length", "open",
         lambda f: [raw(D, 0x8, 1, b"\x06abcde")], Conn(E.PROTOCOL_ERROR)),
    # --- 6.2 HEADERS ------------------------------------------------------------------------
    Case("http2/6.2/1", "HEADERS without END_HEADERS then PRIORITY", "server",
         lambda f: [f.headers(1, REQUEST, end_headers=False), f.priority(1)],
         Conn(E.PROTOCOL_ERROR)),
    Case("http2/6.2/2", "HEADERS to another stream during a header block", "server",
         lambda f: [f.headers(1, REQUEST, end_headers=False), f.headers(3, REQUEST)],
         Conn(E.PROTOCOL_ERROR)),
    Case("http2/6.2/3", "HEADERS on stream 0", "server",
         lambda f: [raw(H, EH, 0, f.block(REQUEST))], Conn(E.PROTOCOL_ERROR)),
    Case("http2/6.2/4", "HEADERS with an invalid pad length", "server",
         lambda f: [raw(H, EH | 0x8, 1, b"\xff" + f.block(REQUEST))], Conn(E.PROTOCOL_ERROR)),
    # --- 6.3 PRIORITY -------------------------------------------------------------------------
    Case("http2/6.3/1", "PRIORITY on stream 0", "server",
         lambda f: [raw(0x2, 0, 0, b"\x00\x00\x00\x01\x0f")], Conn(E.PROTOCOL_ERROR)),
    Case("http2/6.3/2", "PRIORITY of 4 octets", "server",
         lambda f: [raw(0x2, 0, 1, b"\x00\x00\x00\x03")], Strm(1, E.FRAME_SIZE_ERROR)),
    # --- 6.4 RST_STREAM -----------------------------------------------------------------------
    Case("http2/6.4/1", "RST_STREAM on stream 0", "server", lambda f: [raw(0x3, 0, 0, b"\0" * 4)],
         Conn(E.PROTOCOL_ERROR)),
    Case("http2/6.4/2", "RST_STREAM on an idle stream", "server", lambda f: [f.rst(7)],
         Conn(E.PROTOCOL_ERROR)),
    Case("http2/6.4/3", "RST_STREAM of 3 octets", "open", lambda f: [raw(0x3, 0, 1, b"\0" * 3)],
         Conn(E.FRAME_SIZE_ERROR)),
    # --- 6.5 SETTINGS -------------------------------------------------------------------------
    Case("http2/6.5/1", "SETTINGS ACK with a body", "server",
         lambda f: [raw(0x4, 0x1, 0, b"\0\x03\0\0\0\x01")], Conn(E.FRAME_SIZE_ERROR)),
    Case("http2/6.5/2", "SETTINGS on a stream", "server",
         lambda f: [raw(0x4, 0, 1, b"\0\x03\0\0\0\x01")], Conn(E.PROTOCOL_ERROR)),
    Case("http2/6.5/3", "SETTINGS of 5 octets", "server",
         lambda f: [raw(0x4, 0, 0, b"\0\x03\0\0\0")], Conn(E.FRAME_SIZE_ERROR)),
    Case("http2/6.5.2/1", "ENABLE_PUSH=2", "server", lambda f: [f.settings({2: 2})],
         Conn(E.PROTOCOL_ERROR)),
    Case("http2/6.5.2/2", "INITIAL_WINDOW_SIZE=2^31", "server",
         lambda f: [f.settings({4: 2**31})], Conn(E.FLOW_CONTROL_ERROR)),
    Case("http2/6.5.2/3", "MAX_FRAME_SIZE=16383", "server", lambda f: [f.settings({5: 16383})],
         Conn(E.PROTOCOL_ERROR)),
    Case("http2/6.5.2/4", "MAX_FRAME_SIZE=2^24", "server", lambda f: [f.settings({5: 2**24})],
         Conn(E.PROTOCOL_ERROR)),
    Case("http2/6.5.2/5", "unknown setting is ignored", "server",
         lambda f: [f.settings({0xFF: 1})], Ok(_settings_acked)),
    Case("http2/6.5.3/1", "several INITIAL_WINDOW_SIZE values: the last wins", "server",
         lambda f: [raw(0x4, 0, 0, b"\0\x04\0\0\x01\0" + b"\0\x04\0\0\x02\0")],
         Ok(_window_is(0x200))),
    Case("http2/6.5.3/2", "SETTINGS is acknowledged", "server", lambda f: [f.settings({3: 7})],
         Ok(_settings_acked)),
    # --- 6.7 PING -------------------------------------------------------------------------------
    Case("http2/6.7/1", "PING is answered with the same data", "server",
         lambda f: [f.ping(b"h2spec!!")], Ok(_ping_acked(b"h2spec!!"))),
    Case("http2/6.7/2", "PING ACK is not answered", "server",
         lambda f: [f.ping(b"h2spec!!", ack=True)], Ok(_no_output)),
    Case("http2/6.7/3", "PING on a stream", "server", lambda f: [raw(0x6, 0, 1, b"12345678")],
         Conn(E.PROTOCOL_ERROR)),
    Case("http2/6.7/4", "PING of 6 octets", "server", lambda f: [raw(0x6, 0, 0, b"123456")],
         Conn(E.FRAME_SIZE_ERROR)),
    # --- 6.8 GOAWAY -----------------------------------------------------------------------------
    Case("http2/6.8/1", "GOAWAY on a stream", "server", lambda f: [raw(0x7, 0, 1, b"\0" * 8)],
         Conn(E.PROTOCOL_ERROR)),
    # --- 6.9 WINDOW_UPDATE ----------------------------------------------------------------------
    Case("http2/6.9/1", "connection WINDOW_UPDATE of 0", "server",
         lambda f: [f.window_update(0, 0)], Conn(E.PROTOCOL_ERROR)),
    Case("http2/6.9/2", "stream WINDOW_UPDATE of 0", "open", lambda f: [f.window_update(1, 0)],
         Strm(1, E.PROTOCOL_ERROR)),
    Case("http2/6.9/3", "WINDOW_UPDATE of 3 octets", "server",
         lambda f: [raw(0x8, 0, 0, b"\0\0\x01")], Conn(E.FRAME_SIZE_ERROR)),
    Case("http2/6.9.1/2", "connection window beyond 2^31-1", "server",
         lambda f: [f.window_update(0, 2**31 - 1), f.window_update(0, 2**31 - 1)],
         Conn(E.FLOW_CONTROL_ERROR)),
    Case("http2/6.9.1/3", "stream window beyond 2^31-1", "open",
         lambda f: [f.window_update(1, 2**31 - 1), f.window_update(1, 2**31 - 1)],
         Strm(1, E.FLOW_CONTROL_ERROR)),
    Case("http2/6.9.2/3", "INITIAL_WINDOW_SIZE beyond the maximum", "server",
         lambda f: [f.settings({4: 2**31})], Conn(E.FLOW_CONTROL_ERROR)),
    # --- 6.10 CONTINUATION ----------------------------------------------------------------------
    Case("http2/6.10/1", "several CONTINUATION frames", "server",
         lambda f: _split_block(f, 3), Ok(_has(ev.RequestReceived))),
    Case("http2/6.10/2", "CONTINUATION followed by another frame", "server",
         lambda f: [*_split_block(f, 3)[:-1], f.data(1, b"x")], Conn(E.PROTOCOL_ERROR)),
    Case("http2/6.10/3", "CONTINUATION on stream 0", "server",
         lambda f: [f.headers(1, REQUEST, end_headers=False), raw(C, EH, 0, b"")],
         Conn(E.PROTOCOL_ERROR)),
    Case("http2/6.10/4", "CONTINUATION after END_HEADERS", "server",
         lambda f: [f.headers(1, REQUEST), f.continuation(1, f.block([(b"x-a", b"b")]))],
         Conn(E.PROTOCOL_ERROR)),
    Case("http2/6.10/5", "CONTINUATION after a CONTINUATION with END_HEADERS", "server",
         lambda f: [*_split_block(f, 2), f.continuation(1, f.block([(b"x-a", b"b")]))],
         Conn(E.PROTOCOL_ERROR)),
    Case("http2/6.10/6", "CONTINUATION after DATA", "open",
         lambda f: [f.data(1, b"x"), f.continuation(1, f.block([(b"x-a", b"b")]))],
         Conn(E.PROTOCOL_ERROR)),
    # --- 7 error codes ------------------------------------------------------------------------
    Case("http2/7/1", "GOAWAY with an unknown error code", "server",
         lambda f: [f.goaway(0, 0xFF)], Ok(_has(ev.GoAwayReceived))),
    Case("http2/7/2", "RST_STREAM with an unknown error code", "open",
         lambda f: [f.rst(1, 0xFF)], Ok(_has(ev.StreamReset))),
    # --- 8.1 HTTP message exchange --------------------------------------------------------------
    Case("http2/8.1/1", "second HEADERS without END_STREAM", "open",
         lambda f: [f.headers(1, [(b"x-trailer", b"1")])], Strm(1, E.PROTOCOL_ERROR)),
    Case("http2/8.1.2/1", "uppercase header name", "server",
         lambda f: [f.headers(1, [*REQUEST, (b"X-Env", b"a")], end_stream=True)],
         Strm(1, E.PROTOCOL_ERROR)),
    Case("http2/8.1.2.1/1", "unknown pseudo-header", "server",
         lambda f: [f.headers(1, [(b":foo", b"x"), *REQUEST], end_stream=True)],
         Strm(1, E.PROTOCOL_ERROR)),
    Case("http2/8.1.2.1/2", "response pseudo-header in a request", "server",
         lambda f: [f.headers(1, [(b":status", b"200"), *REQUEST], end_stream=True)],
         Strm(1, E.PROTOCOL_ERROR)),
    Case("http2/8.1.2.1/3", "pseudo-header in trailers", "open",
         lambda f: [f.headers(1, [(b":method", b"POST")], end_stream=True)],
         Strm(1, E.PROTOCOL_ERROR)),
    Case("http2/8.1.2.1/4", "pseudo-header after a regular header", "server",
         lambda f: [f.headers(1, [*REQUEST[1:], REQUEST[0]], end_stream=True)],
         Strm(1, E.PROTOCOL_ERROR)),
    Case("http2/8.1.2.2/1", "connection-specific header", "server",
         lambda f: [f.headers(1, [*REQUEST, (b"connection", b"keep-alive")], end_stream=True)],
         Strm(1, E.PROTOCOL_ERROR)),
    Case("http2/8.1.2.2/2", "TE other than trailers", "server",
         lambda f: [f.headers(1, _replace(b"te", b"gzip"), end_stream=True)],
         Strm(1, E.PROTOCOL_ERROR)),
    Case("http2/8.1.2.3/1", "empty :path", "server",
         lambda f: [f.headers(1, _req(b""), end_stream=True)], Strm(1, E.PROTOCOL_ERROR)),
    Case("http2/8.1.2.3/2", "no :method", "server",
         lambda f: [f.headers(1, _replace(b":method", None), end_stream=True)],
         Strm(1, E.PROTOCOL_ERROR)),
    Case("http2/8.1.2.3/3", "no :scheme", "server",
         lambda f: [f.headers(1, _replace(b":scheme", None), end_stream=True)],
         Strm(1, E.PROTOCOL_ERROR)),
    Case("http2/8.1.2.3/4", "no :path", "server",
         lambda f: [f.headers(1, _replace(b":path", None), end_stream=True)],
         Strm(1, E.PROTOCOL_ERROR)),
    Case("http2/8.1.2.3/5", "duplicate :method", "server",
         lambda f: [f.headers(1, [(b":method", b"GET"), *REQUEST], end_stream=True)],
         Strm(1, E.PROTOCOL_ERROR)),
    Case("http2/8.1.2.3/6", "duplicate :scheme", "server",
         lambda f: [f.headers(1, [(b":scheme", b"https"), *REQUEST], end_stream=True)],
         Strm(1, E.PROTOCOL_ERROR)),
    Case("http2/8.1.2.3/7", "duplicate :path", "server",
         lambda f: [f.headers(1, [(b":path", b"/a/b"), *REQUEST], end_stream=True)],
         Strm(1, E.PROTOCOL_ERROR)),
    Case("http2/8.1.2.6/1", "content-length larger than DATA", "server",
         lambda f: [f.headers(1, [*REQUEST, (b"content-length", b"5")]),
                    f.data(1, b"abc", end_stream=True)], Strm(1, E.PROTOCOL_ERROR)),
    Case("http2/8.1.2.6/2", "content-length smaller than several DATA", "server",
         lambda f: [f.headers(1, [*REQUEST, (b"content-length", b"4")]),
                    f.data(1, b"abc"), f.data(1, b"abc", end_stream=True)],
         Strm(1, E.PROTOCOL_ERROR)),
    Case("http2/8.2/1", "PUSH_PROMISE from a client", "open",
         lambda f: [raw(0x5, EH, 1, b"\0\0\0\x02" + f.block(REQUEST))], Conn(E.PROTOCOL_ERROR)),
    # --- HPACK ------------------------------------------------------------------------------------
    Case("hpack/2.3.3/1", "indexed field with an invalid index", "server",
         lambda f: [raw(H, EH | ES, 1, b"\xbe")], Conn(E.COMPRESSION_ERROR)),
    Case("hpack/2.3.3/2", "literal with an invalid name index", "server",
         lambda f: [raw(H, EH | ES, 1, b"\x7e\x01a")], Conn(E.COMPRESSION_ERROR)),
    Case("hpack/4.2/1", "table size update at the end of a block", "server",
         lambda f: [raw(H, EH | ES, 1, f.block(REQUEST) + b"\x3f\xe1\x1f")],
         Conn(E.COMPRESSION_ERROR)),
    Case("hpack/5.2/1", "Huffman string containing EOS", "server",
         lambda f: [raw(H, EH | ES, 1, b"\x00\x84\xff\xff\xff\xff\x01a")],
         Conn(E.COMPRESSION_ERROR)),
    Case("hpack/5.2/2", "Huffman padding longer than 7 bits", "server",
         lambda f: [raw(H, EH | ES, 1, b"\x00\x82\x1f\xff\x01a")], Conn(E.COMPRESSION_ERROR)),
    Case("hpack/5.2/3", "Huffman padding not the EOS prefix", "server",
         lambda f: [raw(H, EH | ES, 1, b"\x00\x81\x18\x01a")], Conn(E.COMPRESSION_ERROR)),
    Case("hpack/6.1/1", "indexed field with index 0", "server",
         lambda f: [raw(H, EH | ES, 1, b"\x80")], Conn(E.COMPRESSION_ERROR)),
    Case("hpack/6.3/1", "table size update above SETTINGS_HEADER_TABLE_SIZE", "server",
         lambda f: [raw(H, EH | ES, 1, b"\x3f\xe2\x1f" + f.block(REQUEST))],
         Conn(E.COMPRESSION_ERROR)),
]  # fmt: skip


def _split_block(f: FrameFactory, parts: int) -> list[bytes]:
    """REQUEST (with END_STREAM) as HEADERS + ``parts - 1`` CONTINUATION frames."""
    block = f.block(REQUEST)
    step = -(-len(block) // parts)
    chunks = [block[i : i + step] for i in range(0, len(block), step)]
    out = [f.headers(1, chunks[0], end_stream=True, end_headers=False)]
    for i, chunk in enumerate(chunks[1:], start=2):
        out.append(f.continuation(1, chunk, end_headers=i == len(chunks)))
    return out


def _setup(name: str) -> Peer:
    if name == "fresh":
        peer = Peer(H2Connection(client_side=False), FrameFactory())
        peer.conn.data_to_send()
        return peer
    peer = server()
    if name == "open":
        peer.feed(peer.f.headers(1, REQUEST))
    elif name in ("half_closed", "closed"):
        peer.feed(peer.f.headers(1, REQUEST, end_stream=True))
        if name == "closed":
            peer.conn.send_headers(1, RESPONSE, end_stream=True)
    elif name != "server":
        raise AssertionError(name)
    peer.out()
    return peer


def _still_alive(peer: Peer) -> None:
    events, frames = peer.play(peer.f.ping(b"alive!!!"))
    assert kinds(events) == ["PingReceived"]
    assert any(isinstance(f, PingFrame) and "ACK" in f.flags for f in frames)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_h2spec_case(case: Case) -> None:
    """H1 h2-conformance: one h2spec case (its id is the test id)."""
    peer = _setup(case.setup)
    events, frames = peer.play(*case.send(peer.f))
    expect = case.expect
    if isinstance(expect, Conn):
        term = terminated(events)
        assert term is not None, f"{case.what}: no connection error, events {kinds(events)}"
        assert term.error_code == expect.code, term
        assert goaway_code(frames) == expect.code
        assert peer.conn.terminated
        assert peer.feed(peer.f.ping()) == []  # nothing is processed after a connection error
        return
    assert goaway_code(frames) is None, f"{case.what}: unexpected GOAWAY {terminated(events)}"
    if isinstance(expect, Strm):
        assert rst_codes(frames) == {expect.stream_id: expect.code}
        resets = [e for e in events if isinstance(e, ev.StreamReset)]
        assert resets == [ev.StreamReset(expect.stream_id, expect.code, False)]
    else:
        assert rst_codes(frames) == {}
        if expect.check is not None:
            expect.check(events, frames, peer)
    _still_alive(peer)


def test_h2spec_ids_are_unique() -> None:
    """H1: the table names each h2spec case once."""
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))


# --- flow-control cases of 6.9.1 / 6.9.2 checked on the codec's send side --------------------


def _client_stream(settings: dict[int, int] | None = None) -> Peer:
    peer = client(settings=settings)
    peer.conn.send_headers(1, REQUEST)
    peer.feed(peer.f.headers(1, RESPONSE))
    peer.out()
    return peer


def _data_frames(peer: Peer) -> list[DataFrame]:
    return [f for f in peer.out() if isinstance(f, DataFrame)]


def test_h2spec_6_9_1_1_window_of_one_octet() -> None:
    """H1 http2/6.9.1/1: with INITIAL_WINDOW_SIZE=1 only 1 octet of DATA is sent."""
    peer = _client_stream({4: 1})
    held = peer.conn.send_data(1, b"hello")
    assert held == 4
    assert [bytes(f.data) for f in _data_frames(peer)] == [b"h"]
    events = peer.feed(peer.f.window_update(1, 4))
    assert ev.WindowUpdated(1, 4) in events
    assert [bytes(f.data) for f in _data_frames(peer)] == [b"ello"]
    assert peer.conn.blocked_bytes(1) == 0


def test_h2spec_6_9_2_1_initial_window_change_after_headers() -> None:
    """H1 http2/6.9.2/1: a new INITIAL_WINDOW_SIZE applies to open streams."""
    peer = _client_stream({4: 0})
    assert peer.conn.send_data(1, b"abc", end_stream=True) == 3
    assert _data_frames(peer) == []
    events = peer.feed(peer.f.settings({4: 3}))
    assert ev.WindowUpdated(1, 3) in events
    frames = _data_frames(peer)
    assert [(bytes(f.data), "END_STREAM" in f.flags) for f in frames] == [(b"abc", True)]


def test_h2spec_6_9_2_2_negative_window() -> None:
    """H1 http2/6.9.2/2: a SETTINGS change may make a window negative; sending resumes."""
    peer = _client_stream({4: 5})
    peer.conn.send_data(1, b"12345")
    assert len(_data_frames(peer)) == 1
    peer.feed(peer.f.settings({4: 2}))  # window now 2 - 5 = -3
    assert peer.conn.send_data(1, b"xy") == 2
    assert _data_frames(peer) == []
    peer.feed(peer.f.window_update(1, 4))  # -3 + 4 = 1
    assert [bytes(f.data) for f in _data_frames(peer)] == [b"x"]


def test_connection_preface_byte_by_byte() -> None:
    """H1 http2/3.5: a preface fed one byte at a time is accepted."""
    conn = H2Connection(client_side=False)
    conn.data_to_send()
    for byte in PREFACE + FrameFactory().settings():
        conn.receive_data(bytes([byte]), 0.0)
    frames = parse_frames(conn.data_to_send())
    assert any(isinstance(f, SettingsFrame) and "ACK" in f.flags for f in frames)
