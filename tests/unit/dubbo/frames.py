"""Frame factory for the Dubbo codec tests (in the spirit of h2's tests/helpers.py)."""

from __future__ import annotations

from collections.abc import Mapping

from proxy.codecs.dubbo import (
    FLAG_EVENT,
    FLAG_REQUEST,
    FLAG_TWO_WAY,
    HESSIAN2,
    build_header,
    encode_request,
)

SERVICE = "com.example.DemoService"

#: The attachments a typical Apache Dubbo consumer sends (5 entries).
TYPICAL_ATTACHMENTS: dict[str, object] = {
    "path": SERVICE,
    "interface": SERVICE,
    "version": "1.0.0",
    "group": "blue",
    "dubbo.tag": "feature-login",
}


def request(
    request_id: int = 1,
    *,
    method: str = "sayHello",
    types: str = "Ljava/lang/String;",
    args: tuple[object, ...] = ("world",),
    attachments: Mapping[str, object] | None = None,
    version: str = "1.0.0",
    two_way: bool = True,
) -> bytes:
    return encode_request(
        request_id=request_id,
        path=SERVICE,
        method=method,
        parameter_types=types,
        arguments=args,
        attachments=TYPICAL_ATTACHMENTS if attachments is None else attachments,
        version=version,
        two_way=two_way,
    )


def raw_frame(
    body: bytes,
    *,
    request_id: int = 1,
    flags: int = FLAG_REQUEST | FLAG_TWO_WAY | HESSIAN2,
    status: int = 0,
    body_length: int | None = None,
) -> bytes:
    """A frame with any body and flags (``body_length`` may lie)."""
    length = len(body) if body_length is None else body_length
    return build_header(flags=flags, status=status, request_id=request_id, body_length=length) + (
        body
    )


def event(body: bytes, *, request_id: int = 1, two_way: bool = True, request: bool = True) -> bytes:
    flags = FLAG_EVENT | HESSIAN2
    if request:
        flags |= FLAG_REQUEST
    if two_way:
        flags |= FLAG_TWO_WAY
    return raw_frame(body, request_id=request_id, flags=flags, status=0 if request else 20)
