"""Hostile HTTP/2 input at codec level: H2-H7, H10, H11 (TESTS.md §9).

Each flood test asserts, as Envoy's do: (1) the named counter moved, (2) the disconnect
reason/code is the specified one, (3) the other streams or a control connection are
still served. No sockets: bytes in, events and bytes out.
"""

from __future__ import annotations

import dataclasses

from hyperframe.frame import PingFrame

from proxy.codecs.grpc import events as ev
from proxy.codecs.grpc.connection import H2Connection
from proxy.codecs.grpc.errors import ErrorCode
from proxy.codecs.grpc.frames import PREFACE
from proxy.codecs.grpc.limits import DEFAULT_LIMITS, H2Limits
from tests.unit.h2.helpers import (
    REQUEST,
    RESPONSE,
    TRAILERS,
    FrameFactory,
    Peer,
    client,
    goaway_code,
    kinds,
    raw,
    rst_codes,
    server,
    terminated,
)


def _control_connection_works() -> None:
    """A fresh connection pair completes a unary exchange (no state shared across codecs)."""
    up = client()
    down = server()
    up.conn.send_headers(1, REQUEST)
    up.conn.send_data(1, b"\0\0\0\0\x01x", end_stream=True)
    events = down.feed(up.conn.data_to_send())
    assert kinds(events) == ["RequestReceived", "DataReceived", "StreamEnded"]
    down.conn.send_headers(1, RESPONSE)
    down.conn.send_data(1, b"\0\0\0\0\x01y")
    down.conn.send_headers(1, TRAILERS, end_stream=True)
    events = up.feed(down.conn.data_to_send())
    assert kinds(events) == ["ResponseReceived", "DataReceived", "TrailersReceived", "StreamEnded"]


def _assert_goaway(peer: Peer, events: list[ev.Event], code: ErrorCode, reason: str) -> None:
    term = terminated(events)
    assert term is not None, kinds(events)
    assert (term.error_code, term.reason) == (code, reason)
    assert goaway_code(peer.out()) == code
    assert peer.conn.terminated


# --- H2 rapid reset ------------------------------------------------------------------------


def test_rapid_reset_same_read_starts_nothing() -> None:
    """H2 rapid-reset: 10,000 HEADERS+RST pairs in one read yield no request event and
    GOAWAY(ENHANCE_YOUR_CALM) after at most 1000 streams."""
    peer = server()
    f = peer.f
    flood = b"".join(
        f.headers(sid, REQUEST, end_stream=True) + f.rst(sid) for sid in range(1, 20_001, 2)
    )
    events = peer.feed(flood)
    assert not any(isinstance(e, ev.RequestReceived | ev.StreamReset) for e in events)
    _assert_goaway(peer, events, ErrorCode.ENHANCE_YOUR_CALM, "rapid-reset")
    counters = peer.conn.counters
    assert counters.rapid_reset_trips == 1
    assert counters.streams_opened <= 1000
    assert counters.coalesced_resets == counters.premature_resets == 250
    _control_connection_works()


def test_rapid_reset_across_reads_starts_at_most_250_calls() -> None:
    """H2 rapid-reset: pairs in separate reads; the proxy sees <= 250 requests, each reset."""
    peer = server()
    f = peer.f
    started = resets = 0
    events: list[ev.Event] = []
    for sid in range(1, 20_001, 2):
        peer.now += 0.0001
        events = peer.feed(f.headers(sid, REQUEST, end_stream=True))
        started += sum(isinstance(e, ev.RequestReceived) for e in events)
        events = peer.feed(f.rst(sid))
        resets += sum(isinstance(e, ev.StreamReset) and e.remote for e in events)
        if peer.conn.terminated:
            break
    assert started <= 250
    assert resets == started  # every started call was cancelled, the last one too
    _assert_goaway(peer, events, ErrorCode.ENHANCE_YOUR_CALM, "rapid-reset")
    assert peer.conn.counters.rapid_reset_trips == 1
    assert peer.conn.counters.coalesced_resets == 0


