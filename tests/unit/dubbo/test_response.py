"""Responses: flags 0..5, error statuses, the attachments rule, bad bodies."""

from __future__ import annotations

import pytest

from proxy.codecs.dubbo import (
    ClientConnection,
    Response,
    ResponseFlag,
    ResponseReceived,
    encode_error_response,
    encode_exception_response,
    encode_value_response,
)
from proxy.codecs.hessian2 import Encoder, HessianObject
from proxy.errors import BadResponse, DubboStatus
from tests.unit.dubbo.frames import raw_frame, request


def _receive(frame: bytes) -> Response:
    conn = ClientConnection()
    conn.send_request(request())  # id 1 in flight
    (event,) = conn.receive_data(frame)
    assert isinstance(event, ResponseReceived)
    return event.response


def _ok(*values: object) -> bytes:
    encoder = Encoder()
    for value in values:
        encoder.write(value)
    return raw_frame(encoder.getvalue(), flags=2, status=20)


EXCEPTION = HessianObject("java.lang.IllegalStateException", {"detailMessage": "no"})


@pytest.mark.parametrize(
    ("values", "flag", "value", "exception", "attachments"),
    [
        ((0, EXCEPTION), ResponseFlag.WITH_EXCEPTION, None, EXCEPTION, {}),
        ((1, "v"), ResponseFlag.VALUE, "v", None, {}),
        ((2,), ResponseFlag.NULL_VALUE, None, None, {}),
        (
            (3, EXCEPTION, {"a": "b"}),
            ResponseFlag.WITH_EXCEPTION_WITH_ATTACHMENTS,
            None,
            EXCEPTION,
            {"a": "b"},
        ),
        ((4, [1, 2], {"a": "b"}), ResponseFlag.VALUE_WITH_ATTACHMENTS, [1, 2], None, {"a": "b"}),
        ((5, {"a": "b"}), ResponseFlag.NULL_VALUE_WITH_ATTACHMENTS, None, None, {"a": "b"}),
    ],
)
def test_every_flag_decodes(
    values: tuple[object, ...],
    flag: ResponseFlag,
    value: object,
    exception: object,
    attachments: dict[str, object],
) -> None:
    frame = _ok(*values)
    assert frame[16] == 0x90 + flag  # the flag is a compact Hessian int
    body = _receive(frame).body()
    assert body.flag is flag
    assert body.value == value
    if exception is None:
        assert body.exception is None
    else:
        assert isinstance(body.exception, HessianObject)
        assert body.exception.type_name == "java.lang.IllegalStateException"
    assert dict(body.attachments) == attachments


@pytest.mark.parametrize(
    ("version", "flag"),
    [("2.0.2", 4), ("2.0.99", 4), ("2.0.0", 1), ("2.7.8", 1), (None, 1)],
)
def test_attachments_only_for_consumers_that_read_them(version: str | None, flag: int) -> None:
    frame = encode_value_response(1, "v", attachments={"k": "v"}, dubbo_version=version)
    assert frame[16] == 0x90 + flag
    body = _receive(frame).body()
    assert body.value == "v"


def test_null_and_exception_encodings() -> None:
    assert _receive(encode_value_response(1, None)).body().flag is ResponseFlag.NULL_VALUE
    with_attachments = encode_value_response(1, None, attachments={})
    assert _receive(with_attachments).body().flag is ResponseFlag.NULL_VALUE_WITH_ATTACHMENTS
    body = _receive(encode_exception_response(1, EXCEPTION, attachments={"x": "y"})).body()
    assert body.flag is ResponseFlag.WITH_EXCEPTION_WITH_ATTACHMENTS
    assert body.attachments == {"x": "y"}


def test_error_status_carries_a_message() -> None:
    response = _receive(encode_error_response(1, DubboStatus.SERVICE_NOT_FOUND, "no provider"))
    assert response.status == 60 and not response.ok
    body = response.body()
    assert body.flag is None
    assert body.error_message == "no provider"


def test_error_response_needs_an_error_status() -> None:
    with pytest.raises(ValueError, match="status other than 20"):
        encode_error_response(1, DubboStatus.OK, "fine")


@pytest.mark.parametrize(
    "values",
    [(6, "v"), (-1,), ("1", "v"), (True, "v"), (None,), (1,), (4, "v", "not a map"), (2, "extra")],
)
def test_bad_bodies_are_bad_responses_carrying_the_id(values: tuple[object, ...]) -> None:
    response = _receive(_ok(*values))
    with pytest.raises(BadResponse) as info:
        response.body()
    assert info.value.request_id == 1
    assert info.value.dubbo_status == DubboStatus.BAD_RESPONSE


def test_forwarding_does_not_decode_the_body() -> None:
    """Pass-through: a response with garbage in its body is still framed and forwardable."""
    response = _receive(raw_frame(b"\xff\xfe", flags=2, status=20))
    assert response.with_request_id(5)[4:12] == (5).to_bytes(8, "big")
