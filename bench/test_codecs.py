"""Codec micro-benchmarks (pytest-benchmark): `make bench`. Figures go to bench/RESULTS.md.

Dubbo 2: what the proxy does per call on the hot path, without sockets. "Routing decode" is
header parse + body prefix + skipping the arguments + decoding the attachments map: all a
routing decision needs (the DESIGN.md aim: <= 20 us for a typical request).
"""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from proxy.codecs.dubbo import (
    DEFAULT_LIMITS,
    ServerConnection,
    encode_request,
    encode_value_response,
    parse_header,
    parse_request,
    rewrite_request_id,
)
from proxy.codecs.hessian2 import HessianObject

SERVICE = "com.example.order.OrderService"

#: Five attachments, as an Apache Dubbo consumer sends them (values are strings).
ATTACHMENTS = {
    "path": SERVICE,
    "interface": SERVICE,
    "version": "1.0.0",
    "timeout": "3000",
    "dubbo.tag": "feature-login",
}

TYPICAL = encode_request(
    request_id=1,
    path=SERVICE,
    version="1.0.0",
    method="placeOrder",
    parameter_types="Ljava/lang/String;Ljava/lang/String;Ljava/lang/String;",
    arguments=["user-4711", "sku-0815", "note: leave at the door"],
    attachments=ATTACHMENTS,
)

LARGE_ARGUMENT = encode_request(
    request_id=1,
    path=SERVICE,
    version="1.0.0",
    method="upload",
    parameter_types="Ljava/lang/String;",
    arguments=["x" * (16 * 1024)],
    attachments=ATTACHMENTS,
)

POJO = HessianObject(
    "com.example.order.Order",
    {
        "id": 4711,
        "user": "user-4711",
        "sku": "sku-0815",
        "quantity": 3,
        "price": 19.99,
        "express": True,
        "tags": ["gift", "fragile"],
        "address": HessianObject(
            "com.example.order.Address", {"street": "Main St 1", "city": "Springfield"}
        ),
    },
)

POJO_ARGUMENT = encode_request(
    request_id=1,
    path=SERVICE,
    version="1.0.0",
    method="submit",
    parameter_types="Lcom/example/order/Order;",
    arguments=[POJO],
    attachments=ATTACHMENTS,
)


def routing_decode(frame: bytes) -> Mapping[str, object]:
    """What the data path runs before deciding a route."""
    request = parse_request(parse_header(frame), frame, DEFAULT_LIMITS)
    return request.attachments


@pytest.mark.parametrize(
    "frame",
    [TYPICAL, LARGE_ARGUMENT, POJO_ARGUMENT],
    ids=["typical-3-strings-5-attachments", "one-16KiB-argument", "pojo-argument"],
)
def test_dubbo_routing_decode(benchmark: BenchmarkFixture, frame: bytes) -> None:
    attachments = benchmark(routing_decode, frame)
    assert attachments["dubbo.tag"] == "feature-login"


def test_dubbo_connection_receive_typical(benchmark: BenchmarkFixture) -> None:
    """The same through a ServerConnection (framing + bookkeeping), answered each time."""
    conn = ServerConnection()

    def receive_and_route() -> object:
        (event,) = conn.receive_data(TYPICAL)
        request = event.request  # type: ignore[union-attr]
        tag = request.attachments["dubbo.tag"]
        conn.send_value(request.request_id, None)
        return tag

    assert benchmark(receive_and_route) == "feature-login"


def test_dubbo_response_encode(benchmark: BenchmarkFixture) -> None:
    frame = benchmark(
        encode_value_response, 1, "order 4711 accepted", attachments={"dubbo": "2.0.2"}
    )
    assert frame[16] == 0x94


def test_dubbo_header_parse(benchmark: BenchmarkFixture) -> None:
    header = benchmark(parse_header, TYPICAL)
    assert header.request_id == 1


def test_dubbo_request_id_rewrite(benchmark: BenchmarkFixture) -> None:
    frame = benchmark(rewrite_request_id, TYPICAL, 0x1234_5678)
    assert frame[12:] == TYPICAL[12:]


def test_dubbo_attachment_rewrite(benchmark: BenchmarkFixture) -> None:
    """Injecting the env tag: only the attachments map is rebuilt."""
    request = parse_request(parse_header(TYPICAL), TYPICAL, DEFAULT_LIMITS)
    request.attachments  # noqa: B018  (decoded once, as routing already did)
    frame = benchmark(request.with_attachments, {"dubbo.tag": "feature-pay"})
    assert b"feature-pay" in frame
