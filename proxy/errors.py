"""laneway's error types. Each carries its wire meaning (DESIGN.md §6).

One mapping, used everywhere: a local reply is built from the error's ``dubbo_status`` and
``grpc_status``, never from an if-ladder at the call site.
"""

from __future__ import annotations

import enum


class DubboStatus(enum.IntEnum):
    """Response status byte of a Dubbo 2 response header."""

    OK = 20
    CLIENT_TIMEOUT = 30
    SERVER_TIMEOUT = 31
    CHANNEL_INACTIVE = 35
    BAD_REQUEST = 40
    BAD_RESPONSE = 50
    SERVICE_NOT_FOUND = 60
    SERVICE_ERROR = 70
    SERVER_ERROR = 80
    CLIENT_ERROR = 90
    SERVER_THREADPOOL_EXHAUSTED_ERROR = 100


class GrpcStatus(enum.IntEnum):
    """gRPC status codes (grpc/grpc doc/statuscodes.md)."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


class LanewayError(Exception):
    """Base of every error laneway raises on purpose.

    ``dubbo_status`` / ``grpc_status`` say what to answer the caller; ``close`` says whether
    the connection must be closed after answering (the peer broke the protocol).
    """

    dubbo_status: DubboStatus = DubboStatus.SERVER_ERROR
    grpc_status: GrpcStatus = GrpcStatus.INTERNAL
    close: bool = False

    def __init__(self, message: str, *, request_id: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        # The Dubbo request id the error belongs to, when the frame header was parsed: the
        # caller answers that id before closing. None when unknown (bad magic, telnet text).
        self.request_id = request_id


class BadRequest(LanewayError):
    """Malformed or disallowed request: answer 40 / INTERNAL and close the connection."""

    dubbo_status = DubboStatus.BAD_REQUEST
    grpc_status = GrpcStatus.INTERNAL
    close = True


class RequestTooLarge(BadRequest):
    """A declared size exceeds a configured limit."""

    grpc_status = GrpcStatus.RESOURCE_EXHAUSTED


class NoProvider(LanewayError):
    """No such service, or no provider in any lane the call may use."""

    dubbo_status = DubboStatus.SERVICE_NOT_FOUND
    grpc_status = GrpcStatus.UNAVAILABLE


class UnknownService(NoProvider):
    grpc_status = GrpcStatus.UNIMPLEMENTED


class UpstreamTimeout(LanewayError):
    dubbo_status = DubboStatus.SERVER_TIMEOUT
    grpc_status = GrpcStatus.DEADLINE_EXCEEDED


class UpstreamDied(LanewayError):
    dubbo_status = DubboStatus.SERVER_ERROR
    grpc_status = GrpcStatus.UNAVAILABLE


class Overloaded(LanewayError):
    dubbo_status = DubboStatus.SERVER_THREADPOOL_EXHAUSTED_ERROR
    grpc_status = GrpcStatus.RESOURCE_EXHAUSTED


class BadResponse(LanewayError):
    """The upstream sent garbage."""

    dubbo_status = DubboStatus.BAD_RESPONSE
    grpc_status = GrpcStatus.INTERNAL


class PolicyRejected(LanewayError):
    """A well-formed request that policy forbids (e.g. generic invoke with nativejava)."""

    dubbo_status = DubboStatus.SERVICE_ERROR
    grpc_status = GrpcStatus.PERMISSION_DENIED
