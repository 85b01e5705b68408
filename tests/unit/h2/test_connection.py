"""Playbook tests of the HTTP/2 connection: bytes in -> events + bytes out, per frame type,
state transition, and the flow-control contract (the consumer acknowledges bytes)."""

from __future__ import annotations

import pytest
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)

from proxy.codecs.grpc import events as ev
from proxy.codecs.grpc.connection import H2Connection
from proxy.codecs.grpc.errors import ErrorCode, H2UsageError
from proxy.codecs.grpc.frames import PREFACE
from proxy.codecs.grpc.limits import H2Limits
from proxy.codecs.grpc.streams import StreamState
from tests.unit.h2.helpers import (
    REQUEST,
    RESPONSE,
    TRAILERS,
    FrameFactory,
    client,
    kinds,
    parse_frames,
    rst_codes,
    server,
    window_updates,
)

# --- connection start ------------------------------------------------------------------------


def test_server_start_sends_settings_and_connection_window() -> None:
    """The server's first bytes: SETTINGS (our limits) and WINDOW_UPDATE to 1 MiB."""
    conn = H2Connection(client_side=False)
    frames = parse_frames(conn.data_to_send())
    assert isinstance(frames[0], SettingsFrame)
    assert frames[0].settings == {2: 0, 3: 100, 4: 65536, 5: 16384, 6: 65536}
    assert window_updates(frames) == [(0, 1_048_576 - 65_535)]


def test_client_start_sends_preface() -> None:
    """The client's first bytes are the connection preface, then SETTINGS."""
    conn = H2Connection(client_side=True)
    out = conn.data_to_send()
    assert out.startswith(PREFACE)
    assert isinstance(parse_frames(out[len(PREFACE) :])[0], SettingsFrame)


def test_first_frame_must_be_settings() -> None:
    """RFC 9113 §3.4: a preface not followed by SETTINGS is a PROTOCOL_ERROR."""
    conn = H2Connection(client_side=False)
    events = conn.receive_data(PREFACE + FrameFactory().ping(), 0.0)
    assert kinds(events) == ["ConnectionTerminated"]
    assert events[0] == ev.ConnectionTerminated(
        ErrorCode.PROTOCOL_ERROR, "protocol", "the first frame must be SETTINGS", 0
    )


def test_settings_ack_applies_our_initial_window() -> None:
    """Our INITIAL_WINDOW_SIZE governs the peer only after its ACK (RFC 9113 §6.5.3)."""
    conn = H2Connection(client_side=False, limits=H2Limits(initial_stream_window=1000))
    f = FrameFactory()
    conn.receive_data(PREFACE + f.settings() + f.headers(1, REQUEST), 0.0)
    # Before the ACK the peer may use the default 65,535.
    assert kinds(conn.receive_data(f.data(1, b"x" * 5000), 0.0)) == ["DataReceived"]
    events = conn.receive_data(f.settings(ack=True), 0.0)
    assert kinds(events) == ["SettingsAcknowledged"]
    assert conn.streams[1].inbound.available == 1000 - 5000
    conn.data_to_send()
    events = conn.receive_data(f.data(1, b"y"), 0.0)
    assert kinds(events) == ["StreamReset"]
    assert rst_codes(parse_frames(conn.data_to_send())) == {1: ErrorCode.FLOW_CONTROL_ERROR}


def test_unexpected_settings_ack() -> None:
    """A SETTINGS ACK we did not ask for is a PROTOCOL_ERROR."""
    peer = server()
    events = peer.feed(peer.f.settings(ack=True))
    assert kinds(events) == ["ConnectionTerminated"]


# --- per frame type ---------------------------------------------------------------------------


