"""Any chunking of the same bytes gives the same events (h11's test_io discipline), and
arbitrary bytes never make an exception escape the codec (D11-style properties for H2).

The one intended exception is rapid-reset coalescing (a stream opened and reset within
one read is dropped), so the streams below are never reset by the peer.
"""

from __future__ import annotations

import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxy.codecs.grpc import events as ev
from proxy.codecs.grpc.connection import H2Connection
from proxy.codecs.grpc.frames import PREFACE
from tests.unit.h2.helpers import REQUEST, RESPONSE, TRAILERS, FrameFactory, raw


def _client_bytes() -> bytes:
    """A realistic client byte stream: several calls, padding, CONTINUATION, PING."""
    f = FrameFactory()
    parts = [
        PREFACE,
        f.settings({4: 1_000_000, 3: 50}),
        f.settings(ack=True),
        f.headers(1, REQUEST),
        f.data(1, b"\0\0\0\0\x05hello", pad_length=3),
        f.data(1, b"", end_stream=True),
    ]
    block = f.block([*REQUEST, (b"x-env", b"feature-login")])  # HPACK state: in wire order
    parts += [
        f.headers(3, block[:7], end_headers=False),
        f.continuation(3, block[7:20], end_headers=False),
        f.continuation(3, block[20:]),
        f.ping(b"pingpong"),
        f.data(3, b"\0\0\0\0\x02hi"),
        f.headers(3, [(b"x-trailer", b"yes")], end_stream=True),
        f.priority(5, 0),
        f.window_update(0, 1000),
        raw(0xAA, 0, 0, b"unknown"),
        f.headers(5, REQUEST, end_stream=True, depends_on=0, pad_length=9),
    ]
    return b"".join(parts)


def _server_bytes() -> bytes:
    """A server's answer to one client call, as the upstream side sees it."""
    f = FrameFactory()
    return b"".join(
        [
            f.settings({5: 20_000}),
            f.settings(ack=True),
            f.headers(1, RESPONSE),
            f.data(1, b"\0\0\0\0\x03abc"),
            f.ping(b"12345678"),
            f.headers(1, TRAILERS, end_stream=True),
        ]
    )


CLIENT_BYTES = _client_bytes()
SERVER_BYTES = _server_bytes()


def _run(chunks: list[bytes], client_side: bool) -> tuple[list[ev.Event], bytes]:
    conn = H2Connection(client_side=client_side)
    if client_side:
        conn.send_headers(1, REQUEST, end_stream=True)
    events: list[ev.Event] = []
    out = b""
    for chunk in chunks:
        events += conn.receive_data(chunk, 0.0)
        out += conn.data_to_send()
    return events, out


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


WHOLE_SERVER = _run([CLIENT_BYTES], client_side=False)
WHOLE_CLIENT = _run([SERVER_BYTES], client_side=True)


def test_whole_stream_is_understood() -> None:
    """H1: the sample streams produce the expected events (sanity of the fixtures)."""
    names = [type(e).__name__ for e in WHOLE_SERVER[0]]
    assert names.count("RequestReceived") == 3
    assert names.count("StreamEnded") == 3
    assert "ConnectionTerminated" not in names and "StreamReset" not in names
    names = [type(e).__name__ for e in WHOLE_CLIENT[0]]
    assert names[-3:] == ["PingReceived", "TrailersReceived", "StreamEnded"]


def test_byte_by_byte_equals_whole() -> None:
    """H1: feeding one byte at a time gives the same events and output as one read."""
    assert _run([bytes([b]) for b in CLIENT_BYTES], client_side=False) == WHOLE_SERVER
    events, out = _run([bytes([b]) for b in SERVER_BYTES], client_side=True)
    assert (events, out) == WHOLE_CLIENT


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.lists(st.integers(min_value=0), max_size=30))
def test_any_chunking_equals_whole(cuts: list[int]) -> None:
    """H1: any split of the client stream (server side) gives the same events and output."""
    assert _run(_split(CLIENT_BYTES, cuts), client_side=False) == WHOLE_SERVER


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(min_value=0), max_size=10))
def test_any_chunking_equals_whole_client_side(cuts: list[int]) -> None:
    """H1: any split of the upstream's bytes (client side) gives the same events."""
    assert _run(_split(SERVER_BYTES, cuts), client_side=True) == WHOLE_CLIENT


_HANDSHAKE = PREFACE + FrameFactory().settings()


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_raise(junk: bytes) -> None:
    """H1: garbage after the handshake yields events (maybe a connection error), no exception."""
    conn = H2Connection(client_side=False)
    conn.receive_data(_HANDSHAKE + junk, 0.0)
    conn.data_to_send()


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.sampled_from([0x0, 0x1, 0x4, 0x5, 0x8, 0x9, 0x25, 0x2D]))
def test_arbitrary_header_blocks_never_raise(block: bytes, flags: int) -> None:
    """H1 / H4: any HPACK block gives a request, a stream error or a connection error."""
    conn = H2Connection(client_side=False)
    events = conn.receive_data(_HANDSHAKE + raw(0x1, flags, 1, block), 0.0)
    for event in events:
        assert isinstance(
            event,
            ev.SettingsChanged
            | ev.RequestReceived
            | ev.StreamEnded
            | ev.StreamReset
            | ev.ConnectionTerminated,
        ), event
