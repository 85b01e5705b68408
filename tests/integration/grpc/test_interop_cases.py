"""G1 grpc-interop via proxy: the gRPC interop cases that apply to a proxy, through laneway.

The cases follow grpc/grpc ``doc/interop-test-descriptions.md`` (procedure, payload sizes
and assertions); the service is our own stand-in for its ``TestService``, written with
grpcio generic handlers and bytes messages, so no proto is needed:

* a request message is ``u16 control length | JSON control | body`` where the body is the
  description's "N bytes of zeros" and the control carries what test.proto's fields ask
  (``response_size`` / ``response_parameters`` sizes, ``response_status``, compression);
* a response message *is* its payload body: N zero bytes, so sizes are checked exactly.

The provider sits behind a byte-counting TCP tap, which proves the compressed variants
really put compressed messages on the wire laneway relays.
"""

from __future__ import annotations

import functools
import json
import queue
import struct
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import grpc
import pytest
import trio

from proxy.registry.model import Provider, ServiceKey
from proxy.serve import Proxy
from tests.integration.grpc.stack import GrpcStack, running_grpc_stack, until

TEST_SERVICE = "grpc.testing.TestService"
UNIMPLEMENTED_SERVICE = "grpc.testing.UnimplementedService"
INITIAL_KEY = "x-grpc-test-echo-initial"
INITIAL_VALUE = "test_initial_metadata_value"
TRAILING_KEY = "x-grpc-test-echo-trailing-bin"
TRAILING_VALUE = b"\xab\xab\xab"
SPECIAL_MESSAGE = "\t\ntest with whitespace\r\nand Unicode BMP \u263a and non-BMP \U0001f608\t\n"
# The sizes of interop-test-descriptions.md.
LARGE_REQUEST, LARGE_RESPONSE = 271_828, 314_159
STREAM_REQUESTS = (27_182, 8, 1_828, 45_904)
STREAM_RESPONSES = (31_415, 9, 2_653, 58_979)
CALL_TIMEOUT_S = 10.0
# why: a generous client deadline: every case finishes in milliseconds when laneway works.
PROVIDER_THREADS = 16
_END = object()
T = TypeVar("T")


@dataclass(frozen=True)
class Ask:
    """What one request asks of the service (test.proto's request fields, as JSON)."""

    body: int = 0
    sizes: tuple[int, ...] = ()
    status: tuple[int, str] | None = None
    compress: tuple[bool, ...] = ()

    def encode(self) -> bytes:
        control = json.dumps(
            {"sizes": self.sizes, "status": self.status, "compress": self.compress}
        ).encode()
        return struct.pack(">H", len(control)) + control + bytes(self.body)


def decode_ask(message: bytes) -> tuple[Ask, bytes]:
    (n,) = struct.unpack_from(">H", message)
    control = json.loads(message[2 : 2 + n])
    status = control["status"]
    ask = Ask(
        sizes=tuple(control["sizes"]),
        status=None if status is None else (status[0], status[1]),
        compress=tuple(control["compress"]),
    )
    return ask, message[2 + n :]


@dataclass
class InteropProvider:
    """The interop TestService on a grpcio server; records what reached it."""

    server: grpc.Server
    address: str = ""
    bodies: list[list[int]] = field(default_factory=list)
    ended: threading.Event = field(default_factory=threading.Event)
    active_at_end: list[bool] = field(default_factory=list)

    def note(self, context: grpc.ServicerContext) -> list[int]:
        bodies: list[int] = []
        self.bodies.append(bodies)
        self.ended.clear()

        def done() -> None:
            self.active_at_end.append(context.is_active())
            self.ended.set()

        context.add_callback(done)
        return bodies


def _zeros(size: int) -> bytes:
    return bytes(size)


def _echo_metadata(context: grpc.ServicerContext) -> None:
    """Echo Metadata: the initial key back as initial metadata, the -bin key as trailers."""
    received = dict(context.invocation_metadata())
    if INITIAL_KEY in received:
        context.send_initial_metadata(((INITIAL_KEY, received[INITIAL_KEY]),))
    if TRAILING_KEY in received:
        context.set_trailing_metadata(((TRAILING_KEY, received[TRAILING_KEY]),))


def _respond(ask: Ask, context: grpc.ServicerContext, bodies: list[int], body: bytes) -> None:
    bodies.append(len(body))
    assert body == _zeros(len(body))
    if ask.status is not None:  # Echo Status
        context.abort(_status_code(ask.status[0]), ask.status[1])
    if any(ask.compress):
        context.set_compression(grpc.Compression.Gzip)


