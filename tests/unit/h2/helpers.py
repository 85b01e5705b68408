"""Test helpers: a frame factory built with hyperframe + hpack, and a playbook runner.

The factory is an independent writer (hyperframe's serializers, not the codec's), so a
test that feeds its bytes checks the codec against another implementation of the format.
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Iterable

from hpack import Encoder
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    PriorityFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)

from proxy.codecs.grpc import events as ev
from proxy.codecs.grpc.connection import H2Connection
from proxy.codecs.grpc.frames import PREFACE
from proxy.codecs.grpc.limits import DEFAULT_LIMITS, H2Limits

Headers = list[tuple[bytes, bytes]]

REQUEST: Headers = [
    (b":method", b"POST"),
    (b":scheme", b"http"),
    (b":path", b"/pkg.Svc/Method"),
    (b":authority", b"laneway"),
    (b"content-type", b"application/grpc"),
    (b"te", b"trailers"),
]
RESPONSE: Headers = [(b":status", b"200"), (b"content-type", b"application/grpc")]
TRAILERS: Headers = [(b"grpc-status", b"0")]


class FrameFactory:
    """Builds serialized frames as a peer would send them (own HPACK encoder state)."""

    def __init__(self) -> None:
        self.encoder = Encoder()

    def preface(self) -> bytes:
        return PREFACE

    def settings(self, settings: dict[int, int] | None = None, ack: bool = False) -> bytes:
        return SettingsFrame(0, settings or {}, flags=["ACK"] if ack else []).serialize()

    def block(self, headers: Headers) -> bytes:
        return self.encoder.encode(headers)

    def headers(
        self,
        stream_id: int,
        headers: Headers | bytes,
        end_stream: bool = False,
        end_headers: bool = True,
        pad_length: int = 0,
        depends_on: int | None = None,
    ) -> bytes:
        block = headers if isinstance(headers, bytes) else self.block(headers)
        flags = []
        if end_stream:
            flags.append("END_STREAM")
        if end_headers:
            flags.append("END_HEADERS")
        frame = HeadersFrame(stream_id, block, flags=flags)
        if pad_length:
            frame.flags.add("PADDED")
            frame.pad_length = pad_length
        if depends_on is not None:
            frame.flags.add("PRIORITY")
            frame.depends_on = depends_on
            frame.stream_weight = 15
        return frame.serialize()

    def header_frames(
        self, stream_id: int, block: bytes, end_stream: bool = False, size: int = 16_000
    ) -> list[bytes]:
        """``block`` as one HEADERS and as many CONTINUATION frames as ``size`` needs."""
        chunks = [block[i : i + size] for i in range(0, len(block), size)] or [b""]
        out = [self.headers(stream_id, chunks[0], end_stream, end_headers=len(chunks) == 1)]
        for i, chunk in enumerate(chunks[1:], start=2):
            out.append(self.continuation(stream_id, chunk, end_headers=i == len(chunks)))
        return out

    def continuation(self, stream_id: int, block: bytes, end_headers: bool = True) -> bytes:
        flags = ["END_HEADERS"] if end_headers else []
        return ContinuationFrame(stream_id, block, flags=flags).serialize()

    def data(
        self, stream_id: int, data: bytes, end_stream: bool = False, pad_length: int = 0
    ) -> bytes:
        frame = DataFrame(stream_id, data, flags=["END_STREAM"] if end_stream else [])
        if pad_length:
            frame.flags.add("PADDED")
            frame.pad_length = pad_length
        return frame.serialize()

    def rst(self, stream_id: int, code: int = 8) -> bytes:
        return RstStreamFrame(stream_id, code).serialize()

    def ping(self, data: bytes = b"12345678", ack: bool = False) -> bytes:
        return PingFrame(0, data, flags=["ACK"] if ack else []).serialize()

    def goaway(self, last_stream_id: int = 0, code: int = 0) -> bytes:
        return GoAwayFrame(0, last_stream_id, code).serialize()

    def window_update(self, stream_id: int, increment: int) -> bytes:
        return raw(8, 0, stream_id, struct.pack(">L", increment))

    def priority(self, stream_id: int, depends_on: int = 0) -> bytes:
        return PriorityFrame(stream_id, depends_on=depends_on, stream_weight=15).serialize()


def raw(
    ftype: int, flags: int, stream_id: int, payload: bytes = b"", length: int | None = None
) -> bytes:
    """Any frame, including malformed ones (``length`` may lie about the payload)."""
    n = len(payload) if length is None else length
    return struct.pack(">HBBBL", n >> 8, n & 0xFF, ftype, flags, stream_id) + payload


def parse_frames(data: bytes) -> list[Frame]:
    """Parse serialized frames with hyperframe (the codec's output, checked independently)."""
    out: list[Frame] = []
    view = memoryview(data)
    pos = 0
    while pos < len(data):
        frame, length = Frame.parse_frame_header(view[pos : pos + 9])
        frame.parse_body(view[pos + 9 : pos + 9 + length])
        out.append(frame)
        pos += 9 + length
    return out


@dataclasses.dataclass
class Peer:
    """A codec under test plus the factory that plays its peer, already past the handshake."""

    conn: H2Connection
    f: FrameFactory
    now: float = 0.0

    def feed(self, *chunks: bytes) -> list[ev.Event]:
        """Feed the chunks as one read; return the events."""
        return self.conn.receive_data(b"".join(chunks), self.now)

    def out(self) -> list[Frame]:
        """Frames the codec queued since the last call."""
        return parse_frames(self.conn.data_to_send())

    def play(self, *chunks: bytes) -> tuple[list[ev.Event], list[Frame]]:
        """Playbook step: bytes in -> (events, frames out)."""
        events = self.feed(*chunks)
        return events, self.out()


def server(limits: H2Limits = DEFAULT_LIMITS, settings: dict[int, int] | None = None) -> Peer:
    """A server-side codec that received a client preface + SETTINGS and had them ACKed."""
    peer = Peer(H2Connection(client_side=False, limits=limits), FrameFactory())
    peer.feed(PREFACE, peer.f.settings(settings), peer.f.settings(ack=True))
    peer.out()
    return peer


def client(limits: H2Limits = DEFAULT_LIMITS, settings: dict[int, int] | None = None) -> Peer:
    """A client-side codec that received the server's SETTINGS and had its own ACKed."""
    peer = Peer(H2Connection(client_side=True, limits=limits), FrameFactory())
    peer.out()
    peer.feed(peer.f.settings(settings), peer.f.settings(ack=True))
    peer.out()
    return peer


def kinds(events: Iterable[object]) -> list[str]:
    """Event class names, for compact assertions."""
    return [type(e).__name__ for e in events]


def terminated(events: Iterable[object]) -> ev.ConnectionTerminated | None:
    """The ConnectionTerminated event among ``events``, if any."""
    for e in events:
        if isinstance(e, ev.ConnectionTerminated):
            return e
    return None


def goaway_code(frames: Iterable[Frame]) -> int | None:
    """The error code of the GOAWAY among ``frames``, if any."""
    for frame in frames:
        if isinstance(frame, GoAwayFrame):
            return int(frame.error_code)
    return None


def rst_codes(frames: Iterable[Frame]) -> dict[int, int]:
    """``{stream_id: error_code}`` of the RST_STREAM frames among ``frames``."""
    return {f.stream_id: int(f.error_code) for f in frames if isinstance(f, RstStreamFrame)}


def window_updates(frames: Iterable[Frame]) -> list[tuple[int, int]]:
    """``(stream_id, increment)`` of the WINDOW_UPDATE frames among ``frames``."""
    return [
        (f.stream_id, int(f.window_increment)) for f in frames if isinstance(f, WindowUpdateFrame)
    ]
