"""The attachments rewrite is memoised per (map bytes, updates): same answers, bounded."""

from __future__ import annotations

from proxy.codecs.dubbo import DEFAULT_LIMITS, parse_header, parse_request
from proxy.codecs.dubbo import request as request_module
from proxy.codecs.dubbo.encode import encode_request


def _request(request_id: int, attachments: dict[str, object]) -> request_module.Request:
    frame = encode_request(
        request_id=request_id,
        path="com.acme.S",
        method="m",
        parameter_types="Ljava/lang/String;",
        arguments=["x"],
        attachments=attachments,
    )
    return parse_request(parse_header(frame[:16]), frame, DEFAULT_LIMITS)


def test_memoised_rewrite_equals_a_fresh_one_for_every_request_id() -> None:
    request_module._REWRITES.clear()
    first = _request(1, {"a": "1"}).with_attachments({"dubbo.tag": "f1"})
    second = _request(2, {"a": "1"}).with_attachments({"dubbo.tag": "f1"})
    assert len(request_module._REWRITES) == 1
    assert first[16:] == second[16:]  # same body
    assert parse_header(second[:16]).request_id == 2
    assert dict(_reparse(second).attachments) == {"a": "1", "dubbo.tag": "f1"}
    other_tag = _request(3, {"a": "1"}).with_attachments({"dubbo.tag": "f2"})
    assert dict(_reparse(other_tag).attachments) == {"a": "1", "dubbo.tag": "f2"}


def test_the_memo_is_bounded() -> None:
    request_module._REWRITES.clear()
    for i in range(request_module.MAX_CACHED_REWRITES + 10):
        _request(1, {"n": str(i)}).with_attachments({"dubbo.tag": "f1"})
    assert len(request_module._REWRITES) <= request_module.MAX_CACHED_REWRITES


def _reparse(frame: bytes) -> request_module.Request:
    return parse_request(parse_header(frame[:16]), frame, DEFAULT_LIMITS)


def test_per_call_updates_are_not_memoised() -> None:
    request_module._REWRITES.clear()
    for i in range(20):
        frame = _request(1, {"a": "1"}).with_attachments(
            {"traceparent": f"00-{i:032x}-{i:016x}-01"}, memoise=False
        )
        assert _reparse(frame).attachments["traceparent"] == f"00-{i:032x}-{i:016x}-01"
    assert not request_module._REWRITES
