"""Connection state: heartbeats answered inside, READONLY, one-way calls, id bookkeeping.

Each test is a playbook: bytes in, events and bytes out.
"""

from __future__ import annotations

import pytest

from proxy.codecs.dubbo import (
    ClientConnection,
    ConnectionClosed,
    LocalProtocolError,
    ReadOnlyReceived,
    RequestReceived,
    ResponseReceived,
    ServerConnection,
    State,
    StrayResponse,
    encode_heartbeat_request,
    encode_heartbeat_response,
    encode_readonly_event,
    encode_value_response,
    parse_header,
    rewrite_request_id,
)
from proxy.codecs.hessian2 import encode
from proxy.errors import BadRequest, BadResponse, DubboStatus
from tests.unit.dubbo.frames import event, raw_frame, request


def test_heartbeat_is_answered_inside_the_server_codec() -> None:
    conn = ServerConnection()
    heartbeat = encode_heartbeat_request(41)
    assert heartbeat[16:] == b"N"  # the body is a Hessian null
    assert conn.receive_data(heartbeat) == []  # nothing for routing
    reply = conn.data_to_send()
    assert reply == encode_heartbeat_response(41)
    header = parse_header(reply)
    assert header.is_event and not header.is_request and header.status == 20
    assert conn.data_to_send() == b""


def test_one_way_heartbeat_is_not_answered() -> None:
    conn = ServerConnection()
    assert conn.receive_data(encode_heartbeat_request(3, two_way=False)) == []
    assert conn.data_to_send() == b""


def test_heartbeat_from_a_provider_is_answered_by_the_client_codec() -> None:
    conn = ClientConnection()
    assert conn.receive_data(encode_heartbeat_request(8)) == []
    assert conn.data_to_send() == encode_heartbeat_response(8)


def test_our_heartbeat_answer_is_consumed() -> None:
    conn = ClientConnection()
    heartbeat_id = conn.send_heartbeat()
    assert parse_header(conn.data_to_send()).is_event
    assert conn.unanswered_heartbeats == 1
    assert conn.receive_data(encode_heartbeat_response(heartbeat_id)) == []
    assert conn.unanswered_heartbeats == 0


def test_readonly_event() -> None:
    """D14 readonly-event (codec part): the body is the Hessian string "R"."""
    frame = encode_readonly_event(12)
    assert frame[16:] == b"\x01R"
    header = parse_header(frame)
    assert header.is_request and header.is_event and not header.two_way
    assert ClientConnection().receive_data(frame) == [ReadOnlyReceived(12)]


def test_send_readonly_when_draining() -> None:
    conn = ServerConnection()
    readonly_id = conn.send_readonly()
    assert ClientConnection().receive_data(conn.data_to_send()) == [ReadOnlyReceived(readonly_id)]


def test_unknown_event_payload_is_ignored_like_dubbo() -> None:
    conn = ServerConnection()
    assert conn.receive_data(event(encode("something else"), two_way=False)) == []
    assert conn.data_to_send() == b""


def test_undecodable_event_body_is_a_bad_request() -> None:
    with pytest.raises(BadRequest) as info:
        ServerConnection().receive_data(event(b"\xff", request_id=4))
    assert info.value.request_id == 4


def test_one_way_request_is_never_answered() -> None:
    conn = ServerConnection()
    (received,) = conn.receive_data(request(5, two_way=False))
    assert isinstance(received, RequestReceived) and not received.request.two_way
    assert conn.awaiting == frozenset()
    with pytest.raises(LocalProtocolError):
        conn.send_value(5, "no one is waiting")


def test_each_two_way_request_is_answered_once() -> None:
    conn = ServerConnection()
    conn.receive_data(request(1) + request(2))
    assert conn.awaiting == {1, 2}
    conn.send_value(2, "b")
    conn.send_error(1, DubboStatus.SERVICE_NOT_FOUND, "none")
    assert conn.awaiting == frozenset()
    with pytest.raises(LocalProtocolError):
        conn.send_value(1, "again")
    frames = conn.data_to_send()
    assert parse_header(frames).request_id == 2


def test_forwarded_response_frame_answers_its_id() -> None:
    conn = ServerConnection()
    conn.receive_data(request(7))
    upstream = encode_value_response(1234, "ok")
    conn.send_response(rewrite_request_id(upstream, 7))
    assert conn.awaiting == frozenset()
    with pytest.raises(LocalProtocolError):
        conn.send_response(request(7))  # a request frame is not an answer


def test_reused_in_flight_id_is_refused_without_an_id() -> None:
    conn = ServerConnection()
    conn.receive_data(request(9))
    with pytest.raises(BadRequest, match="reused") as info:
        conn.receive_data(request(9))
    assert info.value.request_id is None


def test_consumer_sending_a_response_is_refused() -> None:
    with pytest.raises(BadRequest, match="response frame"):
        ServerConnection().receive_data(encode_value_response(1, "x"))


def test_provider_sending_a_request_is_refused() -> None:
    """Dubbo callbacks over the consumer connection are not relayed."""
    with pytest.raises(BadResponse, match="callbacks"):
        ClientConnection().receive_data(request(1))


def test_bad_request_id_can_still_be_answered_after_failure() -> None:
    """The data path answers 40 to the id the error carries, then closes."""
    conn = ServerConnection()
    with pytest.raises(BadRequest) as info:
        conn.receive_data(raw_frame(b"\x91", request_id=66))
    assert conn.state is State.FAILED
    assert info.value.request_id == 66
    conn.send_error(66, info.value.dubbo_status, info.value.message)
    reply = conn.data_to_send()
    assert parse_header(reply).status == 40
    with pytest.raises(BadRequest):  # a failed connection keeps failing
        conn.receive_data(request(1))


def test_client_ids_are_allocated_and_responses_matched() -> None:
    conn = ClientConnection()
    first = conn.send_request(request(500))
    second = conn.send_request(request(500))  # same consumer id, distinct upstream ids
    assert first != second
    assert conn.in_flight == {first, second}
    sent = conn.data_to_send()
    assert parse_header(sent).request_id == first
    (got,) = conn.receive_data(encode_value_response(second, "two"))
    assert isinstance(got, ResponseReceived) and got.response.request_id == second
    assert got.dubbo_version == "2.0.2"
    assert conn.in_flight == {first}


def test_one_way_request_is_not_in_flight() -> None:
    conn = ClientConnection()
    conn.send_request(request(two_way=False))
    assert conn.in_flight == frozenset()


def test_forgotten_request_answer_is_stray() -> None:
    """G3 (codec part): a late response after a timeout is reported, not delivered."""
    conn = ClientConnection()
    request_id = conn.send_request(request())
    conn.forget(request_id)
    (late,) = conn.receive_data(encode_value_response(request_id, "late"))
    assert isinstance(late, StrayResponse)
    (bogus,) = conn.receive_data(encode_value_response(10**9, "bogus"))
    assert isinstance(bogus, StrayResponse)


def test_close_reports_unanswered_calls() -> None:
    """R2 upstream-death (codec part): the ids that will never be answered."""
    conn = ClientConnection()
    ids = {conn.send_request(request()) for _ in range(3)}
    conn.send_request(request(two_way=False))
    (closed,) = conn.receive_data(b"")
    assert isinstance(closed, ConnectionClosed)
    assert set(closed.unanswered) == ids and not closed.truncated
    assert conn.state is State.CLOSED
    with pytest.raises(LocalProtocolError):
        conn.receive_data(b"more")


def test_send_request_needs_a_request_frame() -> None:
    with pytest.raises(LocalProtocolError):
        ClientConnection().send_request(encode_value_response(1, "x"))
