"""The stream state table (RFC 9113 §5.1), windows, and the frame layer's own checks."""

from __future__ import annotations

import pytest
from hyperframe.frame import DataFrame, GoAwayFrame, HeadersFrame, SettingsFrame

from proxy.codecs.grpc import frames as fr
from proxy.codecs.grpc.errors import ErrorCode, H2ConnectionError, H2StreamError
from proxy.codecs.grpc.flow import InboundWindow, grow_outbound
from proxy.codecs.grpc.limits import H2Limits
from proxy.codecs.grpc.streams import TRANSITIONS, Stream, StreamInput, StreamState

S = StreamState
I = StreamInput  # noqa: E741


@pytest.mark.parametrize(
    ("path", "end"),
    [
        ([I.RECV_HEADERS, I.RECV_END_STREAM, I.SEND_HEADERS, I.SEND_END_STREAM], S.CLOSED),
        ([I.SEND_HEADERS, I.SEND_END_STREAM, I.RECV_HEADERS, I.RECV_END_STREAM], S.CLOSED),
        ([I.RECV_HEADERS, I.RECV_DATA, I.SEND_HEADERS, I.SEND_DATA], S.OPEN),
        ([I.RECV_HEADERS, I.SEND_RST], S.CLOSED),
        ([I.SEND_HEADERS, I.SEND_END_STREAM, I.RECV_RST], S.CLOSED),
        ([I.RECV_HEADERS, I.RECV_END_STREAM], S.HALF_CLOSED_REMOTE),
    ],
)
def test_legal_paths(path: list[StreamInput], end: StreamState) -> None:
    """RFC 9113 §5.1: the lifecycle paths a proxy uses reach the expected state."""
    stream = Stream(1, 100, 100, 0.0)
    for step in path:
        assert stream.step(step) is not None, (stream.state, step)
    assert stream.state is end


@pytest.mark.parametrize(
    ("state", "step"),
    [
        (S.IDLE, I.RECV_DATA),
        (S.IDLE, I.RECV_RST),
        (S.HALF_CLOSED_REMOTE, I.RECV_DATA),
        (S.HALF_CLOSED_REMOTE, I.RECV_HEADERS),
        (S.HALF_CLOSED_LOCAL, I.SEND_DATA),
        (S.CLOSED, I.RECV_DATA),
        (S.CLOSED, I.SEND_HEADERS),
    ],
)
def test_forbidden_transitions(state: StreamState, step: StreamInput) -> None:
    """Anything absent from the table is refused and leaves the state unchanged."""
    stream = Stream(1, 100, 100, 0.0)
    stream.state = state
    assert stream.step(step) is None
    assert stream.state is state


def test_table_never_leaves_closed() -> None:
    """Closed is terminal: no entry starts from it."""
    assert not [key for key in TRANSITIONS if key[0] is S.CLOSED]


def test_inbound_window_batches_updates() -> None:
    """Acknowledged bytes are announced once half the window is due."""
    window = InboundWindow(100)
    assert window.consume(30)
    assert window.acknowledge(30) == 0
    assert window.consume(70)
    assert not window.consume(1)
    assert window.acknowledge(20) == 50
    assert window.available == 50
    assert window.retarget(50) == -50 and window.available == 0
    assert grow_outbound(2**31 - 2, 1) == 2**31 - 1
    assert grow_outbound(2**31 - 1, 1) is None


def test_frame_header_and_serializers_agree_with_hyperframe() -> None:
    """Our serializers produce frames hyperframe parses identically (independent reader)."""
    data = fr.frame(fr.DATA, fr.END_STREAM, 7, b"abc")
    assert fr.parse_header(data, 0) == (3, fr.DATA, fr.END_STREAM, 7)
    frame, _length = DataFrame.parse_frame_header(memoryview(data[:9]))
    frame.parse_body(memoryview(data[9:]))
    assert isinstance(frame, DataFrame) and frame.data == b"abc" and "END_STREAM" in frame.flags
    assert fr.parse_header(b"\0\0\0\x01\x04\x80\0\0\x05", 0) == (0, 1, 4, 5)  # reserved bit
    settings = fr.settings_frame({3: 100})
    assert SettingsFrame(0, {3: 100}).serialize() == settings
    assert GoAwayFrame(0, 5, 11, b"x").serialize() == fr.goaway_frame(5, 11, b"x")
    headers = fr.frame(fr.HEADERS, fr.END_HEADERS, 1, b"\x82")
    assert HeadersFrame(1, b"\x82", flags=["END_HEADERS"]).serialize() == headers


def test_frame_checks() -> None:
    """Fixed lengths and stream association raise the RFC-named errors."""
    with pytest.raises(H2ConnectionError) as info:
        fr.check_association(fr.PING, 0, 7)
    assert info.value.code == ErrorCode.FRAME_SIZE_ERROR
    with pytest.raises(H2StreamError) as sinfo:
        fr.check_association(fr.PRIORITY, 3, 4)
    assert (sinfo.value.stream_id, sinfo.value.code) == (3, ErrorCode.FRAME_SIZE_ERROR)
    with pytest.raises(H2ConnectionError):
        fr.strip_padding(b"", fr.PADDED, fr.DATA)
    assert fr.strip_padding(b"\x02abcXX", fr.PADDED, fr.DATA) == (1, b"abc")
    with pytest.raises(H2ConnectionError):
        fr.parse_goaway(b"\0" * 7)
    assert fr.parse_goaway(b"\0\0\0\x03\0\0\0\x0bdebug") == fr.GoAway(3, 11, b"debug")


def test_limits_validated() -> None:
    """A limit outside what RFC 9113 allows is refused at configuration time."""
    with pytest.raises(ValueError, match="max_inbound_frame_size"):
        H2Limits(max_inbound_frame_size=1000)
    with pytest.raises(ValueError, match="initial_stream_window"):
        H2Limits(initial_stream_window=0)
    with pytest.raises(ValueError, match="initial_connection_window"):
        H2Limits(initial_connection_window=10)


def test_the_indexed_transition_table_is_the_spec_table() -> None:
    """``Stream.step`` indexes ``_NEXT``; it must say what TRANSITIONS says, pair by pair
    (and the enums must stay dense from 0 for the indexing to mean anything)."""
    from proxy.codecs.grpc.streams import _NEXT, TRANSITIONS, StreamInput, StreamState

    assert [s.value for s in StreamState] == list(range(len(StreamState)))
    assert [i.value for i in StreamInput] == list(range(len(StreamInput)))
    for state in StreamState:
        for event in StreamInput:
            assert _NEXT[state][event] == TRANSITIONS.get((state, event)), (state, event)
