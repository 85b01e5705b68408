"""Errors of the Hessian 2 codec.

Every malformed or disallowed input raises a :class:`DecodeError` subclass, never a bare
``IndexError``, ``struct.error``, ``UnicodeError``, ``RecursionError`` or ``MemoryError``.
``DecodeError`` is a :class:`proxy.errors.BadRequest`: a peer that sends undecodable Hessian
broke the protocol (Dubbo status 40, then close). A codec reading *responses* maps it to
``BadResponse`` itself.
"""

from __future__ import annotations

from proxy.errors import BadRequest, GrpcStatus, LanewayError


class DecodeError(BadRequest):
    """The bytes are not a valid Hessian 2 value (or break a configured limit)."""


class TruncatedError(DecodeError):
    """The value needs more bytes than there are (also: a declared length that lies)."""


class MalformedError(DecodeError):
    """An invalid tag, bad UTF-8, an unknown class definition, type or value reference."""


class UnexpectedTypeError(MalformedError):
    """A typed read (``read_string``, ``read_int``) met a value of another type."""


class LimitExceededError(DecodeError):
    """A configured limit was crossed (depth, class definitions, field count)."""

    grpc_status = GrpcStatus.RESOURCE_EXHAUSTED


class EncodeError(LanewayError):
    """A Python value that has no Hessian form (or nests deeper than the limit)."""
