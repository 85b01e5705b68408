"""HTTP/2 frame layout (RFC 9113 §4, §6): the 9-byte header, body parsers, serializers.

Division of labour with hyperframe: the 9-byte header and the bodies on the per-call hot
path (DATA, HEADERS, CONTINUATION, WINDOW_UPDATE, RST_STREAM, PING) are read and written
here with one ``struct`` call each, because hyperframe builds a frame object and a flag
set per frame and that is most of a relay's cost (DESIGN.md §8). SETTINGS, GOAWAY,
PUSH_PROMISE and PRIORITY bodies are parsed and built by hyperframe. Every length and
stream-association rule is checked here *before* a body is parsed, so the error code
sent is the one RFC 9113 names (FRAME_SIZE_ERROR vs PROTOCOL_ERROR), and hyperframe's
exceptions are translated once, in :func:`_hyperframe_errors`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import struct
from collections.abc import Iterator

from hyperframe.exceptions import HyperframeError
from hyperframe.frame import GoAwayFrame, PriorityFrame, SettingsFrame

from proxy.codecs.grpc.errors import ErrorCode, H2ConnectionError, H2StreamError

#: Length of the fixed frame header (RFC 9113 §4.1).
FRAME_HEADER_SIZE = 9
#: The client connection preface (RFC 9113 §3.4).
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

_HEADER = struct.Struct(">HBBBL")
#: The 9-byte frame header layout (length as 16 + 8 bits), for a caller that inlines
#: :func:`parse_header` in its hot loop.
HEADER_STRUCT = _HEADER
_U32 = struct.Struct(">L")
_PRIORITY = struct.Struct(">LB")
_STREAM_ID_MASK = 0x7FFFFFFF
STREAM_ID_MASK = _STREAM_ID_MASK


class FrameType(enum.IntEnum):
    """RFC 9113 §6 frame types."""

    DATA = 0x0
    HEADERS = 0x1
    PRIORITY = 0x2
    RST_STREAM = 0x3
    SETTINGS = 0x4
    PUSH_PROMISE = 0x5
    PING = 0x6
    GOAWAY = 0x7
    WINDOW_UPDATE = 0x8
    CONTINUATION = 0x9


# Flag bits (RFC 9113 §6); the same bit means different things on different frames.
END_STREAM = 0x1
ACK = 0x1
END_HEADERS = 0x4
PADDED = 0x8
PRIORITY_FLAG = 0x20

# Plain ints for the hot path: IntEnum comparisons cost an attribute lookup each.
DATA = 0x0
HEADERS = 0x1
PRIORITY = 0x2
RST_STREAM = 0x3
SETTINGS = 0x4
PUSH_PROMISE = 0x5
PING = 0x6
GOAWAY = 0x7
WINDOW_UPDATE = 0x8
CONTINUATION = 0x9

#: Frame types that must carry a stream id (RFC 9113 §6: "MUST be associated with a stream").
STREAM_FRAMES = frozenset({DATA, HEADERS, PRIORITY, RST_STREAM, PUSH_PROMISE, CONTINUATION})
#: Frame types that must be sent on stream 0.
CONNECTION_FRAMES = frozenset({SETTINGS, PING, GOAWAY})
#: Fixed body lengths; a different length is a FRAME_SIZE_ERROR (RFC 9113 §6.3, 6.4, 6.7, 6.9).
FIXED_LENGTHS = {PRIORITY: 5, RST_STREAM: 4, PING: 8, WINDOW_UPDATE: 4}


def parse_header(buf: bytes | bytearray | memoryview, offset: int) -> tuple[int, int, int, int]:
    """Return ``(length, type, flags, stream_id)`` of the frame header at ``offset``.

    The reserved bit of the stream id is ignored (RFC 9113 §4.1). ``buf`` must hold at
    least 9 bytes from ``offset``.
    """
    high, low, ftype, flags, sid = _HEADER.unpack_from(buf, offset)
    return (high << 8) | low, ftype, flags, sid & _STREAM_ID_MASK


def check_association(ftype: int, stream_id: int, length: int) -> None:
    """Raise the RFC-named error when a frame's stream id or fixed length is wrong."""
    if stream_id == 0 and ftype in STREAM_FRAMES:
        raise H2ConnectionError(
            ErrorCode.PROTOCOL_ERROR, f"{FrameType(ftype).name} frame on stream 0"
        )
    if stream_id != 0 and ftype in CONNECTION_FRAMES:
        raise H2ConnectionError(
            ErrorCode.PROTOCOL_ERROR, f"{FrameType(ftype).name} frame on stream {stream_id}"
        )
    fixed = FIXED_LENGTHS.get(ftype)
    if fixed is not None and length != fixed:
        name = FrameType(ftype).name
        if ftype == PRIORITY:
            # RFC 9113 §6.3: a PRIORITY of the wrong size is only a stream error.
            raise H2StreamError(
                stream_id, ErrorCode.FRAME_SIZE_ERROR, f"{name} of {length} bytes, not {fixed}"
            )
        raise H2ConnectionError(
            ErrorCode.FRAME_SIZE_ERROR, f"{name} of {length} bytes, not {fixed}"
        )