def test_request_unary_playbook() -> None:
    """HEADERS + DATA(END_STREAM) in, a full response out; the stream is then gone."""
    peer = server()
    f = peer.f
    events, frames = peer.play(f.headers(1, REQUEST), f.data(1, b"abc", end_stream=True))
    assert events == [
        ev.RequestReceived(1, tuple(REQUEST), False),
        ev.DataReceived(1, b"abc", True),
        ev.StreamEnded(1),
    ]
    assert frames == []
    assert peer.conn.streams[1].state is StreamState.HALF_CLOSED_REMOTE
    peer.conn.send_headers(1, RESPONSE)
    assert peer.conn.send_data(1, b"xyz") == 0
    peer.conn.send_headers(1, TRAILERS, end_stream=True)
    frames = peer.out()
    assert [type(x).__name__ for x in frames] == ["HeadersFrame", "DataFrame", "HeadersFrame"]
    assert "END_STREAM" in frames[2].flags and "END_HEADERS" in frames[2].flags
    assert 1 not in peer.conn.streams


def test_headers_with_padding_and_priority() -> None:
    """A padded HEADERS with PRIORITY is decoded; PRIORITY is ignored."""
    peer = server()
    events = peer.feed(peer.f.headers(1, REQUEST, end_stream=True, pad_length=7, depends_on=0))
    assert kinds(events) == ["RequestReceived", "StreamEnded"]


def test_padded_data_padding_is_returned_automatically() -> None:
    """Padding is flow-controlled but never seen by the consumer: it is acknowledged by the
    codec; the payload only when the consumer says so."""
    peer = server()
    f = peer.f
    peer.feed(f.headers(1, REQUEST))
    events = peer.feed(f.data(1, b"x" * 10, pad_length=200))
    assert events == [ev.DataReceived(1, b"x" * 10, False)]
    stream_window = peer.conn.streams[1].inbound
    assert stream_window.available == 65_536 - 211  # 10 data + 1 pad length + 200 padding
    assert stream_window.unacked == peer.conn._conn_in.unacked == 201


def test_continuation_assembles_one_block() -> None:
    """HEADERS + CONTINUATION frames form one header block."""
    peer = server()
    block = peer.f.block(REQUEST)
    frames = [peer.f.headers(1, block[:5], end_headers=False)]
    frames += [peer.f.continuation(1, block[5:10], end_headers=False)]
    frames += [peer.f.continuation(1, block[10:])]
    assert kinds(peer.feed(*frames)) == ["RequestReceived"]


def test_trailers_received() -> None:
    """A second header block with END_STREAM is trailers."""
    peer = server()
    f = peer.f
    peer.feed(f.headers(1, REQUEST), f.data(1, b"x"))
    events = peer.feed(f.headers(1, [(b"x-checksum", b"1")], end_stream=True))
    assert events == [ev.TrailersReceived(1, ((b"x-checksum", b"1"),)), ev.StreamEnded(1)]


def test_remote_rst_stream() -> None:
    """RST_STREAM from the peer closes the stream and is reported with its code."""
    peer = server()
    peer.feed(peer.f.headers(1, REQUEST))
    peer.now = 5.0
    events = peer.feed(peer.f.rst(1, ErrorCode.CANCEL))
    assert events == [ev.StreamReset(1, ErrorCode.CANCEL, True)]
    assert peer.conn.streams == {}
    assert peer.conn.counters.premature_resets == 0  # opened at 0.0, reset at 5.0
    assert peer.feed(peer.f.rst(1)) == []  # RST on a closed stream is ignored
    assert peer.feed(peer.f.window_update(1, 10)) == []  # so is WINDOW_UPDATE


def test_local_reset_then_peer_frames_are_ignored() -> None:
    """After we reset a stream, the peer's in-flight frames on it are ignored (§5.1) but
    their bytes still return to the connection window."""
    peer = server()
    f = peer.f
    peer.feed(f.headers(1, REQUEST))
    peer.conn.reset_stream(1)
    assert rst_codes(peer.out()) == {1: ErrorCode.CANCEL}
    events = peer.feed(f.data(1, b"x" * 15_000), f.headers(1, TRAILERS, end_stream=True))
    assert events == []
    assert peer.conn.counters.frames_on_reset_streams == 2
    assert peer.conn._conn_in.unacked == 15_000
    peer.conn.send_data(1, b"late")  # a late upstream response is silently dropped
    peer.conn.send_headers(1, TRAILERS, end_stream=True)
    assert peer.out() == []


