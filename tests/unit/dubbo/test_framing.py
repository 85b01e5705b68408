"""Framing and header checks: bad input is refused as early as it can be judged."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.codecs.dubbo import (
    FLAG_REQUEST,
    FLAG_TWO_WAY,
    MAX_BODY_BYTES,
    ClientConnection,
    ConnectionClosed,
    DubboLimits,
    RequestReceived,
    ResponseReceived,
    ServerConnection,
    StrayResponse,
    build_header,
)
from proxy.errors import BadRequest, BadResponse, DubboStatus, RequestTooLarge
from tests.unit.dubbo.frames import raw_frame, request


@given(st.binary(min_size=16, max_size=16).filter(lambda b: b[:2] != b"\xda\xbb"))
def test_bad_magic_is_refused(data: bytes) -> None:
    """D1 dubbo-bad-magic: refused with 40 and no request id (nothing to answer: close)."""
    conn = ServerConnection()
    with pytest.raises(BadRequest) as info:
        conn.receive_data(data)
    assert info.value.dubbo_status == DubboStatus.BAD_REQUEST
    assert info.value.close
    assert info.value.request_id is None


def test_bad_magic_is_refused_on_the_first_byte() -> None:
    """D1 dubbo-bad-magic: no need to wait for 16 bytes."""
    with pytest.raises(BadRequest):
        ServerConnection().receive_data(b"\x00")
    with pytest.raises(BadRequest):
        ServerConnection().receive_data(b"\xda\x00")


@pytest.mark.parametrize("text", [b"ls\r\n", b"invoke a.B.c({})\r\n", b"help\n"])
def test_telnet_text_is_refused(text: bytes) -> None:
    """D2 dubbo-telnet-refusal: Dubbo's telnet commands are never served."""
    conn = ServerConnection()
    with pytest.raises(BadRequest, match="telnet") as info:
        conn.receive_data(text)
    assert info.value.request_id is None
    # Byte by byte: the first byte already decides.
    with pytest.raises(BadRequest, match="telnet"):
        ServerConnection().receive_data(text[:1])


@pytest.mark.parametrize("serialization", [0, 3, 4, 6, 7, 8, 9, 10, 11, 12, 16, 21, 22, 23, 31])
def test_serialization_other_than_hessian2_is_refused(serialization: int) -> None:
    """D3 serialization-pin: 40 carrying the id to answer, before the body is read."""
    frame = request(request_id=77)
    pinned = frame[:2] + bytes([FLAG_REQUEST | FLAG_TWO_WAY | serialization]) + frame[3:]
    conn = ServerConnection()
    with pytest.raises(BadRequest) as info:
        conn.receive_data(pinned[:16])  # the header alone is enough to refuse
    assert info.value.request_id == 77
    assert info.value.dubbo_status == DubboStatus.BAD_REQUEST
    assert f"serialization id {serialization} " in info.value.message


def test_fastjson2_refusal_explains_the_dubbo_32_default() -> None:
    """D3 serialization-pin: Dubbo 3.2 consumers send 23 by default; say what to change."""
    frame = request()
    pinned = frame[:2] + bytes([FLAG_REQUEST | FLAG_TWO_WAY | 23]) + frame[3:]
    with pytest.raises(BadRequest, match=r"23 \(fastjson2\).*prefer\.serialization=hessian2"):
        ServerConnection().receive_data(pinned)


def test_serialization_can_be_allowed_by_configuration() -> None:
    limits = DubboLimits(accepted_serializations=frozenset({2, 23}))
    frame = request()
    relabelled = frame[:2] + bytes([FLAG_REQUEST | FLAG_TWO_WAY | 23]) + frame[3:]
    (event,) = ServerConnection(limits).receive_data(relabelled)
    assert isinstance(event, RequestReceived)
    assert event.request.serialization_id == 23


@pytest.mark.parametrize("length", [MAX_BODY_BYTES + 1, 0x80000000, 0xFFFFFFFF])
def test_oversize_body_is_refused_on_the_header(length: int) -> None:
    """D4 dubbo-oversize: refused right after the 16-byte header, nothing buffered."""
    header = build_header(flags=FLAG_REQUEST | FLAG_TWO_WAY | 2, request_id=9, body_length=length)
    conn = ServerConnection()
    with pytest.raises(RequestTooLarge) as info:
        conn.receive_data(header + b"x" * 1024)
    assert info.value.request_id == 9
    assert info.value.dubbo_status == DubboStatus.BAD_REQUEST
    assert not conn.partial_frame_pending  # not one body byte was kept