def strip_padding(body: bytes, flags: int, ftype: int) -> tuple[int, bytes]:
    """Return ``(offset, payload)``: the data of a possibly PADDED frame without padding.

    ``offset`` is where the payload starts (after the pad length and, for HEADERS with
    PRIORITY, the 5-byte priority fields, which the caller reads from there).
    """
    start = 0
    end = len(body)
    if flags & PADDED:
        if end < 1:
            raise H2ConnectionError(ErrorCode.FRAME_SIZE_ERROR, "PADDED frame without pad length")
        pad = body[0]
        start = 1
        end -= pad
    prio = 5 if ftype == HEADERS and flags & PRIORITY_FLAG else 0
    if end - start - prio < 0:
        raise H2ConnectionError(
            ErrorCode.PROTOCOL_ERROR, f"{FrameType(ftype).name} padding exceeds the frame"
        )
    return start, body[start + prio : end]


def priority_dependency(body: bytes, offset: int) -> int:
    """The stream a HEADERS-with-PRIORITY or PRIORITY frame depends on (RFC 9113 §5.3.1)."""
    dep, _weight = _PRIORITY.unpack_from(body, offset)
    return int(dep & _STREAM_ID_MASK)


def parse_u32(body: bytes) -> int:
    """The 32-bit value of RST_STREAM / WINDOW_UPDATE bodies (reserved bit kept)."""
    return int(_U32.unpack(body)[0])


@contextlib.contextmanager
def _hyperframe_errors(what: str) -> Iterator[None]:
    """Translate hyperframe's exceptions into a PROTOCOL_ERROR connection error."""
    try:
        yield
    except HyperframeError as exc:
        raise H2ConnectionError(ErrorCode.PROTOCOL_ERROR, f"bad {what}: {exc}") from exc


def parse_settings(body: bytes, flags: int) -> dict[int, int]:
    """Parse a SETTINGS body into ``{identifier: value}`` (the last of duplicates wins)."""
    if flags & ACK:
        if body:
            raise H2ConnectionError(ErrorCode.FRAME_SIZE_ERROR, "SETTINGS ACK with a body")
        return {}
    if len(body) % 6:
        raise H2ConnectionError(
            ErrorCode.FRAME_SIZE_ERROR, f"SETTINGS of {len(body)} bytes, not a multiple of 6"
        )
    frame = SettingsFrame(0)
    with _hyperframe_errors("SETTINGS"):
        frame.parse_body(memoryview(body))
    return frame.settings


@dataclasses.dataclass(frozen=True, slots=True)
class GoAway:
    """A parsed GOAWAY body."""

    last_stream_id: int
    error_code: int
    debug_data: bytes


def parse_goaway(body: bytes) -> GoAway:
    """Parse a GOAWAY body (RFC 9113 §6.8)."""
    if len(body) < 8:
        raise H2ConnectionError(ErrorCode.FRAME_SIZE_ERROR, f"GOAWAY of {len(body)} bytes")
    frame = GoAwayFrame(0)
    with _hyperframe_errors("GOAWAY"):
        frame.parse_body(memoryview(body))
    return GoAway(
        frame.last_stream_id & _STREAM_ID_MASK, frame.error_code, bytes(frame.additional_data)
    )


def parse_priority(body: bytes, stream_id: int) -> int:
    """Return the dependency of a PRIORITY frame (used only to reject self-dependency)."""
    frame = PriorityFrame(stream_id)
    with _hyperframe_errors("PRIORITY"):
        frame.parse_body(memoryview(body))
    return int(frame.depends_on)


# --- serializers --------------------------------------------------------------------------


def frame(ftype: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    """Serialize one frame: the 9-byte header followed by ``payload``."""
    n = len(payload)
    return _HEADER.pack(n >> 8, n & 0xFF, ftype, flags, stream_id) + payload


def settings_frame(settings: dict[int, int]) -> bytes:
    """A SETTINGS frame carrying ``settings``."""
    return SettingsFrame(0, settings).serialize()


def settings_ack() -> bytes:
    """An empty SETTINGS frame with ACK."""
    return frame(SETTINGS, ACK, 0)


def goaway_frame(last_stream_id: int, code: int, debug: bytes = b"") -> bytes:
    """A GOAWAY frame."""
    return GoAwayFrame(0, last_stream_id, code, debug).serialize()


def rst_stream_frame(stream_id: int, code: int) -> bytes:
    """A RST_STREAM frame."""
    return frame(RST_STREAM, 0, stream_id, _U32.pack(code))


def window_update_frame(stream_id: int, increment: int) -> bytes:
    """A WINDOW_UPDATE frame."""
    return frame(WINDOW_UPDATE, 0, stream_id, _U32.pack(increment))


def ping_frame(opaque: bytes, ack: bool = False) -> bytes:
    """A PING frame (8 opaque bytes)."""
    return frame(PING, ACK if ack else 0, 0, opaque)
