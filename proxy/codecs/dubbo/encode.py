"""Building Dubbo 2 frames from parts (hessian2 bodies).

The proxy mostly forwards frames it received; these builders serve the frames laneway
writes itself (local error replies, heartbeats, READONLY on drain) and the test peers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from proxy.codecs.dubbo.header import (
    FLAG_EVENT,
    FLAG_REQUEST,
    FLAG_TWO_WAY,
    HESSIAN2,
    build_header,
)
from proxy.codecs.dubbo.response import ResponseFlag
from proxy.codecs.dubbo.version import supports_response_attachments
from proxy.codecs.hessian2 import Encoder
from proxy.errors import DubboStatus

#: The protocol version every Apache Dubbo since 2.6.3 sends (and reads attachments in).
DEFAULT_DUBBO_VERSION = "2.0.2"

#: Body of a READONLY event: the Hessian string "R" (Apache Dubbo's ``READONLY_EVENT``).
READONLY_EVENT = "R"

#: A heartbeat's body: a serialized null (Apache Dubbo's ``HEARTBEAT_EVENT`` is null).
NULL_BODY = b"N"


def _frame(flags: int, request_id: int, body: bytes, status: int = 0) -> bytes:
    header = build_header(flags=flags, status=status, request_id=request_id, body_length=len(body))
    return header + body


def encode_request(
    *,
    request_id: int,
    path: str,
    method: str,
    parameter_types: str = "",
    arguments: Iterable[object] = (),
    attachments: Mapping[str, object] | None = None,
    version: str = "0.0.0",
    dubbo_version: str = DEFAULT_DUBBO_VERSION,
    two_way: bool = True,
) -> bytes:
    """A request frame. ``parameter_types`` is the JVM descriptor of ``arguments``; the
    caller keeps them consistent (``count_parameters(parameter_types) == len(arguments)``)."""
    encoder = Encoder()
    for text in (dubbo_version, path, version, method, parameter_types):
        encoder.write(text)
    for argument in arguments:
        encoder.write(argument)
    encoder.write(dict(attachments or {}))
    flags = FLAG_REQUEST | HESSIAN2 | (FLAG_TWO_WAY if two_way else 0)
    return _frame(flags, request_id, encoder.getvalue())


def _response(
    request_id: int,
    flag: ResponseFlag,
    payload: object,
    attachments: Mapping[str, object] | None,
    dubbo_version: str | None,
) -> bytes:
    # Flags 3..5 only for consumers that know them (Apache Dubbo's isSupportResponseAttachment);
    # older consumers get the plain flag and the attachments are dropped, as Dubbo does.
    with_attachments = attachments is not None and supports_response_attachments(dubbo_version)
    if with_attachments:
        flag = ResponseFlag(flag + 3)
    encoder = Encoder()
    encoder.write(int(flag))
    if flag.base is not ResponseFlag.NULL_VALUE:
        encoder.write(payload)
    if with_attachments:
        encoder.write(dict(attachments or {}))
    return _frame(HESSIAN2, request_id, encoder.getvalue(), status=DubboStatus.OK)


def encode_value_response(
    request_id: int,
    value: object,
    *,
    attachments: Mapping[str, object] | None = None,
    dubbo_version: str | None = DEFAULT_DUBBO_VERSION,
) -> bytes:
    """An OK response carrying ``value`` (flag 2/5 "null value" when it is None).

    ``dubbo_version`` is the *request's* protocol version: it decides whether
    ``attachments`` can be sent (flags 3..5) or are dropped.
    """
    flag = ResponseFlag.NULL_VALUE if value is None else ResponseFlag.VALUE
    return _response(request_id, flag, value, attachments, dubbo_version)


def encode_exception_response(
    request_id: int,
    exception: object,
    *,
    attachments: Mapping[str, object] | None = None,
    dubbo_version: str | None = DEFAULT_DUBBO_VERSION,
) -> bytes:
    """An OK response whose result is a Java exception (usually a ``HessianObject``)."""
    return _response(request_id, ResponseFlag.WITH_EXCEPTION, exception, attachments, dubbo_version)


def encode_error_response(request_id: int, status: int, message: str) -> bytes:
    """A non-OK response (40 BAD_REQUEST, 60 SERVICE_NOT_FOUND...): the body is the message."""
    if status == DubboStatus.OK:
        raise ValueError("an error response needs a status other than 20 (OK)")
    encoder = Encoder()
    encoder.write(message)
    return _frame(HESSIAN2, request_id, encoder.getvalue(), status=status)


def encode_heartbeat_request(request_id: int, *, two_way: bool = True) -> bytes:
    """A heartbeat: an event request whose body is a serialized null."""
    flags = FLAG_REQUEST | FLAG_EVENT | HESSIAN2 | (FLAG_TWO_WAY if two_way else 0)
    return _frame(flags, request_id, NULL_BODY)


def encode_heartbeat_response(request_id: int) -> bytes:
    """The answer to a two-way heartbeat: an OK event response, null body, same id."""
    return _frame(FLAG_EVENT | HESSIAN2, request_id, NULL_BODY, status=DubboStatus.OK)


def encode_readonly_event(request_id: int) -> bytes:
    """READONLY: "stop sending me new calls" (graceful shutdown). One-way, never answered."""
    encoder = Encoder()
    encoder.write(READONLY_EVENT)
    return _frame(FLAG_REQUEST | FLAG_EVENT | HESSIAN2, request_id, encoder.getvalue())
