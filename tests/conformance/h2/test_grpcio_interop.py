"""H1 interop sanity: grpcio's C core talks to the sans-IO server-side codec.

A tiny blocking socket server (one thread, one connection at a time) wraps
``H2Connection(client_side=False)`` and answers unary calls; a real grpcio client calls it
through the generic ``channel.unary_unary`` with bytes serializers. This is the proof that
the codec speaks real HTTP/2 + gRPC, flow control included (a 200 KB request needs window
updates the server only sends after acknowledging the bytes).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import grpc
import pytest

from proxy.codecs.grpc import events as ev
from proxy.codecs.grpc.connection import H2Connection
from proxy.codecs.grpc.grpc import (
    Message,
    MessageDecoder,
    call_info,
    encode_message,
    status_trailers,
)
from proxy.errors import GrpcStatus

PREFIX = b"echo:"


class _CodecServer:
    """Serves gRPC unary calls: ``/test.Echo/Call`` echoes, ``/test.Echo/Fail`` fails."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port: int = self.sock.getsockname()[1]
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self.paths: list[str] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        self.sock.settimeout(0.1)
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            try:
                self._serve(conn)
            except (OSError, AssertionError) as exc:
                self.errors.append(exc)
            finally:
                conn.close()

    def _serve(self, sock: socket.socket) -> None:
        sock.settimeout(0.1)
        h2 = H2Connection(client_side=False)
        sock.sendall(h2.data_to_send())
        bodies: dict[int, MessageDecoder] = {}
        paths: dict[int, str] = {}
        while not self.stop.is_set():
            try:
                data = sock.recv(65536)
            except TimeoutError:
                continue
            if not data:
                return
            for event in h2.receive_data(data, time.monotonic()):
                if isinstance(event, ev.RequestReceived):
                    info = call_info(event.headers)
                    paths[event.stream_id] = info.method
                    self.paths.append(f"{info.service}/{info.method}")
                    bodies[event.stream_id] = MessageDecoder()
                elif isinstance(event, ev.DataReceived):
                    messages = bodies[event.stream_id].feed(event.data)
                    h2.acknowledge_received_data(event.stream_id, len(event.data))
                    if messages:
                        self._reply(h2, event.stream_id, paths[event.stream_id], messages[0])
                elif isinstance(event, ev.ConnectionTerminated):
                    raise AssertionError(f"codec terminated: {event}")
            sock.sendall(h2.data_to_send())

    @staticmethod
    def _reply(h2: H2Connection, sid: int, method: str, message: Message) -> None:
        if method == "Fail":
            h2.send_headers(
                sid,
                [
                    (b":status", b"200"),
                    (b"content-type", b"application/grpc"),
                    *status_trailers(GrpcStatus.FAILED_PRECONDITION, "nope: ünïcode 100%"),
                ],
                end_stream=True,
            )
            return
        h2.send_headers(sid, [(b":status", b"200"), (b"content-type", b"application/grpc")])
        if method == "Big":  # 1 MiB answer: needs grpcio's WINDOW_UPDATEs to get through
            h2.send_data(
                sid, encode_message(message.payload * (1024 * 1024 // len(message.payload)))
            )
        else:
            h2.send_data(sid, encode_message(PREFIX + message.payload))
        h2.send_headers(sid, status_trailers(GrpcStatus.OK), end_stream=True)


@pytest.fixture
def server() -> Iterator[_CodecServer]:
    srv = _CodecServer()
    srv.thread.start()
    yield srv
    srv.stop.set()
    srv.thread.join(5)
    srv.sock.close()
    assert not srv.errors, srv.errors


def _identity(b: bytes) -> bytes:
    return b


def test_grpcio_unary_calls_through_the_codec(server: _CodecServer) -> None:
    """H1 interop: grpcio unary OK, a 200 KB request (flow control) and an error status."""
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        call = channel.unary_unary(
            "/test.Echo/Call", request_serializer=_identity, response_deserializer=_identity
        )
        assert call(b"hello", timeout=5) == PREFIX + b"hello"
        big = bytes(range(256)) * 800
        assert call(big, timeout=5) == PREFIX + big
        for i in range(20):
            assert call(b"n%d" % i, timeout=5) == PREFIX + b"n%d" % i
        fail = channel.unary_unary(
            "/test.Echo/Fail", request_serializer=_identity, response_deserializer=_identity
        )
        with pytest.raises(grpc.RpcError) as info:
            fail(b"x", timeout=5)
        assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert info.value.details() == "nope: ünïcode 100%"
        big_answer = channel.unary_unary(
            "/test.Echo/Big", request_serializer=_identity, response_deserializer=_identity
        )
        assert big_answer(b"0123456789abcdef", timeout=10) == b"0123456789abcdef" * 65536
        futures = [call.future(b"f%d" % i, timeout=10) for i in range(30)]
        assert [f.result() for f in futures] == [PREFIX + b"f%d" % i for i in range(30)]
    assert server.paths[0] == "test.Echo/Call"
    assert "test.Echo/Fail" in server.paths