def test_rapid_reset_ratio_after_500_streams() -> None:
    """H2 rapid-reset: 300 good calls then resets trip only when resets exceed 50 %."""
    peer = server()
    f = peer.f
    for sid in range(1, 601, 2):  # 300 completed calls
        peer.feed(f.headers(sid, REQUEST, end_stream=True))
        peer.conn.send_headers(sid, [*RESPONSE, (b"grpc-status", b"0")], end_stream=True)
        peer.out()
    sid = 601
    resets = 0
    while not peer.conn.terminated:
        peer.feed(f.headers(sid, REQUEST))
        peer.feed(f.rst(sid))
        resets += 1
        sid += 2
    # 2 * resets > 300 + resets first holds at 301 resets (601 streams).
    assert resets == 301
    assert peer.conn.counters.premature_resets == 301
    assert peer.conn.counters.streams_opened == 601


def test_late_resets_are_not_premature() -> None:
    """H2 rapid-reset: resets more than 1 s after opening (injected clock) never trip."""
    peer = server()
    f = peer.f
    sid = 1
    for _ in range(10):
        batch = list(range(sid, sid + 200, 2))
        peer.feed(*(f.headers(s, REQUEST) for s in batch))
        peer.now += 1.5
        events = peer.feed(*(f.rst(s) for s in batch))
        assert len([e for e in events if isinstance(e, ev.StreamReset)]) == 100
        sid += 200
        peer.out()
    assert not peer.conn.terminated
    assert peer.conn.counters.premature_resets == 0
    assert peer.conn.counters.streams_opened == 1000


# --- H3 CONTINUATION flood ----------------------------------------------------------------


def test_continuation_flood_stops_after_64_frames() -> None:
    """H3 continuation-flood: HEADERS without END_HEADERS + 10,000 empty CONTINUATION."""
    peer = server()
    f = peer.f
    events = peer.feed(f.headers(1, REQUEST, end_headers=False))
    assert events == []
    seen = 0
    for _ in range(10_000):
        seen += 1
        events = peer.feed(f.continuation(1, b"", end_headers=False))
        if events:
            break
    assert seen == 65
    _assert_goaway(peer, events, ErrorCode.ENHANCE_YOUR_CALM, "continuation-flood")
    assert peer.conn.counters.continuation_floods == 1
    _control_connection_works()


def test_continuation_limit_is_configurable() -> None:
    """H3 continuation-flood: max_continuation_frames=8 trips at the 9th frame."""
    peer = server(limits=H2Limits(max_continuation_frames=8))
    f = peer.f
    chunks = [f.headers(1, REQUEST, end_headers=False)]
    chunks += [f.continuation(1, b"", end_headers=False)] * 9
    events = peer.feed(*chunks)
    _assert_goaway(peer, events, ErrorCode.ENHANCE_YOUR_CALM, "continuation-flood")


def test_continuation_bytes_are_bounded() -> None:
    """H3 continuation-flood: full 16 KiB CONTINUATIONs stop once the block passes 80 KiB."""
    peer = server()
    f = peer.f
    chunks = [f.headers(1, b"\x00" * 16_384, end_headers=False)]
    chunks += [f.continuation(1, b"\x00" * 16_384, end_headers=False)] * 100
    events = peer.feed(*chunks)
    _assert_goaway(peer, events, ErrorCode.ENHANCE_YOUR_CALM, "header-list-size")
    assert peer.conn.counters.header_lists_too_large == 1
    assert sum(len(p) for p in peer.conn._hb_parts) == 0  # released on termination


# --- H4 HPACK bomb -------------------------------------------------------------------------


def test_hpack_bomb_is_stopped_while_decoding() -> None:
    """H4 hpack-bomb: one 4 KB dynamic entry referenced 2000 times."""
    peer = server()
    name, value = b"x-bomb", b"v" * 4000
    # Literal with incremental indexing, new name (RFC 7541 §6.2.1), then index 62 x 2000.
    entry = b"\x40" + bytes([len(name)]) + name + b"\x7f" + _int7(len(value) - 127) + value
    block = peer.f.block(REQUEST) + entry + b"\xbe" * 2000
    events = peer.feed(*peer.f.header_frames(1, block, end_stream=True))
    _assert_goaway(peer, events, ErrorCode.ENHANCE_YOUR_CALM, "header-list-size")
    assert peer.conn.counters.header_lists_too_large == 1
    assert peer.conn._decoder.max_header_list_size == 65_536
    assert not any(isinstance(e, ev.RequestReceived) for e in events)
    _control_connection_works()


