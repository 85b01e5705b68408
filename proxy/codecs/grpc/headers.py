"""HTTP/2 header validation (RFC 9113 §8.2, §8.3).

Header blocks are decoded by :class:`proxy.codecs.grpc.hpack_in.HeaderDecoder`, which
enforces the header list size limit *while* decoding (H4) and raises connection errors
(:class:`HeaderListTooLarge`, COMPRESSION_ERROR). A malformed but fully decoded list is a
stream error raised here, so the connection (whose HPACK state stays in sync) keeps working.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from proxy.codecs.grpc.errors import ErrorCode, H2ConnectionError, H2StreamError

# RFC 9110 §5.6.2 tchar, lowercase only (RFC 9113 §8.2.1: uppercase names are malformed).
_BAD_NAME = re.compile(rb"[^!#$%&'*+\-.^_`|~0-9a-z]").search
# RFC 9113 §8.2.1: no NUL, CR or LF anywhere; no leading or trailing space or tab.
_BAD_VALUE = re.compile(rb"[\x00\r\n]|^[ \t]|[ \t]$").search
#: RFC 9113 §8.2.2: connection-specific fields are malformed in HTTP/2.
CONNECTION_SPECIFIC = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade"}
)
#: Fields already checked character by character (validity is a pure function of the field).
_checked: set[tuple[bytes, bytes]] = set()
#: Bound of that cache; when full it is simply cleared.
MAX_CHECKED_FIELDS = 4_096
REQUEST_PSEUDO = frozenset({b":method", b":scheme", b":path", b":authority", b":protocol"})
RESPONSE_PSEUDO = frozenset({b":status"})

# What a header block is, for validation.
REQUEST = 0
RESPONSE = 1
TRAILERS = 2


class HeaderListTooLarge(H2ConnectionError):
    """A header block inflated beyond MAX_HEADER_LIST_SIZE (H4 hpack bomb, H11 65 KiB list)."""


def validate_once(
    checks: dict[int, int | None] | None,
    headers: Sequence[tuple[bytes, bytes]],
    kind: int,
    stream_id: int,
    max_count: int,
) -> int | None:
    """:func:`validate`, remembered in ``checks`` (per ``kind``) when given.

    ``checks`` belongs to one decoded header list (a memo entry of the connection's
    decoder, :attr:`~proxy.codecs.grpc.hpack_in.MemoEntry.checks`) and lives as long as
    it; ``max_count`` is fixed per connection. Validity is a pure function of (fields,
    kind, max_count), so only successes are remembered: a malformed list raises, with the
    right stream id, every time it arrives.
    """
    if checks is None:
        return validate(headers, kind, stream_id, max_count)
    if kind in checks:
        return checks[kind]
    content_length = validate(headers, kind, stream_id, max_count)
    checks[kind] = content_length
    return content_length


def validate(
    headers: Sequence[tuple[bytes, bytes]], kind: int, stream_id: int, max_count: int
) -> int | None:
    """Check one decoded header list; return its ``content-length`` (None when absent).

    Raises :class:`H2StreamError` (PROTOCOL_ERROR) when the list is malformed per RFC 9113
    §8.2-8.3 or has more than ``max_count`` fields.
    """
    if len(headers) > max_count:
        raise H2StreamError(
            stream_id, ErrorCode.PROTOCOL_ERROR, f"{len(headers)} header fields > {max_count}"
        )
    allowed = REQUEST_PSEUDO if kind == REQUEST else RESPONSE_PSEUDO
    pseudo: dict[bytes, bytes] = {}
    regular_seen = False
    content_length: int | None = None
    for field in headers:
        name, value = field
        if field not in _checked:
            _check_chars(name, value, stream_id)
        if name[:1] == b":":
            if regular_seen or kind == TRAILERS:
                raise _malformed(stream_id, f"pseudo-header {name!r} out of place")
            if name not in allowed:
                raise _malformed(stream_id, f"pseudo-header {name!r} not allowed here")
            if name in pseudo:
                raise _malformed(stream_id, f"duplicate {name!r}")
            pseudo[name] = value
        else:
            regular_seen = True
            if name in CONNECTION_SPECIFIC:
                raise _malformed(stream_id, f"connection-specific header {name!r}")
            if name == b"te" and value != b"trailers":
                raise _malformed(stream_id, f"te: {value!r}")
            if name == b"content-length":
                if not value.isdigit() or (
                    content_length is not None and int(value) != content_length
                ):
                    raise _malformed(stream_id, f"content-length: {value!r}")
                content_length = int(value)
    if kind == REQUEST:
        _check_request(pseudo, stream_id)
    elif kind == RESPONSE:
        status = pseudo.get(b":status")
        if status is None or len(status) != 3 or not status.isdigit():
            raise _malformed(stream_id, f":status {status!r}")
    return content_length


def _check_chars(name: bytes, value: bytes, stream_id: int) -> None:
    """RFC 9113 §8.2.1 character rules for one field; remembers fields that pass."""
    if name[:1] == b":":
        if not name[1:] or _BAD_NAME(name[1:]):
            raise _malformed(stream_id, f"invalid pseudo-header name {name!r}")
    elif not name or _BAD_NAME(name):
        raise _malformed(stream_id, f"invalid header name {name!r}")
    if _BAD_VALUE(value):
        raise _malformed(stream_id, f"invalid value of {name!r}")
    if len(_checked) >= MAX_CHECKED_FIELDS:
        _checked.clear()
    _checked.add((name, value))


def _check_request(pseudo: dict[bytes, bytes], stream_id: int) -> None:
    method = pseudo.get(b":method")
    if method is None:
        raise _malformed(stream_id, "missing :method")
    if method == b"CONNECT" and b":protocol" not in pseudo:
        if b":scheme" in pseudo or b":path" in pseudo or b":authority" not in pseudo:
            raise _malformed(stream_id, "CONNECT with :scheme/:path or without :authority")
        return
    if b":scheme" not in pseudo:
        raise _malformed(stream_id, "missing :scheme")
    path = pseudo.get(b":path")
    if not path:
        raise _malformed(stream_id, "missing or empty :path")


def _malformed(stream_id: int, message: str) -> H2StreamError:
    return H2StreamError(stream_id, ErrorCode.PROTOCOL_ERROR, f"malformed headers: {message}")