def test_body_limit_is_configurable() -> None:
    limits = DubboLimits(max_body_bytes=64)
    with pytest.raises(RequestTooLarge, match="64-byte limit"):
        ServerConnection(limits).receive_data(request(args=("x" * 100,)))


def test_max_body_is_accepted_exactly() -> None:
    frame = request()
    limits = DubboLimits(max_body_bytes=len(frame) - 16)
    (event,) = ServerConnection(limits).receive_data(frame)
    assert isinstance(event, RequestReceived)


def test_stalled_body_is_visible_as_a_pending_partial_frame() -> None:
    """D5 dubbo-stalled-body (codec part): header says 1 MiB, 10 bytes came; the caller's
    request-read timer can see the frame is pending; closing reports the truncation."""
    header = build_header(
        flags=FLAG_REQUEST | FLAG_TWO_WAY | 2, request_id=31, body_length=1024 * 1024
    )
    conn = ServerConnection()
    assert conn.receive_data(header + b"0123456789") == []
    assert conn.partial_frame_pending
    assert conn.partial_request_id == 31
    (closed,) = conn.receive_data(b"")
    assert closed == ConnectionClosed(truncated=True, partial_request_id=31, unanswered=())


def test_partial_header_is_pending_without_an_id() -> None:
    conn = ServerConnection()
    assert conn.receive_data(request()[:7]) == []
    assert conn.partial_frame_pending
    assert conn.partial_request_id is None


def test_truncated_hessian_inside_a_complete_frame_answers_the_id() -> None:
    """A body whose Hessian ends early: 40 for that id (the header was fine)."""
    body = b"\x052.0.2\x20com.exa"  # the path string announces 32 chars, has 7
    with pytest.raises(BadRequest) as info:
        ServerConnection().receive_data(raw_frame(body, request_id=12))
    assert info.value.request_id == 12


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\xff\xff\xff\xff",
        b"\x052.0.2\x91",  # path is an int
        b"\x052.0.2\x03a.B\x00\x01m\x01Q",  # bad descriptor letter
    ],
)
def test_garbage_body_answers_the_id(body: bytes) -> None:
    with pytest.raises(BadRequest) as info:
        ServerConnection().receive_data(raw_frame(body, request_id=13))
    assert info.value.request_id == 13
    assert info.value.dubbo_status == DubboStatus.BAD_REQUEST


def test_garbage_from_a_provider_is_bad_response() -> None:
    """A provider's garbage maps to 50 BAD_RESPONSE, not 40."""
    conn = ClientConnection()
    with pytest.raises(BadResponse) as info:
        conn.receive_data(b"HTTP/1.1 400 Bad Request\r\n")
    assert info.value.dubbo_status == DubboStatus.BAD_RESPONSE


def _feed_everything(data: bytes) -> None:
    for conn in (ServerConnection(), ClientConnection()):
        try:
            for event in conn.receive_data(data):
                if isinstance(event, RequestReceived):
                    dict(event.request.attachments)
                elif isinstance(event, ResponseReceived | StrayResponse):
                    event.response.body()
        except (BadRequest, BadResponse):
            pass


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64))
def test_any_bytes_raise_only_laneway_errors(data: bytes) -> None:
    """D11 codec-properties: arbitrary input never escapes as IndexError/struct.error."""
    _feed_everything(data)


@settings(max_examples=200, deadline=None)
@given(flags=st.integers(0, 255), status=st.integers(0, 255), body=st.binary(max_size=200))
def test_any_body_behind_a_valid_header_raises_only_laneway_errors(
    flags: int, status: int, body: bytes
) -> None:
    """D11 codec-properties: garbage bodies (requests, responses, events) stay typed."""
    _feed_everything(raw_frame(body, flags=(flags & 0xE0) | 2, status=status))


@settings(max_examples=200, deadline=None)
@given(cut=st.integers(17, 400), noise=st.binary(min_size=1, max_size=8))
def test_damaged_real_frames_raise_only_laneway_errors(cut: int, noise: bytes) -> None:
    """D11 codec-properties: a real request with its body cut short or overwritten."""
    frame = request(args=("x" * 40,))
    cut = min(cut, len(frame) - 1)
    damaged = frame[:cut] + noise + frame[cut + len(noise) :]
    _feed_everything(damaged)
    _feed_everything(raw_frame(frame[16:cut]))