def _int7(rest: int) -> bytes:
    """The continuation bytes of an HPACK integer whose prefix was saturated."""
    out = b""
    while rest >= 128:
        out += bytes([rest % 128 + 128])
        rest //= 128
    return out + bytes([rest])


# --- H5 PING / SETTINGS flood ------------------------------------------------------------


def test_ping_flood_rate_limited() -> None:
    """H5 ping-flood: a burst of 100 PINGs is answered, the 101st at once closes."""
    peer = server()
    events = peer.feed(*(peer.f.ping(b"%08d" % i) for i in range(100)))
    assert len(events) == 100
    assert not peer.conn.terminated
    events = peer.feed(peer.f.ping(b"one more"))
    _assert_goaway(peer, events, ErrorCode.ENHANCE_YOUR_CALM, "control-rate")
    assert peer.conn.counters.control_rate_trips == 1


def test_ping_at_sustained_rate_is_fine() -> None:
    """H5 ping-flood: 10 PINGs per second (injected clock) for 200 s never trip."""
    peer = server()
    for i in range(2000):
        peer.now += 0.1
        events, frames = peer.play(peer.f.ping(b"%08d" % i))
        assert kinds(events) == ["PingReceived"]
        assert isinstance(frames[0], PingFrame)
    assert peer.conn.counters.control_rate_trips == 0


def test_settings_flood_rate_limited() -> None:
    """H5 settings-flood: 10k SETTINGS in one read: closed at the 101st after the preface's."""
    peer = server()
    events = peer.feed(*[peer.f.settings({3: 100})] * 10_000)
    _assert_goaway(peer, events, ErrorCode.ENHANCE_YOUR_CALM, "control-rate")
    assert sum(isinstance(e, ev.SettingsChanged) for e in events) == 100


def test_non_reading_peer_queued_control_frames() -> None:
    """H5 ping-flood, non-reading peer: more than 1000 queued replies closes the connection."""
    limits = dataclasses.replace(DEFAULT_LIMITS, control_frame_rate=1e9, control_frame_burst=1e9)
    peer = server(limits=limits)
    events: list[ev.Event] = []
    sent = 0
    while not peer.conn.terminated and sent < 100_000:
        peer.now += 0.001
        events = peer.conn.receive_data(peer.f.ping(), peer.now)  # never data_to_send()
        sent += 1
    assert sent == 1001
    _assert_goaway(peer, events, ErrorCode.ENHANCE_YOUR_CALM, "outbound-flood")
    assert peer.conn.counters.outbound_floods == 1


def test_non_reading_peer_unflushed_bytes() -> None:
    """H5: unflushed output beyond the byte cap closes the connection."""
    limits = dataclasses.replace(
        DEFAULT_LIMITS, control_frame_rate=1e9, control_frame_burst=1e9, max_unflushed_bytes=4096
    )
    peer = server(limits=limits)
    sent = 0
    while not peer.conn.terminated:
        peer.conn.receive_data(peer.f.ping(), 0.0)
        sent += 1
    assert sent == 4096 // 17 + 1  # a PING ACK is 17 bytes
    assert peer.conn.counters.outbound_floods == 1


def test_reading_peer_is_never_cut_off() -> None:
    """H5 control: a peer whose replies are flushed can ping within the rate forever."""
    peer = server()
    for i in range(3000):
        peer.now += 0.2
        peer.feed(peer.f.ping())
        assert peer.conn.data_to_send()
        assert not peer.conn.terminated, i


# --- H6 empty DATA frames ------------------------------------------------------------------


def test_empty_data_flood() -> None:
    """H6 empty-frame flood: the 2nd consecutive empty DATA without END_STREAM closes."""
    peer = server()
    f = peer.f
    peer.feed(f.headers(1, REQUEST))
    events = peer.feed(f.data(1, b""))
    assert kinds(events) == ["DataReceived"]
    events = peer.feed(*[f.data(1, b"")] * 10_000)
    _assert_goaway(peer, events, ErrorCode.ENHANCE_YOUR_CALM, "empty-frames")
    assert peer.conn.counters.empty_frame_trips == 1


