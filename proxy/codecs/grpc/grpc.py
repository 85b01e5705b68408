"""gRPC over HTTP/2 (grpc/grpc doc/PROTOCOL-HTTP2.md): message framing, deadlines, status.

Pure functions and two small incremental readers; nothing here knows about streams or
sockets. Triple (Dubbo 3) rides the same wire format and adds ``tri-service-version`` and
``tri-service-group`` to name the service.
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Iterable, Sequence
from urllib.parse import quote, unquote_to_bytes

from proxy.errors import BadRequest, GrpcStatus, RequestTooLarge

#: gRPC GRPC_DEFAULT_MAX_RECV_MESSAGE_LENGTH: 4 MiB per message, either direction (G5).
MAX_MESSAGE_SIZE = 4 * 1024 * 1024
#: PROTOCOL-HTTP2.md: TimeoutValue is at most 8 ASCII digits.
MAX_TIMEOUT_DIGITS = 8
#: Proposed cap (TESTS.md §8): a forwarded deadline is never longer than 300 s.
MAX_FORWARDED_TIMEOUT_NS = 300 * 1_000_000_000
#: Length of the message prefix: 1 compressed-flag byte + 4 length bytes.
PREFIX_SIZE = 5

_PREFIX = struct.Struct(">BL")
#: PROTOCOL-HTTP2.md TimeoutUnit -> nanoseconds.
TIMEOUT_UNITS_NS = {
    b"H": 3600 * 1_000_000_000,
    b"M": 60 * 1_000_000_000,
    b"S": 1_000_000_000,
    b"m": 1_000_000,
    b"u": 1_000,
    b"n": 1,
}
# Finest first: formatting picks the finest unit whose value fits in 8 digits.
_FORMAT_UNITS = ((b"n", 1), (b"u", 1_000), (b"m", 1_000_000), (b"S", 1_000_000_000))
_MAX_TIMEOUT_VALUE = 10**MAX_TIMEOUT_DIGITS - 1

GrpcHeaders = Sequence[tuple[bytes, bytes]]


class BadGrpcTimeout(BadRequest):
    """A malformed ``grpc-timeout`` header (G4)."""

    grpc_status = GrpcStatus.INTERNAL
    close = False


class MessageTooLarge(RequestTooLarge):
    """A gRPC message prefix declares more than the limit (G5): RESOURCE_EXHAUSTED."""

    close = False


class BadPath(BadRequest):
    """``:path`` is not ``/{service}/{method}``."""

    grpc_status = GrpcStatus.UNIMPLEMENTED
    close = False


# --- grpc-timeout --------------------------------------------------------------------------


def parse_timeout(value: bytes) -> int:
    """Parse a ``grpc-timeout`` value into nanoseconds, strictly.

    1 to 8 ASCII digits followed by exactly one unit of ``H M S m u n``. Anything else
    (signs, spaces, 9 digits, unknown or missing unit) raises :class:`BadGrpcTimeout`;
    a value is never re-read with another unit.
    """
    digits, unit = value[:-1], value[-1:]
    scale = TIMEOUT_UNITS_NS.get(unit)
    if (
        scale is None
        or not 1 <= len(digits) <= MAX_TIMEOUT_DIGITS
        or not digits.isdigit()
        or not digits.isascii()
    ):
        raise BadGrpcTimeout(f"malformed grpc-timeout {value!r}")
    return int(digits) * scale


def format_timeout(remaining_ns: int, cap_ns: int = MAX_FORWARDED_TIMEOUT_NS) -> bytes:
    """Format a remaining deadline for the upstream, rounded up, capped at ``cap_ns``.

    The finest unit whose value fits in 8 digits is used, so rounding up adds at most
    one unit of that resolution. A deadline already passed formats as ``0n``.
    """
    ns = min(max(remaining_ns, 0), cap_ns)
    for unit, scale in _FORMAT_UNITS:
        value = -(-ns // scale)
        if value <= _MAX_TIMEOUT_VALUE:
            return str(value).encode() + unit
    # Only reachable with a cap beyond ~3 years of seconds; minutes still fit 8 digits.
    return str(-(-ns // TIMEOUT_UNITS_NS[b"M"])).encode() + b"M"


# --- message framing ------------------------------------------------------------------------


def encode_message(payload: bytes, compressed: bool = False) -> bytes:
    """One length-prefixed gRPC message."""
    return _PREFIX.pack(1 if compressed else 0, len(payload)) + payload


@dataclasses.dataclass(frozen=True, slots=True)
class Message:
    """One decoded gRPC message."""

    compressed: bool
    payload: bytes


class MessageScanner:
    """Checks message sizes in a relayed DATA stream without buffering any payload.

    A proxy forwards DATA as it comes; this only walks the 5-byte prefixes, so the
    memory held is at most 4 bytes of a split prefix. ``feed`` raises
    :class:`MessageTooLarge` as soon as a prefix declares more than ``max_size`` (G5).
    """

    __slots__ = ("_prefix", "_remaining", "max_size", "messages")

    def __init__(self, max_size: int = MAX_MESSAGE_SIZE) -> None:
        self.max_size = max_size
        #: Complete message prefixes seen so far.
        self.messages = 0
        self._remaining = 0
        self._prefix = b""

    def feed(self, data: bytes) -> None:
        """Account for ``data``, the next bytes of the stream."""
        end = len(data)
        if not self._remaining and not self._prefix and end >= PREFIX_SIZE:
            # The common case: DATA holding exactly one whole message.
            flag, length = _PREFIX.unpack_from(data, 0)
            if PREFIX_SIZE + length == end:
                _check_prefix(flag, length, self.max_size)
                self.messages += 1
                return
        pos = 0
        while pos < end:
            if self._remaining:
                take = min(self._remaining, end - pos)
                self._remaining -= take
                pos += take
                continue
            need = PREFIX_SIZE - len(self._prefix)
            self._prefix += data[pos : pos + need]
            pos += need
            if len(self._prefix) < PREFIX_SIZE:
                return
            flag, length = _PREFIX.unpack(self._prefix)
            self._prefix = b""
            _check_prefix(flag, length, self.max_size)
            self.messages += 1
            self._remaining = length

    @property
    def at_boundary(self) -> bool:
        """True when the bytes seen so far end exactly after a whole message."""
        return not self._remaining and not self._prefix


class MessageDecoder:
    """Splits a DATA stream into whole messages (for the local services).

    Holds at most one partial message, which is never larger than ``max_size``: an
    oversized prefix raises :class:`MessageTooLarge` before any of its payload is kept.
    """

    __slots__ = ("_buf", "max_size")

    def __init__(self, max_size: int = MAX_MESSAGE_SIZE) -> None:
        self.max_size = max_size
        self._buf = b""

    def feed(self, data: bytes) -> list[Message]:
        """Add ``data``; return the messages it completed."""
        buf = self._buf + data if self._buf else data
        out: list[Message] = []
        pos = 0
        while len(buf) - pos >= PREFIX_SIZE:
            flag, length = _PREFIX.unpack_from(buf, pos)
            _check_prefix(flag, length, self.max_size)
            if len(buf) - pos - PREFIX_SIZE < length:
                break
            start = pos + PREFIX_SIZE
            out.append(Message(flag == 1, bytes(buf[start : start + length])))
            pos = start + length
        self._buf = bytes(buf[pos:])
        return out

    @property
    def buffered(self) -> int:
        """Bytes held for an incomplete message."""
        return len(self._buf)


def _check_prefix(flag: int, length: int, max_size: int) -> None:
    if flag > 1:
        raise BadRequest(f"gRPC message compressed-flag {flag}")
    if length > max_size:
        raise MessageTooLarge(f"gRPC message of {length} bytes > {max_size}")


# --- status, trailers, paths ------------------------------------------------------------------

# PROTOCOL-HTTP2.md: grpc-message is percent-encoded outside printable ASCII, and '%'.
_MESSAGE_SAFE = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) != "%")


def encode_grpc_message(message: str) -> bytes:
    """Percent-encode a status message for the ``grpc-message`` trailer."""
    return quote(message, safe=_MESSAGE_SAFE).encode("ascii")


def decode_grpc_message(value: bytes) -> str:
    """Decode ``grpc-message``; invalid escapes are kept as-is (the spec's advice)."""
    return unquote_to_bytes(value).decode("utf-8", "replace")


def status_trailers(status: int, message: str = "") -> list[tuple[bytes, bytes]]:
    """Trailers ending a call with ``status`` (and ``grpc-message`` when given)."""
    out = [(b"grpc-status", str(int(status)).encode())]
    if message:
        out.append((b"grpc-message", encode_grpc_message(message)))
    return out


def trailers_only(status: int, message: str = "") -> list[tuple[bytes, bytes]]:
    """A Trailers-Only response (one HEADERS with END_STREAM), e.g. a local error reply."""
    return [
        (b":status", b"200"),
        (b"content-type", b"application/grpc"),
        *status_trailers(status, message),
    ]


def parse_status(trailers: Iterable[tuple[bytes, bytes]]) -> tuple[int, str]:
    """``(grpc-status, grpc-message)`` from trailers; a missing/invalid status is UNKNOWN."""
    status = int(GrpcStatus.UNKNOWN)
    message = ""
    for name, value in trailers:
        if name == b"grpc-status":
            status = int(value) if value.isdigit() and len(value) <= 2 else GrpcStatus.UNKNOWN
        elif name == b"grpc-message":
            message = decode_grpc_message(value)
    return status, message


@dataclasses.dataclass(frozen=True, slots=True)
class CallInfo:
    """What routing needs from a request header block."""

    service: str
    method: str
    #: Triple ``tri-service-version`` (None for plain gRPC).
    version: str | None
    #: Triple ``tri-service-group`` (None for plain gRPC).
    group: str | None
    #: The caller's deadline in nanoseconds, None when it sent no ``grpc-timeout``.
    timeout_ns: int | None


def split_path(path: bytes) -> tuple[str, str]:
    """``/{service}/{method}`` -> ``(service, method)``; anything else raises BadPath."""
    parts = path.split(b"/")
    if len(parts) != 3 or parts[0] or not parts[1] or not parts[2]:
        raise BadPath(f"malformed gRPC :path {path!r}")
    try:
        return parts[1].decode("ascii"), parts[2].decode("ascii")
    except UnicodeDecodeError as exc:
        raise BadPath(f"non-ASCII gRPC :path {path!r}") from exc


def call_info(headers: GrpcHeaders) -> CallInfo:
    """Extract service, method, Triple version/group and deadline from request headers.

    Raises :class:`BadPath` or :class:`BadGrpcTimeout`. Header names are lowercase (the
    HTTP/2 codec validated them).
    """
    path = b""
    version: str | None = None
    group: str | None = None
    timeout: int | None = None
    for name, value in headers:
        if name == b":path":
            path = value
        elif name == b"grpc-timeout":
            timeout = parse_timeout(value)
        elif name == b"tri-service-version":
            version = value.decode("latin-1")
        elif name == b"tri-service-group":
            group = value.decode("latin-1")
    service, method = split_path(path)
    return CallInfo(service, method, version, group, timeout)