def test_ping_and_ping_ack() -> None:
    """PING is answered with an ACK of the same data; our PING's ACK is reported."""
    peer = server()
    events, frames = peer.play(peer.f.ping(b"abcdefgh"))
    assert events == [ev.PingReceived(b"abcdefgh")]
    assert isinstance(frames[0], PingFrame) and "ACK" in frames[0].flags
    peer.conn.ping(b"12345678")
    assert isinstance(peer.out()[0], PingFrame)
    assert peer.feed(peer.f.ping(b"12345678", ack=True)) == [ev.PingAckReceived(b"12345678")]
    with pytest.raises(H2UsageError):
        peer.conn.ping(b"short")


def test_goaway_received_refuses_our_later_streams() -> None:
    """GOAWAY(last=1) on the client: our stream 3 is reported refused, 1 lives on."""
    peer = client()
    peer.conn.send_headers(1, REQUEST, end_stream=True)
    peer.conn.send_headers(3, REQUEST, end_stream=True)
    peer.out()
    events = peer.feed(peer.f.goaway(1, ErrorCode.NO_ERROR))
    assert events == [
        ev.StreamReset(3, ErrorCode.REFUSED_STREAM, True),
        ev.GoAwayReceived(1, ErrorCode.NO_ERROR, b""),
    ]
    assert not peer.conn.can_open_stream()
    events = peer.feed(peer.f.headers(1, RESPONSE + TRAILERS, end_stream=True))
    assert kinds(events) == ["ResponseReceived", "StreamEnded"]


def test_graceful_drain_goaway() -> None:
    """R10 (codec part): GOAWAY(2^31-1) first keeps accepting; the final GOAWAY refuses."""
    peer = server()
    f = peer.f
    peer.conn.goaway(last_stream_id=2**31 - 1)
    peer.conn.ping(b"drain!!!")
    frames = peer.out()
    assert isinstance(frames[0], GoAwayFrame) and frames[0].last_stream_id == 2**31 - 1
    assert kinds(peer.feed(f.headers(1, REQUEST))) == ["RequestReceived"]
    peer.conn.goaway()
    final = peer.out()[0]
    assert isinstance(final, GoAwayFrame) and final.last_stream_id == 1
    _events, frames = peer.play(f.headers(3, REQUEST))
    assert rst_codes(frames) == {3: ErrorCode.REFUSED_STREAM}
    assert kinds(peer.feed(f.data(1, b"x", end_stream=True))) == ["DataReceived", "StreamEnded"]


def test_unknown_frame_counted() -> None:
    """Unknown frame types are ignored and counted."""
    peer = server()
    peer.feed(b"\x00\x00\x01\xfa\x00\x00\x00\x00\x00z")
    assert peer.conn.counters.unknown_frames == 1


# --- flow control: receive side -------------------------------------------------------------


def test_window_update_only_after_acknowledge() -> None:
    """R11: no WINDOW_UPDATE until the consumer acknowledges; then batched per half window."""
    peer = server()
    f = peer.f
    peer.feed(f.headers(1, REQUEST))
    peer.feed(f.data(1, b"x" * 16_000), f.data(1, b"x" * 16_000))
    assert window_updates(peer.out()) == []
    peer.conn.acknowledge_received_data(1, 16_000)
    peer.conn.acknowledge_received_data(1, 16_000)
    assert window_updates(peer.out()) == []  # 32,000 due < half of 65,536; 33,536 left
    peer.feed(f.data(1, b"x" * 16_000))  # now less than half the window is left
    peer.conn.acknowledge_received_data(1, 1)
    assert window_updates(peer.out()) == [(1, 32_001)]
    assert peer.conn.streams[1].inbound.available == 65_536 - 48_000 + 32_001


