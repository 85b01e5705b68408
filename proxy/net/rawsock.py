"""A lean ``trio.abc.Stream`` over a plain non-blocking socket, and TCP listen/dial for it.

Why not ``trio.SocketStream``: it tries every ``recv`` before waiting (an exception per
read when, as on a proxy's request/response path, nothing is there yet) and passes
through several checkpoints and context managers per call. Measured in
``bench/e2e_dubbo.py`` (DESIGN.md §8): a relay on raw non-blocking sockets adds ~30 % less
latency and CPU than one on ``SocketStream``. This stream waits for readability first
unless the previous read filled the buffer, and sends without waiting when the kernel
takes the bytes. It keeps trio's contract: errors are ``BrokenResourceError`` /
``ClosedResourceError``, ``aclose`` wakes a task blocked on the socket.
"""

from __future__ import annotations

import errno
import socket

import trio

DEFAULT_RECEIVE_SIZE = 64 * 1024
# why: when the caller names no size, one read may hold many frames; more only costs memory.
LISTEN_BACKLOG = 1024
# why: bursts of connects (tests, a restarted fleet) must not be refused by a short queue.


class RawSocketStream(trio.abc.Stream):
    """A connected TCP socket (non-blocking, TCP_NODELAY)."""

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.socket = sock
        self._closed = False
        self._read_ahead = False  # the last read filled the buffer: try before waiting

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        size = max_bytes or DEFAULT_RECEIVE_SIZE
        if self._closed:
            raise trio.ClosedResourceError("the stream is closed")
        if not self._read_ahead:
            await trio.lowlevel.wait_readable(self.socket)
        while True:
            if self._closed:
                raise trio.ClosedResourceError("the stream was closed while reading")
            try:
                data = self.socket.recv(size)
            except BlockingIOError:
                await trio.lowlevel.wait_readable(self.socket)
                continue
            except OSError as exc:
                raise trio.BrokenResourceError(f"recv failed: {exc}") from exc
            self._read_ahead = len(data) == size
            if self._read_ahead:
                # A busy peer must not starve others: yield, but never raise Cancelled here,
                # with the bytes already taken from the socket (trio's rule: a cancelled
                # operation did not happen; the read loops' deadlines rely on it).
                await trio.lowlevel.cancel_shielded_checkpoint()
            return data

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if self._closed:
            raise trio.ClosedResourceError("the stream is closed")
        view = memoryview(data)
        sent_total = 0
        while sent_total < len(view):
            try:
                sent_total += self.socket.send(view[sent_total:])
            except BlockingIOError:
                await trio.lowlevel.wait_writable(self.socket)
            except OSError as exc:
                if self._closed:
                    raise trio.ClosedResourceError("the stream was closed while sending") from exc
                raise trio.BrokenResourceError(f"send failed: {exc}") from exc

    def send_nowait(self, data: bytes | memoryview) -> int:
        """Send what the kernel takes now, without waiting; return how many bytes went.

        Lets a proxy answer from whatever task holds the answer, with no task switch,
        when the socket has room (nearly always). Raises Broken/ClosedResourceError.
        """
        if self._closed:
            raise trio.ClosedResourceError("the stream is closed")
        try:
            return self.socket.send(data)
        except BlockingIOError:
            return 0
        except OSError as exc:
            raise trio.BrokenResourceError(f"send failed: {exc}") from exc

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.wait_writable(self.socket)

    async def send_eof(self) -> None:
        try:
            self.socket.shutdown(socket.SHUT_WR)
        except OSError as exc:
            raise trio.BrokenResourceError(f"shutdown failed: {exc}") from exc
        await trio.lowlevel.checkpoint()

    async def aclose(self) -> None:
        self.close()
        await trio.lowlevel.checkpoint()

    def close(self) -> None:
        """Close now (synchronously); tasks blocked on the socket get ClosedResourceError."""
        if not self._closed:
            self._closed = True
            trio.lowlevel.notify_closing(self.socket)
            self.socket.close()

    def getsockname(self) -> tuple[str, int]:
        name = self.socket.getsockname()
        return name[0], name[1]


def listen_tcp(host: str, port: int) -> socket.socket:
    """A non-blocking listening socket on ``host:port`` (port 0: any free port)."""
    info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, kind, proto, _, address = info[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(LISTEN_BACKLOG)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


async def accept(listener: socket.socket) -> RawSocketStream:
    """The next connection on ``listener``."""
    while True:
        await trio.lowlevel.wait_readable(listener)
        try:
            conn, _ = listener.accept()
        except BlockingIOError:
            continue
        except OSError as exc:
            if exc.errno in (errno.ECONNABORTED, errno.EPROTO):
                continue  # the client gave up between SYN and accept: nothing to serve
            raise
        return RawSocketStream(conn)


async def connect_tcp(host: str, port: int) -> RawSocketStream:
    """Connect to ``host:port`` (the caller bounds the time). Raises OSError."""
    info = await trio.socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    family, kind, proto, _, address = info[0]
    sock = socket.socket(family, kind, proto)
    sock.setblocking(False)
    try:
        in_progress = False
        try:
            sock.connect(address)
        except BlockingIOError:
            in_progress = True
        if in_progress:
            await trio.lowlevel.wait_writable(sock)
            error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if error:
                raise OSError(error, f"connect to {host}:{port}: {errno.errorcode.get(error)}")
    except BaseException:
        sock.close()
        raise
    return RawSocketStream(sock)
