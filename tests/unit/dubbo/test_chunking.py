"""A stream parses identically whole, byte by byte and in any chunks (h11 test_io style)."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.codecs.dubbo import (
    ClientConnection,
    Event,
    ReadOnlyReceived,
    RequestReceived,
    ResponseReceived,
    ServerConnection,
    StrayResponse,
    encode_error_response,
    encode_heartbeat_request,
    encode_heartbeat_response,
    encode_readonly_event,
    encode_value_response,
)
from proxy.errors import DubboStatus
from tests.unit.dubbo.frames import request

#: Consumer -> proxy: calls (two-way and one-way), a big argument, heartbeats, READONLY.
CONSUMER_STREAM = b"".join(
    [
        request(1),
        encode_heartbeat_request(2),
        request(3, args=("x" * 5000,)),
        request(4, two_way=False),
        encode_readonly_event(5),
        request(6, method="noArgs", types="", args=()),
    ]
)


def _summary(event: Event) -> tuple[object, ...]:
    if isinstance(event, RequestReceived):
        r = event.request
        return ("request", r.request_id, r.two_way, r.frame, r.method, dict(r.attachments))
    if isinstance(event, ResponseReceived | StrayResponse):
        return (type(event).__name__, event.response.frame, event.response.body())
    return (event,)


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


def _run_server(chunks: list[bytes]) -> tuple[list[tuple[object, ...]], bytes]:
    conn = ServerConnection()
    events = [_summary(e) for chunk in chunks for e in conn.receive_data(chunk)]
    return events, conn.data_to_send()


def test_whole_and_byte_by_byte_agree() -> None:
    """D11 codec-properties: the two extreme chunkings."""
    whole = _run_server([CONSUMER_STREAM])
    one_by_one = _run_server([CONSUMER_STREAM[i : i + 1] for i in range(len(CONSUMER_STREAM))])
    assert whole == one_by_one
    events, sent = whole
    assert [e[1] for e in events if e[0] == "request"] == [1, 3, 4, 6]
    assert any(e == (ReadOnlyReceived(5),) for e in events)
    assert sent == encode_heartbeat_response(2)  # answered inside the codec


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0), max_size=40))
def test_random_chunks_agree_on_the_server_side(cuts: list[int]) -> None:
    """D11 codec-properties: any chunking of a consumer stream gives identical events."""
    assert _run_server(_split(CONSUMER_STREAM, cuts)) == _run_server([CONSUMER_STREAM])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0), max_size=40))
def test_random_chunks_agree_on_the_client_side(cuts: list[int]) -> None:
    """D11 codec-properties: any chunking of a provider stream gives identical events."""

    def run(chunks: list[bytes]) -> tuple[list[tuple[object, ...]], bytes]:
        conn = ClientConnection()
        for _ in range(3):
            conn.send_request(request())
        conn.data_to_send()
        events = [_summary(e) for chunk in chunks for e in conn.receive_data(chunk)]
        return events, conn.data_to_send()

    stream = b"".join(
        [
            encode_value_response(1, "a" * 3000, attachments={"k": "v"}),
            encode_heartbeat_request(77),
            encode_error_response(2, DubboStatus.SERVICE_ERROR, "nope"),
            encode_value_response(3, None),
            encode_value_response(999, "stray"),
        ]
    )
    assert run(_split(stream, cuts)) == run([stream])
