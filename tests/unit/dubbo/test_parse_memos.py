"""The request parse's memos: the prefix per connection, the attachments view per map bytes.
Each must answer exactly what a fresh parse answers, and stay bounded."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from proxy.codecs.dubbo import (
    DEFAULT_LIMITS,
    DubboLimits,
    RequestReceived,
    ServerConnection,
    parse_header,
    parse_request,
)
from proxy.codecs.dubbo import request as request_module
from proxy.codecs.dubbo.encode import encode_request
from proxy.errors import BadRequest, RequestTooLarge


def _frame(
    request_id: int = 1,
    *,
    method: str = "sayHello",
    arguments: tuple[object, ...] = ("world",),
    attachments: Mapping[str, object] | None = None,
    version: str = "1.0.0",
) -> bytes:
    return encode_request(
        request_id=request_id,
        path="com.acme.demo.GreeterService",
        method=method,
        parameter_types="Ljava/lang/String;" * len(arguments),
        arguments=list(arguments),
        attachments={"interface": "com.acme.demo.GreeterService"}
        if attachments is None
        else attachments,
        version=version,
    )


def _fresh(frame: bytes, limits: DubboLimits = DEFAULT_LIMITS) -> request_module.Request:
    return parse_request(parse_header(frame[:16]), frame, limits)


def _received(conn: ServerConnection, frame: bytes) -> request_module.Request:
    (event,) = conn.receive_data(frame)
    assert isinstance(event, RequestReceived)
    return event.request


def _fields(request: request_module.Request) -> tuple[object, ...]:
    return (
        request.request_id,
        request.dubbo_version,
        request.path,
        request.version,
        request.method,
        request.parameter_types,
        dict(request.attachments),
    )


def test_a_remembered_prefix_parses_like_a_fresh_one() -> None:
    conn = ServerConnection()
    frames = [
        _frame(1, arguments=("a",)),
        _frame(2, arguments=("a much longer argument " * 20,)),  # same prefix, other args
        _frame(3, method="sayBye"),  # another method: parsed afresh
        _frame(4, method="sayHello", arguments=("x", "y")),  # other parameter types
        _frame(5, version=""),  # no version: a null where the memo holds a string
        _frame(6),
    ]
    for frame in frames:
        assert _fields(_received(conn, frame)) == _fields(_fresh(frame))


def test_a_prefix_memo_never_serves_a_longer_prefix() -> None:
    """A method whose name extends the remembered one must not match its bytes."""
    conn = ServerConnection()
    _received(conn, _frame(1, method="say"))
    got = _received(conn, _frame(2, method="sayHello"))
    assert got.method == "sayHello"


def test_the_same_small_scalar_map_shares_one_read_only_view() -> None:
    request_module._DECODED.clear()
    first = _fresh(_frame(1, arguments=("a",)))
    second = _fresh(_frame(2, arguments=("b",)))
    assert first.attachments is second.attachments
    assert first.attachments_memoised and second.attachments_memoised
    with pytest.raises(TypeError):
        first.attachments["x"] = "y"  # type: ignore[index]
    other = _fresh(_frame(3, attachments={"interface": "other"}))
    assert other.attachments is not first.attachments
    assert other.attachments["interface"] == "other"


def test_maps_that_may_depend_on_the_stream_are_not_shared() -> None:
    request_module._DECODED.clear()
    # A list takes a slot in the value-ref table: the map's meaning depends on its place.
    with_object = _frame(1, attachments={"ctx": ["u1", "u2"], "interface": "x"})
    assert not _fresh(with_object).attachments_memoised
    assert not _fresh(with_object).attachments_memoised  # decoded again, never shared
    assert not request_module._DECODED


def test_large_maps_are_not_shared() -> None:
    request_module._DECODED.clear()
    big = {"k": "v" * request_module.MAX_MEMOISED_MAP_BYTES}
    request = _fresh(_frame(1, attachments=big))
    assert request.attachments["k"] == big["k"]
    assert not request.attachments_memoised
    assert not request_module._DECODED


def test_a_shared_view_is_checked_again_under_other_limits() -> None:
    request_module._DECODED.clear()
    attachments = {f"k{i}": "v" for i in range(5)}
    assert len(_fresh(_frame(1, attachments=attachments)).attachments) == 5
    strict = DubboLimits(max_attachments=4)
    with pytest.raises(RequestTooLarge):
        _fresh(_frame(2, attachments=attachments), strict).attachments  # noqa: B018


def test_the_view_memo_is_bounded() -> None:
    request_module._DECODED.clear()
    for i in range(request_module.MAX_CACHED_ATTACHMENTS + 10):
        _fresh(_frame(1, attachments={"n": str(i)})).attachments  # noqa: B018
    assert len(request_module._DECODED) <= request_module.MAX_CACHED_ATTACHMENTS


def test_a_rewritten_map_serves_every_request_sharing_the_view() -> None:
    request_module._DECODED.clear()
    first = _fresh(_frame(1, arguments=("a",)))
    second = _fresh(_frame(2, arguments=("bb",)))
    new_map = first.rewritten_attachments({"dubbo.tag": "f1"})
    out = second.with_attachments_map(new_map)
    assert out == second.with_attachments({"dubbo.tag": "f1"})
    again = _fresh(out)
    assert again.request_id == 2
    assert dict(again.attachments) == {
        "interface": "com.acme.demo.GreeterService",
        "dubbo.tag": "f1",
    }


def test_a_malformed_map_still_fails_after_a_good_one_was_shared() -> None:
    request_module._DECODED.clear()
    good = _frame(1)
    _fresh(good).attachments  # noqa: B018
    bad = good[:-1] + b"\x00"  # the map's end marker replaced: undecodable
    with pytest.raises(BadRequest):
        _fresh(bad).attachments  # noqa: B018
