"""Events the HTTP/2 codec returns from ``receive_data``: small slotted dataclasses.

Treat them as read-only. They are not frozen on purpose: a frozen dataclass costs ~3x as
much to build (``object.__setattr__`` per field), and the codec builds about seven per
relayed unary call.

Header lists are tuples of raw ``(name, value)`` byte pairs as decoded by
:mod:`proxy.codecs.grpc.hpack_in`; names are lowercase (validated). Every stream event has
``stream_id``; connection events do not.
"""

from __future__ import annotations

import dataclasses

Headers = tuple[tuple[bytes, bytes], ...]


@dataclasses.dataclass(slots=True)
class RequestReceived:
    """Server side: a peer opened a stream with a (validated) request header block."""

    stream_id: int
    headers: Headers
    end_stream: bool


@dataclasses.dataclass(slots=True)
class ResponseReceived:
    """Client side: the response header block of a stream we opened."""

    stream_id: int
    headers: Headers
    end_stream: bool


@dataclasses.dataclass(slots=True)
class TrailersReceived:
    """A trailing header block; it always ends the stream (a StreamEnded follows)."""

    stream_id: int
    headers: Headers


@dataclasses.dataclass(slots=True)
class DataReceived:
    """DATA payload (padding removed).

    The consumer must call ``acknowledge_received_data(stream_id, len(data))`` once the
    bytes have been taken by the other side; only then does the peer get window back.
    """

    stream_id: int
    data: bytes
    end_stream: bool


@dataclasses.dataclass(slots=True)
class StreamEnded:
    """The peer sent END_STREAM (after the event that carried it)."""

    stream_id: int


@dataclasses.dataclass(slots=True)
class StreamReset:
    """A stream ended abnormally.

    ``remote`` is True when the peer sent RST_STREAM (or refused it through GOAWAY), False
    when the codec reset it for a stream error (the RST_STREAM is already queued).
    """

    stream_id: int
    error_code: int
    remote: bool


@dataclasses.dataclass(slots=True)
class WindowUpdated:
    """The peer gave us ``delta`` more send window on ``stream_id`` (0: the connection).

    Data held back by flow control has already been queued as far as windows allow; the
    consumer can ask ``blocked_bytes(stream_id)`` how much is still held.
    """

    stream_id: int
    delta: int


@dataclasses.dataclass(slots=True)
class PingReceived:
    """The peer sent a PING; its ACK is already queued."""

    data: bytes


@dataclasses.dataclass(slots=True)
class PingAckReceived:
    """The peer acknowledged one of our PINGs."""

    data: bytes


@dataclasses.dataclass(slots=True)
class SettingsChanged:
    """The peer's SETTINGS were applied (known identifiers only); the ACK is queued."""

    changed: dict[int, int]


@dataclasses.dataclass(slots=True)
class SettingsAcknowledged:
    """The peer acknowledged our SETTINGS: they are now in force."""


@dataclasses.dataclass(slots=True)
class GoAwayReceived:
    """The peer will process no stream above ``last_stream_id``.

    Streams we opened above it were never processed; each already got a
    ``StreamReset(REFUSED_STREAM, remote=True)`` before this event, so retrying is safe.
    """

    last_stream_id: int
    error_code: int
    debug_data: bytes


@dataclasses.dataclass(slots=True)
class ConnectionTerminated:
    """We found a connection error: GOAWAY(``error_code``) is queued; close after flushing.

    ``reason`` names the protection or rule (e.g. ``rapid-reset``, ``continuation-flood``).
    """

    error_code: int
    reason: str
    message: str
    last_stream_id: int


Event = (
    RequestReceived
    | ResponseReceived
    | TrailersReceived
    | DataReceived
    | StreamEnded
    | StreamReset
    | WindowUpdated
    | PingReceived
    | PingAckReceived
    | SettingsChanged
    | SettingsAcknowledged
    | GoAwayReceived
    | ConnectionTerminated
)