def test_stream_window_exceeded_is_a_stream_error() -> None:
    """A peer ignoring the stream window gets RST_STREAM(FLOW_CONTROL_ERROR)."""
    peer = server()
    f = peer.f
    peer.feed(f.headers(1, REQUEST), f.headers(3, REQUEST))
    peer.feed(*[f.data(1, b"x" * 16_383)] * 4)  # 65,532 of 65,536
    events, frames = peer.play(f.data(1, b"x" * 5))
    assert rst_codes(frames) == {1: ErrorCode.FLOW_CONTROL_ERROR}
    assert kinds(events) == ["StreamReset"]
    assert kinds(peer.feed(f.data(3, b"ok"))) == ["DataReceived"]


def test_connection_window_exceeded_is_a_connection_error() -> None:
    """The connection window (1 MiB) bounds the sum over streams."""
    peer = server(limits=H2Limits(max_concurrent_streams=100))
    f = peer.f
    events: list[ev.Event] = []
    for sid in range(1, 40, 2):
        peer.feed(f.headers(sid, REQUEST))
        events = peer.feed(*[f.data(sid, b"x" * 16_000)] * 4)
        if peer.conn.terminated:
            break
    assert events[-1] == ev.ConnectionTerminated(
        ErrorCode.FLOW_CONTROL_ERROR, "flow-control", "connection window exceeded", sid
    )


def test_acknowledge_after_stream_closed_returns_connection_window() -> None:
    """Acknowledging bytes of a finished stream still refills the connection window."""
    peer = server()
    f = peer.f
    peer.feed(f.headers(1, REQUEST), f.data(1, b"x" * 16_000, end_stream=True))
    peer.conn.send_headers(1, RESPONSE + TRAILERS, end_stream=True)
    peer.out()
    assert 1 not in peer.conn.streams
    for _ in range(40):
        peer.conn.acknowledge_received_data(1, 16_000)
    assert window_updates(peer.out()) == [(0, 16_000 * 33)]


# --- flow control: send side -------------------------------------------------------------------


def test_send_splits_to_max_frame_size_and_holds_beyond_window() -> None:
    """DATA is split to the peer's MAX_FRAME_SIZE and held beyond its windows."""
    peer = client()
    conn = peer.conn
    conn.send_headers(1, REQUEST)
    held = conn.send_data(1, b"x" * 100_000, end_stream=True)
    assert held == 100_000 - 65_535
    frames = [x for x in peer.out() if isinstance(x, DataFrame)]
    assert [len(x.data) for x in frames] == [16_384] * 3 + [65_535 - 3 * 16_384]
    assert "END_STREAM" not in frames[-1].flags
    assert conn.blocked_bytes(1) == held
    events = peer.feed(peer.f.window_update(1, 50_000))
    assert events == [ev.WindowUpdated(1, 50_000)]
    assert [x for x in peer.out() if isinstance(x, DataFrame)] == []  # connection window is 0
    events = peer.feed(peer.f.window_update(0, 50_000))
    frames = [x for x in peer.out() if isinstance(x, DataFrame)]
    assert sum(len(x.data) for x in frames) == held
    assert "END_STREAM" in frames[-1].flags
    assert conn.blocked_bytes(1) == 0
    assert conn.streams[1].state is StreamState.HALF_CLOSED_LOCAL


def test_trailers_wait_behind_held_data() -> None:
    """Trailers queued while DATA is held go out only after that DATA."""
    peer = server(settings={4: 10})
    peer.feed(peer.f.headers(1, REQUEST, end_stream=True))
    conn = peer.conn
    conn.send_headers(1, RESPONSE)
    conn.send_data(1, b"0123456789abcdef")
    conn.send_headers(1, TRAILERS, end_stream=True)
    frames = peer.out()
    assert [type(x).__name__ for x in frames] == ["HeadersFrame", "DataFrame"]
    peer.feed(peer.f.window_update(1, 100))
    frames = peer.out()
    assert [type(x).__name__ for x in frames] == ["DataFrame", "HeadersFrame"]
    assert isinstance(frames[0], DataFrame) and frames[0].data == b"abcdef"
    assert "END_STREAM" in frames[1].flags
    assert 1 not in conn.streams