def _status_code(value: int) -> grpc.StatusCode:
    for code in grpc.StatusCode:
        if code.value[0] == value:
            return code
    raise AssertionError(f"no status code {value}")


def start_test_provider() -> InteropProvider:
    server = grpc.server(ThreadPoolExecutor(max_workers=PROVIDER_THREADS))
    provider = InteropProvider(server)

    def empty_call(request: bytes, context: grpc.ServicerContext) -> bytes:
        provider.note(context).append(len(request))
        return b""

    def unary_call(request: bytes, context: grpc.ServicerContext) -> bytes:
        bodies = provider.note(context)
        _echo_metadata(context)
        ask, body = decode_ask(request)
        _respond(ask, context, bodies, body)
        return _zeros(ask.sizes[0]) if ask.sizes else b""

    def streaming_input(requests: Iterator[bytes], context: grpc.ServicerContext) -> bytes:
        bodies = provider.note(context)
        for request in requests:
            ask, body = decode_ask(request)
            _respond(ask, context, bodies, body)
        return b"%d" % sum(bodies)

    def streaming_output(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        bodies = provider.note(context)
        ask, body = decode_ask(request)
        _respond(ask, context, bodies, body)
        for i, size in enumerate(ask.sizes):
            if ask.compress and not ask.compress[i]:
                context.disable_next_message_compression()
            yield _zeros(size)

    def full_duplex(requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
        bodies = provider.note(context)
        _echo_metadata(context)
        for request in requests:
            ask, body = decode_ask(request)
            _respond(ask, context, bodies, body)
            for size in ask.sizes:
                yield _zeros(size)

    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {
        "EmptyCall": grpc.unary_unary_rpc_method_handler(empty_call),
        "UnaryCall": grpc.unary_unary_rpc_method_handler(unary_call),
        "StreamingInputCall": grpc.stream_unary_rpc_method_handler(streaming_input),
        "StreamingOutputCall": grpc.unary_stream_rpc_method_handler(streaming_output),
        "FullDuplexCall": grpc.stream_stream_rpc_method_handler(full_duplex),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(TEST_SERVICE, handlers),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    provider.address = f"127.0.0.1:{port}"
    return provider


@dataclass
class Tap:
    """Bytes that crossed between laneway and the provider, each way."""

    to_provider: int = 0
    to_laneway: int = 0


async def _pump(src: trio.SocketStream, dst: trio.SocketStream, tap: Tap, up: bool) -> None:
    try:
        async for chunk in src:
            if up:
                tap.to_provider += len(chunk)
            else:
                tap.to_laneway += len(chunk)
            await dst.send_all(chunk)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    finally:
        await trio.aclose_forcefully(dst)


async def run_tap(
    target: str, tap: Tap, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED
) -> None:
    """A TCP relay to ``target`` counting bytes; reports its own address."""
    host, _, port = target.rpartition(":")

    async def handle(client: trio.SocketStream) -> None:
        server = await trio.open_tcp_stream(host, int(port))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_pump, client, server, tap, True)
            nursery.start_soon(_pump, server, client, tap, False)

    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    task_status.started(f"127.0.0.1:{listeners[0].socket.getsockname()[1]}")
    await trio.serve_listeners(handle, listeners)


@dataclass
class Interop:
    stack: GrpcStack
    provider: InteropProvider
    tap: Tap

    def unary(self, method: str, service: str = TEST_SERVICE) -> Any:
        return self.stack.channel.unary_unary(f"/{service}/{method}", None, None)

    def unary_stream(self, method: str) -> Any:
        return self.stack.channel.unary_stream(f"/{TEST_SERVICE}/{method}", None, None)

    def stream_unary(self, method: str) -> Any:
        return self.stack.channel.stream_unary(f"/{TEST_SERVICE}/{method}", None, None)

    def stream_stream(self, method: str) -> Any:
        return self.stack.channel.stream_stream(f"/{TEST_SERVICE}/{method}", None, None)

    @property
    def relayed(self) -> int:
        """Calls laneway relayed (or answered) so far."""
        return self.stack.proxy.grpc_forwarder.stats.calls


async def publish_test_service(proxy: Proxy, address: str) -> None:
    entry = Provider(address=address, protocol="grpc", env="main", source="registry")
    await proxy.registry.publish(ServiceKey.of(TEST_SERVICE), entry)


@asynccontextmanager
async def interop_stack() -> AsyncIterator[Interop]:
    """laneway with the TestService provider published (behind the tap) in main."""
    provider = start_test_provider()
    tap = Tap()
    try:
        async with running_grpc_stack() as stack, trio.open_nursery() as nursery:
            tapped = await nursery.start(run_tap, provider.address, tap)
            await publish_test_service(stack.proxy, tapped)
            yield Interop(stack, provider, tap)
            nursery.cancel_scope.cancel()
    finally:
        provider.server.stop(grace=None)


class Feed:
    """A request iterator the test drives: ``put`` messages, ``close`` half-closes."""

    def __init__(self) -> None:
        self._queue: queue.Queue[object] = queue.Queue()

    def put(self, message: bytes) -> None:
        self._queue.put(message)

    def close(self) -> None:
        self._queue.put(_END)

    def __iter__(self) -> Iterator[bytes]:
        while True:
            item = self._queue.get()
            if item is _END:
                return
            assert isinstance(item, bytes)
            yield item


async def run(fn: Callable[[], T]) -> T:
    """Run blocking grpcio code in a worker thread."""
    return await trio.to_thread.run_sync(fn)


# --- the cases --------------------------------------------------------------------------------


async def test_empty_unary() -> None:
    """G1 empty_unary: zero-size request and response messages."""
    async with interop_stack() as t:
        before = t.relayed
        reply = await run(lambda: t.unary("EmptyCall")(b"", timeout=CALL_TIMEOUT_S))
        assert reply == b""
        assert t.provider.bodies == [[0]]
        assert t.relayed == before + 1


async def test_large_unary() -> None:
    """G1 large_unary: 271828 bytes up, 314159 bytes down, across flow-control windows."""
    async with interop_stack() as t:
        ask = Ask(body=LARGE_REQUEST, sizes=(LARGE_RESPONSE,))
        reply = await run(lambda: t.unary("UnaryCall")(ask.encode(), timeout=CALL_TIMEOUT_S))
        assert reply == _zeros(LARGE_RESPONSE)
        assert t.provider.bodies == [[LARGE_REQUEST]]


async def test_client_streaming() -> None:
    """G1 client_streaming: four requests, aggregated payload size 74922."""
    async with interop_stack() as t:
        requests = [Ask(body=n).encode() for n in STREAM_REQUESTS]
        reply = await run(
            lambda: t.stream_unary("StreamingInputCall")(iter(requests), timeout=CALL_TIMEOUT_S)
        )
        assert reply == b"74922"
        assert t.provider.bodies == [list(STREAM_REQUESTS)]


async def test_server_streaming() -> None:
    """G1 server_streaming: exactly four responses sized 31415, 9, 2653, 58979."""
    async with interop_stack() as t:
        ask = Ask(sizes=STREAM_RESPONSES).encode()
        replies = await run(
            lambda: list(t.unary_stream("StreamingOutputCall")(ask, timeout=CALL_TIMEOUT_S))
        )
        assert [len(r) for r in replies] == list(STREAM_RESPONSES)
        assert all(r == _zeros(len(r)) for r in replies)


async def test_ping_pong() -> None:
    """G1 ping_pong: full duplex, each request sent only after the previous reply."""
    async with interop_stack() as t:
        feed = Feed()

        def converse() -> list[int]:
            replies = t.stream_stream("FullDuplexCall")(iter(feed), timeout=CALL_TIMEOUT_S)
            sizes = []
            for body, size in zip(STREAM_REQUESTS, STREAM_RESPONSES, strict=True):
                feed.put(Ask(body=body, sizes=(size,)).encode())
                reply = next(replies)
                assert reply == _zeros(size)
                sizes.append(len(reply))
            feed.close()
            assert list(replies) == []
            assert replies.code() == grpc.StatusCode.OK
            return sizes

        try:
            assert await run(converse) == list(STREAM_RESPONSES)
        finally:
            feed.close()
        assert t.provider.bodies == [list(STREAM_REQUESTS)]


async def test_empty_stream() -> None:
    """G1 empty_stream: a full-duplex call with zero messages each way."""
    async with interop_stack() as t:
        call = t.stream_stream("FullDuplexCall")
        replies = await run(lambda: list(call(iter([]), timeout=CALL_TIMEOUT_S)))
        assert replies == []
        assert t.provider.bodies == [[]]


async def test_custom_metadata() -> None:
    """G1 custom_metadata: ASCII and binary metadata echoed as initial and trailing metadata,
    on a unary and on a full-duplex call."""
    async with interop_stack() as t:
        metadata = ((INITIAL_KEY, INITIAL_VALUE), (TRAILING_KEY, TRAILING_VALUE))
        ask = Ask(body=LARGE_REQUEST, sizes=(LARGE_RESPONSE,)).encode()
        reply, call = await run(
            lambda: t.unary("UnaryCall").with_call(ask, metadata=metadata, timeout=CALL_TIMEOUT_S)
        )
        assert len(reply) == LARGE_RESPONSE
        assert (INITIAL_KEY, INITIAL_VALUE) in call.initial_metadata()
        assert (TRAILING_KEY, TRAILING_VALUE) in call.trailing_metadata()

        def duplex() -> tuple[list[bytes], Any]:
            replies = t.stream_stream("FullDuplexCall")(
                iter([ask]), metadata=metadata, timeout=CALL_TIMEOUT_S
            )
            return list(replies), replies

        streamed, duplex_call = await run(duplex)
        assert [len(r) for r in streamed] == [LARGE_RESPONSE]
        assert (INITIAL_KEY, INITIAL_VALUE) in duplex_call.initial_metadata()
        assert (TRAILING_KEY, TRAILING_VALUE) in duplex_call.trailing_metadata()


async def test_status_code_and_message() -> None:
    """G1 status_code_and_message: code 2 and its message come back on unary and duplex."""
    async with interop_stack() as t:
        ask = Ask(status=(2, "test status message")).encode()
        with pytest.raises(grpc.RpcError) as unary:
            await run(lambda: t.unary("UnaryCall")(ask, timeout=CALL_TIMEOUT_S))
        assert unary.value.code() == grpc.StatusCode.UNKNOWN
        assert unary.value.details() == "test status message"
        with pytest.raises(grpc.RpcError) as duplex:
            call = t.stream_stream("FullDuplexCall")
            await run(lambda: list(call(iter([ask]), timeout=CALL_TIMEOUT_S)))
        assert duplex.value.code() == grpc.StatusCode.UNKNOWN
        assert duplex.value.details() == "test status message"


async def test_special_status_message() -> None:
    """G1 special_status_message: whitespace, BMP and non-BMP characters survive intact."""
    async with interop_stack() as t:
        ask = Ask(status=(2, SPECIAL_MESSAGE)).encode()
        with pytest.raises(grpc.RpcError) as info:
            await run(lambda: t.unary("UnaryCall")(ask, timeout=CALL_TIMEOUT_S))
        assert info.value.code() == grpc.StatusCode.UNKNOWN
        assert info.value.details() == SPECIAL_MESSAGE


async def test_unimplemented_method() -> None:
    """G1 unimplemented_method: the provider's UNIMPLEMENTED reaches the client."""
    async with interop_stack() as t:
        before = t.relayed
        with pytest.raises(grpc.RpcError) as info:
            await run(lambda: t.unary("UnimplementedCall")(b"", timeout=CALL_TIMEOUT_S))
        assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
        assert t.relayed == before + 1
        assert t.tap.to_provider > 0  # the known service was relayed to its provider


async def test_unimplemented_service() -> None:
    """G1 unimplemented_service: laneway answers UNIMPLEMENTED itself; nothing goes upstream."""
    async with interop_stack() as t:
        with pytest.raises(grpc.RpcError) as info:
            await run(
                lambda: t.unary("UnimplementedCall", UNIMPLEMENTED_SERVICE)(
                    b"", timeout=CALL_TIMEOUT_S
                )
            )
        assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
        assert t.stack.proxy.grpc_forwarder.stats.no_route == 1
        assert t.tap.to_provider == 0


async def test_cancel_after_begin() -> None:
    """G1 cancel_after_begin: a client-streaming call cancelled before any message."""
    async with interop_stack() as t:
        feed = Feed()
        try:
            future = t.stream_unary("StreamingInputCall").future(iter(feed), timeout=CALL_TIMEOUT_S)
            assert future.cancel()
            assert future.code() == grpc.StatusCode.CANCELLED
        finally:
            feed.close()
        # The connection through laneway is unharmed.
        reply = await run(lambda: t.unary("EmptyCall")(b"", timeout=CALL_TIMEOUT_S))
        assert reply == b""


async def test_cancel_after_first_response() -> None:
    """G1 cancel_after_first_response: full duplex cancelled after one 31415-byte reply; the
    cancellation travels through laneway to the provider."""
    async with interop_stack() as t:
        feed = Feed()

        def first_then_cancel() -> tuple[int, grpc.StatusCode]:
            replies = t.stream_stream("FullDuplexCall")(iter(feed), timeout=CALL_TIMEOUT_S)
            feed.put(Ask(body=27_182, sizes=(31_415,)).encode())
            size = len(next(replies))
            replies.cancel()
            return size, replies.code()

        try:
            size, code = await run(first_then_cancel)
        finally:
            feed.close()
        assert size == 31_415
        assert code == grpc.StatusCode.CANCELLED
        await until(t.provider.ended.is_set)
        assert t.provider.active_at_end == [False]  # it ended by cancellation, not by OK
        await until(lambda: t.stack.proxy.grpc_forwarder.stats.client_cancels == 1)


async def test_timeout_on_sleeping_server() -> None:
    """G1 timeout_on_sleeping_server: a 1 ms deadline on a call the server never finishes."""
    async with interop_stack() as t:
        feed = Feed()
        feed.put(Ask(body=27_182).encode())
        try:
            with pytest.raises(grpc.RpcError) as info:
                call = t.stream_stream("FullDuplexCall")
                await run(lambda: list(call(iter(feed), timeout=0.001)))
        finally:
            feed.close()
        assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


# --- compressed variants (grpcio compresses per call; the tap proves it on the wire) ----------


async def test_client_compressed_unary() -> None:
    """G1 client_compressed_unary: a gzip request crosses laneway compressed and arrives whole;
    the uncompressed call afterwards crosses uncompressed."""
    async with interop_stack() as t:
        ask = Ask(body=LARGE_REQUEST, sizes=(LARGE_RESPONSE,)).encode()
        for compression, compressed in ((grpc.Compression.Gzip, True), (None, False)):
            before = t.tap.to_provider
            call = functools.partial(
                t.unary("UnaryCall"), ask, compression=compression, timeout=CALL_TIMEOUT_S
            )
            reply = await run(call)
            assert len(reply) == LARGE_RESPONSE
            sent = t.tap.to_provider - before
            assert (sent < LARGE_REQUEST // 10) is compressed, sent
        assert t.provider.bodies == [[LARGE_REQUEST], [LARGE_REQUEST]]


async def test_server_compressed_unary() -> None:
    """G1 server_compressed_unary: the provider's gzip response crosses laneway compressed."""
    async with interop_stack() as t:
        for compressed in (True, False):
            ask = Ask(body=LARGE_REQUEST, sizes=(LARGE_RESPONSE,), compress=(compressed,))
            before = t.tap.to_laneway
            call = functools.partial(t.unary("UnaryCall"), ask.encode(), timeout=CALL_TIMEOUT_S)
            reply = await run(call)
            assert reply == _zeros(LARGE_RESPONSE)
            got = t.tap.to_laneway - before
            assert (got < LARGE_RESPONSE // 10) is compressed, got


async def test_client_compressed_streaming() -> None:
    """G1 client_compressed_streaming: 27182 + 45904 compressed bytes, aggregated 73086."""
    async with interop_stack() as t:
        requests = [Ask(body=27_182).encode(), Ask(body=45_904).encode()]
        before = t.tap.to_provider
        reply = await run(
            lambda: t.stream_unary("StreamingInputCall")(
                iter(requests), compression=grpc.Compression.Gzip, timeout=CALL_TIMEOUT_S
            )
        )
        assert reply == b"73086"
        assert t.tap.to_provider - before < 73_086 // 10


async def test_server_compressed_streaming() -> None:
    """G1 server_compressed_streaming: 31415 bytes compressed then 92653 uncompressed."""
    async with interop_stack() as t:
        ask = Ask(sizes=(31_415, 92_653), compress=(True, False)).encode()
        before = t.tap.to_laneway
        replies = await run(
            lambda: list(t.unary_stream("StreamingOutputCall")(ask, timeout=CALL_TIMEOUT_S))
        )
        assert replies == [_zeros(31_415), _zeros(92_653)]
        got = t.tap.to_laneway - before
        assert 92_653 < got < 92_653 + 31_415 // 10, got
