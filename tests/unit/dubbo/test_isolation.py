"""D13 request-id-isolation at codec level: consumers reuse ids, one upstream multiplexes."""

from __future__ import annotations

import random

from proxy.codecs.dubbo import (
    DEFAULT_LIMITS,
    ClientConnection,
    RequestReceived,
    ResponseReceived,
    ServerConnection,
    encode_value_response,
    parse_header,
    parse_response,
)
from proxy.codecs.hessian2 import Decoder
from tests.unit.dubbo.frames import request

ROUNDS = 1000


def _argument(frame: bytes) -> object:
    decoder = Decoder(frame, 16)
    for _ in range(5):
        decoder.read()
    return decoder.read()


def test_same_ids_from_two_consumers_never_cross() -> None:
    """D13 request-id-isolation: 2 consumers, same ids, one shared upstream, 1000 rounds,
    0 cross-delivered responses."""
    rng = random.Random(13)
    consumers = {"a": ServerConnection(), "b": ServerConnection()}
    upstream = ClientConnection()
    routes: dict[int, tuple[str, int]] = {}  # upstream id -> (consumer, consumer's id)
    for round_no in range(ROUNDS):
        request_id = round_no % 7  # both consumers use the same small id space
        for name, conn in consumers.items():
            (received,) = conn.receive_data(request(request_id, args=(f"{name}-{round_no}",)))
            assert isinstance(received, RequestReceived)
            upstream_id = upstream.send_request(received.request.frame)
            routes[upstream_id] = (name, request_id)
        # The provider answers in a shuffled order with the argument it got.
        wire = upstream.data_to_send()
        provider_in = ServerConnection()
        answers = []
        for got in provider_in.receive_data(wire):
            assert isinstance(got, RequestReceived)
            answers.append(
                encode_value_response(got.request.request_id, _argument(got.request.frame))
            )
        rng.shuffle(answers)
        for response in upstream.receive_data(b"".join(answers)):
            assert isinstance(response, ResponseReceived)
            name, consumer_id = routes.pop(response.response.request_id)
            consumers[name].send_response(response.response.with_request_id(consumer_id))
        for name, conn in consumers.items():
            out = conn.data_to_send()
            back = parse_response(parse_header(out), out, DEFAULT_LIMITS)
            assert back.request_id == request_id
            assert back.body().value == f"{name}-{round_no}"
        assert all(not c.awaiting for c in consumers.values())
    assert routes == {}
    assert upstream.in_flight == frozenset()
