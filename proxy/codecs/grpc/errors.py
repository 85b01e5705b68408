"""HTTP/2 error codes and the codec's error types.

Each error carries the RFC 9113 §7 code to send: a connection error becomes a GOAWAY,
a stream error becomes a RST_STREAM. Malformed frames and header blocks raise these
directly (:mod:`proxy.codecs.grpc.frames`, :mod:`proxy.codecs.grpc.hpack_in`,
:mod:`proxy.codecs.grpc.headers`).
"""

from __future__ import annotations

import enum

from proxy.errors import BadRequest, LanewayError


class ErrorCode(enum.IntEnum):
    """RFC 9113 §7 error codes."""

    NO_ERROR = 0x0
    PROTOCOL_ERROR = 0x1
    INTERNAL_ERROR = 0x2
    FLOW_CONTROL_ERROR = 0x3
    SETTINGS_TIMEOUT = 0x4
    STREAM_CLOSED = 0x5
    FRAME_SIZE_ERROR = 0x6
    REFUSED_STREAM = 0x7
    CANCEL = 0x8
    COMPRESSION_ERROR = 0x9
    CONNECT_ERROR = 0xA
    ENHANCE_YOUR_CALM = 0xB
    INADEQUATE_SECURITY = 0xC
    HTTP_1_1_REQUIRED = 0xD


class H2ConnectionError(BadRequest):
    """The peer broke the protocol for the whole connection: send GOAWAY(code), then close."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code


class H2StreamError(LanewayError):
    """The peer broke the protocol on one stream: send RST_STREAM(code); the connection lives."""

    def __init__(self, stream_id: int, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.stream_id = stream_id
        self.code = code


class H2UsageError(LanewayError):
    """The caller (the proxy) misused the codec, e.g. sent DATA on a closed stream.

    A bug on our side, never caused by the peer: nothing is queued on the wire.
    """
