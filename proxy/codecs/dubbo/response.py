"""A Dubbo 2 response: header fields eager, body decoded only when someone asks.

The proxy forwards a provider's response as it arrived (request id rewritten back to the
consumer's), so nothing in the body is decoded on the hot path. :meth:`Response.body` decodes
it for tests, interop and error reporting. Body, status 20 (OK): a Hessian int response-type
flag (:class:`ResponseFlag`) then the value and/or exception and/or attachments map it
announces. Any other status: one Hessian string, the error message.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from proxy.codecs.dubbo.header import HEADER_LENGTH, Header, rewrite_request_id
from proxy.codecs.dubbo.limits import DubboLimits
from proxy.codecs.hessian2 import DecodeError, Decoder
from proxy.errors import BadResponse, DubboStatus


class ResponseFlag(enum.IntEnum):
    """The response-type flag opening an OK response body (a Hessian int, 0x90..0x95)."""

    WITH_EXCEPTION = 0
    VALUE = 1
    NULL_VALUE = 2
    WITH_EXCEPTION_WITH_ATTACHMENTS = 3
    VALUE_WITH_ATTACHMENTS = 4
    NULL_VALUE_WITH_ATTACHMENTS = 5

    @property
    def has_attachments(self) -> bool:
        return self >= ResponseFlag.WITH_EXCEPTION_WITH_ATTACHMENTS

    @property
    def base(self) -> ResponseFlag:
        """The flag without attachments (3 -> 0, 4 -> 1, 5 -> 2)."""
        return ResponseFlag(self % 3)


@dataclass(frozen=True, slots=True)
class ResponseBody:
    """A decoded response body.

    OK responses: ``flag`` is set; ``value`` holds the result (flags 1/4), ``exception`` the
    serialized Java throwable (flags 0/3), ``attachments`` the map of flags 3..5 (else empty).
    Other statuses: ``flag`` is None and ``error_message`` holds the provider's text.
    """

    flag: ResponseFlag | None
    value: object = None
    exception: object = None
    attachments: Mapping[str, object] = field(default_factory=dict)
    error_message: str | None = None


class _LazyBody:
    __slots__ = ("_error", "_limits", "_value")

    def __init__(self, limits: DubboLimits) -> None:
        self._limits = limits
        self._value: ResponseBody | None = None
        self._error: BadResponse | None = None


@dataclass(slots=True, eq=False)
class Response:
    """One response frame, ``frame`` being the exact bytes received (header included)."""

    request_id: int
    status: int
    serialization_id: int
    frame: bytes
    _lazy: _LazyBody = field(repr=False)

    @property
    def ok(self) -> bool:
        return self.status == DubboStatus.OK

    def with_request_id(self, request_id: int) -> bytes:
        """This frame under another request id, body untouched."""
        return rewrite_request_id(self.frame, request_id)

    def body(self) -> ResponseBody:
        """Decode the body (once). Raises ``BadResponse`` carrying the request id."""
        lazy = self._lazy
        if lazy._value is not None:
            return lazy._value
        if lazy._error is not None:
            raise lazy._error
        try:
            lazy._value = self._decode(lazy._limits)
        except BadResponse as exc:
            lazy._error = exc
            raise
        return lazy._value

    def _fail(self, message: str) -> BadResponse:
        return BadResponse(f"response {self.request_id}: {message}", request_id=self.request_id)

    def _decode(self, limits: DubboLimits) -> ResponseBody:
        decoder = Decoder(self.frame, HEADER_LENGTH, len(self.frame), limits.hessian)
        try:
            if not self.ok:
                message = decoder.read_string()
                result = ResponseBody(flag=None, error_message=message or "")
            else:
                result = self._decode_ok(decoder)
            if not decoder.at_end():
                raise self._fail("bytes after the response body")
        except DecodeError as exc:
            raise self._fail(f"undecodable body: {exc}") from exc
        return result

    def _decode_ok(self, decoder: Decoder) -> ResponseBody:
        raw_flag = decoder.read()
        if isinstance(raw_flag, bool) or not isinstance(raw_flag, int) or not 0 <= raw_flag <= 5:
            raise self._fail(f"response-type flag {raw_flag!r} is not an int in 0..5")
        flag = ResponseFlag(int(raw_flag))
        value: object = None
        exception: object = None
        if flag.base is ResponseFlag.VALUE:
            value = decoder.read()
        elif flag.base is ResponseFlag.WITH_EXCEPTION:
            exception = decoder.read()
        attachments: dict[str, object] = {}
        if flag.has_attachments:
            raw = decoder.read()
            if not isinstance(raw, dict) or not all(isinstance(k, str) for k in raw):
                raise self._fail("response attachments are not a map with string keys")
            attachments = raw
        return ResponseBody(flag=flag, value=value, exception=exception, attachments=attachments)


def parse_response(header: Header, frame: bytes, limits: DubboLimits) -> Response:
    """Wrap a (non-event) response frame; nothing is decoded yet."""
    return Response(
        request_id=header.request_id,
        status=header.status,
        serialization_id=header.serialization_id,
        frame=frame,
        _lazy=_LazyBody(limits),
    )