def test_empty_data_interleaved_with_payload_is_fine() -> None:
    """H6: an empty DATA between real ones, and an empty END_STREAM, are legitimate."""
    peer = server()
    f = peer.f
    peer.feed(f.headers(1, REQUEST))
    for _ in range(50):
        peer.feed(f.data(1, b""), f.data(1, b"x"))
    events = peer.feed(f.data(1, b""), f.data(1, b"", end_stream=True))
    assert kinds(events) == ["DataReceived", "DataReceived", "StreamEnded"]
    assert not peer.conn.terminated


def test_empty_frame_limit_is_configurable() -> None:
    """H6: max_consecutive_empty_frames=3 allows 3 and trips at the 4th."""
    peer = server(limits=H2Limits(max_consecutive_empty_frames=3))
    peer.feed(peer.f.headers(1, REQUEST))
    assert not terminated(peer.feed(*[peer.f.data(1, b"")] * 3))
    assert terminated(peer.feed(peer.f.data(1, b"")))


# --- H7 oversized frame declaration --------------------------------------------------------


def test_oversized_frame_rejected_on_the_header() -> None:
    """H7 oversized-frame-declaration: length 2^24-1 -> GOAWAY(FRAME_SIZE_ERROR) at once."""
    peer = server()
    events = peer.feed(raw(0x0, 0, 1, b"", length=2**24 - 1))
    _assert_goaway(peer, events, ErrorCode.FRAME_SIZE_ERROR, "frame-size")
    assert peer.conn.counters.oversized_frames == 1
    assert peer.conn._inbuf == b""
    for _ in range(100):  # the trickle that follows is dropped, never buffered
        assert peer.feed(b"x" * 1000) == []
    assert peer.conn._inbuf == b""
    _control_connection_works()


def test_oversized_frame_rejected_byte_by_byte() -> None:
    """H7: fed one byte at a time, the error comes with the 9th header byte."""
    peer = server()
    header = raw(0x1, 0x4, 1, b"", length=16_385)
    for i, byte in enumerate(header):
        events = peer.feed(bytes([byte]))
        assert bool(events) == (i == 8)
    assert peer.conn.counters.oversized_frames == 1


# --- H10 stream limit ---------------------------------------------------------------------


def test_101st_stream_refused_others_intact() -> None:
    """H10 stream-limit: #101 gets REFUSED_STREAM; the 100 others keep working."""
    peer = server()
    f = peer.f
    events, frames = peer.play(*(f.headers(sid, REQUEST) for sid in range(1, 203, 2)))
    assert sum(isinstance(e, ev.RequestReceived) for e in events) == 100
    assert rst_codes(frames) == {201: ErrorCode.REFUSED_STREAM}
    assert peer.conn.counters.refused_streams == 1
    events = peer.feed(*(f.data(sid, b"x", end_stream=True) for sid in range(1, 201, 2)))
    assert sum(isinstance(e, ev.StreamEnded) for e in events) == 100
    events = peer.feed(f.data(201, b"ignored"))  # frames on the refused stream are ignored
    assert events == []
    peer.conn.send_headers(1, RESPONSE + TRAILERS, end_stream=True)  # frees one slot
    events = peer.feed(f.headers(203, REQUEST))
    assert kinds(events) == ["RequestReceived"]
    assert not peer.conn.terminated


def test_stream_burst_before_settings_ack() -> None:
    """H10 stream-limit: a 101-stream burst right after the preface, before our SETTINGS
    were acknowledged, is refused the same way (the limit holds from the first byte)."""
    conn = H2Connection(client_side=False)
    f = FrameFactory()
    burst = b"".join(f.headers(sid, REQUEST, end_stream=True) for sid in range(1, 203, 2))
    events = conn.receive_data(PREFACE + f.settings() + burst, 0.0)
    assert sum(isinstance(e, ev.RequestReceived) for e in events) == 100
    resets = [e for e in events if isinstance(e, ev.StreamReset)]
    assert resets == [ev.StreamReset(201, ErrorCode.REFUSED_STREAM, False)]
    assert not conn.terminated


# --- H11 header limits --------------------------------------------------------------------


