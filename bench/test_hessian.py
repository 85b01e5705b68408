"""Hessian 2 codec micro-benchmarks (pytest-benchmark). Figures go to bench/RESULTS.md.

Run: ``.venv/bin/pytest bench/test_hessian.py --benchmark-only``. What the proxy does per
Dubbo call: read the body prefix strings, skip the arguments, decode the attachments map;
and what it writes: a typical response.
"""

from __future__ import annotations

from typing import Any

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from proxy.codecs.hessian2 import Decoder, Encoder, HessianList, HessianLong, HessianObject, encode

SERVICE = "com.example.order.OrderService"
ATTACHMENTS = {
    "path": SERVICE,
    "interface": SERVICE,
    "version": "1.0.0",
    "timeout": "3000",
    "dubbo.tag": "feature-login",
}
POJO = HessianObject(
    "com.example.order.Order",
    {
        "id": HessianLong(4711),
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
RESPONSE = HessianObject(
    "com.example.order.OrderResult",
    {
        "code": 0,
        "message": "ok",
        "orderId": HessianLong(1_234_567_890_123),
        "items": HessianList(
            "java.util.ArrayList",
            [
                HessianObject("com.example.order.Item", {"sku": f"sku-{i}", "qty": i, "price": 9.5})
                for i in range(3)
            ],
        ),
    },
)

SHORT = encode("feature-login")
MEDIUM = encode("Ljava/lang/String;Ljava/lang/String;Ljava/lang/String;")
CJK = encode("订单备注请放在门口谢谢")
STRING_16K = encode("x" * 16 * 1024)
CJK_16K = encode("中" * 16 * 1024)
MAP = encode(ATTACHMENTS)
POJO_WIRE = encode(POJO)


def _body() -> bytes:
    enc = Encoder()
    for text in ("2.0.2", SERVICE, "1.0.0", "placeOrder", "Ljava/lang/String;" * 3):
        enc.write(text)
    for arg in ("user-4711", "sku-0815", "note: leave at the door"):
        enc.write(arg)
    enc.write(ATTACHMENTS)
    return enc.getvalue()


BODY = _body()


def _read(wire: bytes) -> Any:
    return Decoder(wire).read()


def _skip(wire: bytes) -> int:
    dec = Decoder(wire)
    dec.skip()
    return dec.pos


VALUES = {
    "short-string-13": SHORT,
    "string-54": MEDIUM,
    "cjk-string-10": CJK,
    "string-16KiB": STRING_16K,
    "cjk-string-16KiB": CJK_16K,
    "attachments-map-5": MAP,
    "pojo-8-fields": POJO_WIRE,
}


@pytest.mark.parametrize("wire", VALUES.values(), ids=VALUES.keys())
def test_decode(benchmark: BenchmarkFixture, wire: bytes) -> None:
    benchmark(_read, wire)


@pytest.mark.parametrize("wire", VALUES.values(), ids=VALUES.keys())
def test_skip(benchmark: BenchmarkFixture, wire: bytes) -> None:
    assert benchmark(_skip, wire) == len(wire)


def test_read_string_short(benchmark: BenchmarkFixture) -> None:
    assert benchmark(lambda: Decoder(SHORT).read_string()) == "feature-login"


def _routing(body: bytes) -> Any:
    """The Hessian part of a Dubbo request's routing decode."""
    dec = Decoder(body)
    for _ in range(5):
        dec.read_string()
    for _ in range(3):
        dec.skip()
    return dec.read()


def test_routing_decode(benchmark: BenchmarkFixture) -> None:
    """5 prefix strings + skip 3 string arguments + decode the 5-entry attachments map."""
    assert benchmark(_routing, BODY)["dubbo.tag"] == "feature-login"


def _response() -> bytes:
    enc = Encoder()
    enc.write_int(4)  # RESPONSE_VALUE_WITH_ATTACHMENTS
    enc.write(RESPONSE)
    enc.write({"dubbo.tag": "feature-login"})
    return enc.getvalue()


def test_encode_response(benchmark: BenchmarkFixture) -> None:
    """A typical response: flag, an object with a list of 3 objects, one attachment."""
    benchmark(_response)


def test_encode_attachments(benchmark: BenchmarkFixture) -> None:
    benchmark(encode, ATTACHMENTS)