def test_large_header_block_uses_continuation() -> None:
    """A header block larger than the peer's MAX_FRAME_SIZE is sent as CONTINUATIONs."""
    peer = client()
    big = [*REQUEST, *((b"x-h%d" % i, bytes([65 + i % 26]) * 900) for i in range(40))]
    peer.conn.send_headers(1, big, end_stream=True)
    frames = peer.out()
    assert isinstance(frames[0], HeadersFrame) and "END_HEADERS" not in frames[0].flags
    assert isinstance(frames[-1], ContinuationFrame) and "END_HEADERS" in frames[-1].flags
    down = server()
    events = down.feed(b"".join(x.serialize() for x in frames))
    assert kinds(events) == ["RequestReceived", "StreamEnded"]


def test_usage_errors() -> None:
    """Misuse of the API raises H2UsageError and queues nothing."""
    peer = client()
    conn = peer.conn
    with pytest.raises(H2UsageError):
        conn.send_headers(3, REQUEST)  # not the next stream id
    with pytest.raises(H2UsageError):
        conn.send_data(1, b"x")  # never opened
    conn.send_headers(1, REQUEST, end_stream=True)
    with pytest.raises(H2UsageError):
        conn.send_data(1, b"x")  # half-closed (local)
    peer.out()
    limited = client(settings={3: 1})
    limited.conn.send_headers(1, REQUEST)
    assert not limited.conn.can_open_stream()
    with pytest.raises(H2UsageError):
        limited.conn.send_headers(3, REQUEST)


def test_peer_header_table_size_is_honoured() -> None:
    """SETTINGS_HEADER_TABLE_SIZE=0 from the peer: our encoder stops indexing."""
    peer = client(settings={1: 0})
    peer.conn.send_headers(1, REQUEST, end_stream=True)
    peer.conn.send_headers(3, REQUEST, end_stream=True)
    down = server(settings={})
    down.conn._decoder.max_allowed_table_size = 0
    events = down.feed(peer.conn.data_to_send())
    assert kinds(events) == ["RequestReceived", "StreamEnded"] * 2


def test_terminated_connection_refuses_sends() -> None:
    """After a connection error every send raises; input is ignored."""
    peer = server()
    peer.feed(peer.f.data(1, b"x"))  # DATA on an idle stream
    assert peer.conn.terminated
    with pytest.raises(H2UsageError):
        peer.conn.ping(b"12345678")
    assert peer.feed(peer.f.ping()) == []


def test_rst_stream_frame_serialization() -> None:
    """Our RST_STREAM parses with hyperframe (independent reader)."""
    peer = server()
    peer.feed(peer.f.headers(1, REQUEST))
    peer.conn.reset_stream(1, ErrorCode.INTERNAL_ERROR)
    frame = peer.out()[0]
    assert isinstance(frame, RstStreamFrame) and frame.error_code == ErrorCode.INTERNAL_ERROR
    first = parse_frames(H2Connection(client_side=True).data_to_send()[24:])
    assert [type(x) for x in first] == [SettingsFrame, WindowUpdateFrame]


def test_informational_response_is_consumed() -> None:
    """RFC 9113 §8.1: a 1xx response before the real one yields no event."""
    peer = client()
    peer.conn.send_headers(1, REQUEST, end_stream=True)
    peer.out()
    assert peer.feed(peer.f.headers(1, [(b":status", b"103"), (b"link", b"</a>")])) == []
    events = peer.feed(peer.f.headers(1, RESPONSE), peer.f.headers(1, TRAILERS, end_stream=True))
    assert kinds(events) == ["ResponseReceived", "TrailersReceived", "StreamEnded"]