def test_header_list_over_64k_closes() -> None:
    """H11 header-limits: a 65 KiB header list is a connection error (HPACK state cannot be
    kept in sync without decoding it all, which the 64 KiB bound forbids)."""
    peer = server()
    big = [*REQUEST, *((b"x-h%d" % i, b"v" * 1000) for i in range(65))]
    events = peer.feed(*peer.f.header_frames(1, peer.f.block(big)))
    _assert_goaway(peer, events, ErrorCode.ENHANCE_YOUR_CALM, "header-list-size")
    assert peer.conn.counters.header_lists_too_large == 1


def _stream_rejected(headers: list[tuple[bytes, bytes]]) -> None:
    peer = server()
    events, frames = peer.play(peer.f.headers(1, headers, end_stream=True))
    assert rst_codes(frames) == {1: ErrorCode.PROTOCOL_ERROR}
    assert kinds(events) == ["StreamReset"]
    assert peer.conn.counters.stream_errors == 1
    events = peer.feed(peer.f.headers(3, REQUEST, end_stream=True))  # connection reusable
    assert kinds(events) == ["RequestReceived", "StreamEnded"]


def test_101_headers_reset_stream() -> None:
    """H11 header-limits: 101 header fields -> RST_STREAM(PROTOCOL_ERROR), connection lives."""
    _stream_rejected([*REQUEST, *((b"x-h%d" % i, b"v") for i in range(95))])


def test_100_headers_accepted() -> None:
    """H11 header-limits: exactly 100 header fields are accepted."""
    peer = server()
    events = peer.feed(
        peer.f.headers(1, [*REQUEST, *((b"x-h%d" % i, b"v") for i in range(94))], True)
    )
    assert kinds(events) == ["RequestReceived", "StreamEnded"]


def test_invalid_header_names_reset_stream() -> None:
    """H11 header-limits: uppercase and invalid names, bad values, duplicate :path."""
    for bad in (
        [*REQUEST, (b"X-Env", b"dev")],
        [*REQUEST, (b"x env", b"dev")],
        [*REQUEST, (b"", b"dev")],
        [*REQUEST, (b"x-env", b"a\r\nb")],
        [*REQUEST, (b"x-env", b" padded")],
        [(b":path", b"/a/b"), *REQUEST],
        [*REQUEST, (b"transfer-encoding", b"chunked")],
    ):
        _stream_rejected(bad)


def test_response_validation_on_the_client_side() -> None:
    """H11 header-limits (upstream direction): a response without :status is reset."""
    peer = client()
    peer.conn.send_headers(1, REQUEST, end_stream=True)
    peer.out()
    events, frames = peer.play(peer.f.headers(1, [(b"content-type", b"application/grpc")]))
    assert rst_codes(frames) == {1: ErrorCode.PROTOCOL_ERROR}
    assert kinds(events) == ["StreamReset"]


# --- PRIORITY is accepted, ignored, counted, bounded ---------------------------------------


def test_priority_frames_counted_and_bounded() -> None:
    """PRIORITY is ignored and counted; more than 100 per opened stream (+1) closes."""
    peer = server()
    events = peer.feed(*(peer.f.priority(1, 0) for _ in range(100)))
    assert events == []
    assert peer.conn.counters.priority_frames == 100
    events = peer.feed(peer.f.priority(3, 0))
    _assert_goaway(peer, events, ErrorCode.ENHANCE_YOUR_CALM, "priority-flood")
    assert peer.conn.counters.priority_floods == 1


def test_window_update_flood_bounded() -> None:
    """WINDOW_UPDATEs not earned by DATA we sent (Envoy: 10 per DATA frame) close."""
    peer = server()
    peer.feed(peer.f.headers(1, REQUEST))
    events = peer.feed(*[peer.f.window_update(1, 1)] * 13)  # allowed: 10 + 2 * 1 stream
    _assert_goaway(peer, events, ErrorCode.ENHANCE_YOUR_CALM, "window-update-flood")
    assert peer.conn.counters.window_update_floods == 1


def test_window_updates_earned_by_data_sent() -> None:
    """A peer answering each of our DATA frames with two WINDOW_UPDATEs is fine."""
    peer = server()
    peer.feed(peer.f.headers(1, REQUEST, end_stream=True))
    peer.conn.send_headers(1, RESPONSE)
    for _ in range(500):
        peer.conn.send_data(1, b"x" * 100)
        peer.out()
        peer.feed(peer.f.window_update(1, 100), peer.f.window_update(0, 100))
    assert not peer.conn.terminated
