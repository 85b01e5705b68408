"""A hand-driven HTTP/2 client on a real socket, for attacking laneway's gRPC listener.

Frames are written with the unit tests' factory (hyperframe + hpack: an implementation
independent of laneway's codec) and read back with hyperframe; response header blocks
are decoded with hpack in arrival order, so the decoder stays in sync with the proxy's.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TypeVar

import trio
from hpack import Decoder
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    RstStreamFrame,
    SettingsFrame,
)

from proxy.codecs.grpc.grpc import encode_message
from tests.unit.h2.helpers import FrameFactory, Headers

READ_LIMIT_S = 5.0
# why: every reply these tests wait for comes within milliseconds when the proxy works.
RECEIVE_SIZE = 65_536
F = TypeVar("F", bound=Frame)


def request(path: str, *extra: tuple[bytes, bytes]) -> Headers:
    """A gRPC request header block for ``path`` plus ``extra`` fields."""
    return [
        (b":method", b"POST"),
        (b":scheme", b"http"),
        (b":path", path.encode()),
        (b":authority", b"laneway"),
        (b"content-type", b"application/grpc"),
        (b"te", b"trailers"),
        *extra,
    ]


def message(payload: bytes) -> bytes:
    """One length-prefixed, uncompressed gRPC message."""
    return encode_message(payload)


@dataclass
class Received:
    """What one stream got back: header blocks (decoded), DATA bytes, a reset code."""

    blocks: list[Headers] = field(default_factory=list)
    data: bytes = b""
    ended: bool = False
    reset: int | None = None

    def header(self, name: bytes) -> bytes | None:
        """The last value of ``name`` over all blocks (trailers win over headers)."""
        found = None
        for block in self.blocks:
            for key, value in block:
                if key == name:
                    found = value
        return found

    @property
    def status(self) -> int | None:
        value = self.header(b"grpc-status")
        return None if value is None else int(value)


class RawH2:
    """One client connection. ``frames`` holds every frame received so far, in order."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.f = FrameFactory()
        self.frames: list[Frame] = []
        self.streams: dict[int, Received] = {}
        self.eof = False
        self._decoder = Decoder()
        self._buf = b""
        self._block: list[bytes] = []

    @classmethod
    async def connect(
        cls,
        address: str,
        *,
        settings: dict[int, int] | None = None,
        handshake: bool = True,
        rcvbuf: int | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> RawH2:
        """Connect (over TLS when ``tls`` is given); with ``handshake`` send the preface +
        SETTINGS (``settings``)."""
        host, _, port = address.rpartition(":")
        sock = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            # Before connect, so the advertised TCP window is small from the start (H5).
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        await sock.connect((host, int(port)))
        stream: trio.abc.Stream = trio.SocketStream(sock)
        if tls is not None:
            secure = trio.SSLStream(stream, tls, server_hostname=host)
            await secure.do_handshake()
            stream = secure
        conn = cls(stream)
        if handshake:
            await conn.send(conn.f.preface(), conn.f.settings(settings))
        return conn

    async def send(self, *chunks: bytes) -> None:
        await self.stream.send_all(b"".join(chunks))

    async def aclose(self) -> None:
        await trio.aclose_forcefully(self.stream)

    # --- reading ------------------------------------------------------------------------

    async def read_until(self, done: Callable[[], bool]) -> None:
        """Read frames until ``done()`` holds (AssertionError on EOF or after READ_LIMIT_S)."""
        with trio.fail_after(READ_LIMIT_S):
            while not done():
                if not await self.read_some():
                    raise AssertionError(f"connection closed first; frames: {self.frames}")

    async def read_to_eof(self) -> None:
        """Read until the proxy closes the connection."""
        with trio.fail_after(READ_LIMIT_S):
            while await self.read_some():
                pass

    async def goaway(self) -> GoAwayFrame:
        """Read until a GOAWAY arrives; return the first one."""
        await self.read_until(lambda: bool(self.of(GoAwayFrame)))
        return self.of(GoAwayFrame)[0]

    async def handshake_done(self) -> None:
        """Wait for the proxy's SETTINGS; acknowledge them."""
        await self.read_until(
            lambda: any("ACK" not in f.flags for f in self.of(SettingsFrame)),
        )
        await self.send(self.f.settings(ack=True))

    async def response(self, stream_id: int) -> Received:
        """Read until ``stream_id`` ended or was reset."""
        await self.read_until(lambda: self._finished(stream_id))
        return self.streams[stream_id]

    def _finished(self, stream_id: int) -> bool:
        got = self.streams.get(stream_id)
        return got is not None and (got.ended or got.reset is not None)

    def of(self, kind: type[F]) -> list[F]:
        return [f for f in self.frames if isinstance(f, kind)]

    async def read_some(self) -> bool:
        """Read once and parse what came; False at EOF (or a reset: same for a client)."""
        if self.eof:
            return False
        try:
            data = bytes(await self.stream.receive_some(RECEIVE_SIZE))
        except trio.BrokenResourceError:
            data = b""  # reset by the proxy: what it sent before is already in _buf
        if not data:
            self.eof = True
            return False
        self._buf += data
        self._parse()
        return True

    def _parse(self) -> None:
        while len(self._buf) >= 9:
            frame, length = Frame.parse_frame_header(memoryview(self._buf[:9]))
            if len(self._buf) < 9 + length:
                return
            frame.parse_body(memoryview(self._buf[9 : 9 + length]))
            self._buf = self._buf[9 + length :]
            self.frames.append(frame)
            self._track(frame)

    def _track(self, frame: Frame) -> None:
        sid = frame.stream_id
        if isinstance(frame, HeadersFrame | ContinuationFrame):
            self._block.append(frame.data)
            if "END_HEADERS" in frame.flags:
                block = self._decoder.decode(b"".join(self._block), raw=True)
                self._block = []
                got = self.streams.setdefault(sid, Received())
                got.blocks.append([(bytes(k), bytes(v)) for k, v in block])
            if isinstance(frame, HeadersFrame) and "END_STREAM" in frame.flags:
                self.streams.setdefault(sid, Received()).ended = True
        elif isinstance(frame, DataFrame):
            got = self.streams.setdefault(sid, Received())
            got.data += frame.data
            got.ended = got.ended or "END_STREAM" in frame.flags
        elif isinstance(frame, RstStreamFrame):
            self.streams.setdefault(sid, Received()).reset = int(frame.error_code)


@asynccontextmanager
async def raw_connection(
    address: str,
    *,
    settings: dict[int, int] | None = None,
    handshake: bool = True,
    rcvbuf: int | None = None,
    tls: ssl.SSLContext | None = None,
) -> AsyncIterator[RawH2]:
    """:meth:`RawH2.connect`, closed on the way out (also when the test fails)."""
    conn = await RawH2.connect(
        address, settings=settings, handshake=handshake, rcvbuf=rcvbuf, tls=tls
    )
    try:
        yield conn
    finally:
        await conn.aclose()


def pings(conn: RawH2, *, ack: bool) -> list[PingFrame]:
    """PING frames received on ``conn`` (ACKs or not)."""
    return [p for p in conn.of(PingFrame) if ("ACK" in p.flags) == ack]
