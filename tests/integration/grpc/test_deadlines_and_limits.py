"""Deadlines, cancellation, message limits, drain and backpressure through laneway
(TESTS.md G3, G4, G5, R10, R11) with real grpcio peers and a raw HTTP/2 client."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from statistics import median
from typing import Any

import grpc
import pytest
import trio
from hyperframe.frame import GoAwayFrame, PingFrame

from proxy.codecs.grpc.errors import ErrorCode
from proxy.codecs.grpc.limits import INITIAL_STREAM_WINDOW, SOFT_UNFLUSHED_BYTES
from proxy.registry.model import Provider, ServiceKey
from proxy.serve import Proxy
from tests.integration.grpc.raw_h2 import message, pings, raw_connection, request
from tests.integration.grpc.stack import SERVICE, GrpcStack, running_grpc_stack, until

LIMITS_SERVICE = "laneway.test.Limits"
MAX_MESSAGE = 4 * 1024 * 1024
# gRPC's default max message (TESTS.md §8), laneway's default limit either way (G5).
PEER_MAX_MESSAGE = 64 * 1024 * 1024
# why: the peers accept far more than 4 MiB, so only laneway can be the one refusing.
PEER_OPTIONS = [
    ("grpc.max_receive_message_length", PEER_MAX_MESSAGE),
    ("grpc.max_send_message_length", PEER_MAX_MESSAGE),
]
CANCEL_SLACK_S = 0.05
# TESTS.md G3: the upstream stream is reset within 50 ms of the client's cancel.
ROUNDS = 3
# why: medians of 3 keep one scheduling hiccup of a busy CI machine from failing G3.
TICK_S = 0.005
CHUNK = 1024
CALL_TIMEOUT_S = 10.0


@dataclass
class LimitsProvider:
    """A grpcio provider of ``laneway.test.Limits`` recording what reached it."""

    server: grpc.Server
    address: str = ""
    calls: int = 0
    ended_at: list[float] = field(default_factory=list)
    ended: threading.Event = field(default_factory=threading.Event)
    cancelled_at: list[float] = field(default_factory=list)
    flooded: int = 0

    def note(self, context: grpc.ServicerContext) -> None:
        self.calls += 1

        def done() -> None:
            self.ended_at.append(time.monotonic())
            self.ended.set()

        context.add_callback(done)


def start_limits_provider() -> LimitsProvider:
    server = grpc.server(ThreadPoolExecutor(max_workers=8), options=PEER_OPTIONS)
    provider = LimitsProvider(server)

    def tick(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        """Streams forever, one small message every TICK_S."""
        provider.note(context)
        while context.is_active():
            yield b"t"
            time.sleep(TICK_S)

    def tick_then_cancel(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        """One message, then the provider cancels the call itself."""
        provider.note(context)
        yield b"t"
        time.sleep(0.1)  # the message is on its way before the cancel
        provider.cancelled_at.append(time.monotonic())
        context.cancel()  # type: ignore[no-untyped-call]

    def flood(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        """Streams 1 KiB messages as fast as flow control lets it."""
        provider.note(context)
        while context.is_active():
            provider.flooded += CHUNK
            yield bytes(CHUNK)

    def echo_size(request: bytes, context: grpc.ServicerContext) -> bytes:
        provider.note(context)
        return b"%d" % len(request)

    def big(request: bytes, context: grpc.ServicerContext) -> bytes:
        provider.note(context)
        return bytes(int(request))

    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {
        "Tick": grpc.unary_stream_rpc_method_handler(tick),
        "TickThenCancel": grpc.unary_stream_rpc_method_handler(tick_then_cancel),
        "Flood": grpc.unary_stream_rpc_method_handler(flood),
        "EchoSize": grpc.unary_unary_rpc_method_handler(echo_size),
        "Big": grpc.unary_unary_rpc_method_handler(big),
    }
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(LIMITS_SERVICE, handlers),)
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    provider.address = f"127.0.0.1:{port}"
    return provider


@dataclass
class Limited:
    stack: GrpcStack
    provider: LimitsProvider
    via_laneway: grpc.Channel
    direct: grpc.Channel

    @property
    def proxy(self) -> Proxy:
        return self.stack.proxy


@asynccontextmanager
async def limits_stack() -> AsyncIterator[Limited]:
    provider = start_limits_provider()
    try:
        async with running_grpc_stack() as stack:
            entry = Provider(address=provider.address, protocol="grpc", env="main", source="test")
            await stack.proxy.registry.publish(ServiceKey.of(LIMITS_SERVICE), entry)
            with (
                grpc.insecure_channel(stack.address, options=PEER_OPTIONS) as via,
                grpc.insecure_channel(provider.address, options=PEER_OPTIONS) as direct,
            ):
                yield Limited(stack, provider, via, direct)
    finally:
        provider.server.stop(grace=None)


def _path(method: str) -> str:
    return f"/{LIMITS_SERVICE}/{method}"


# --- G3 cancel propagation --------------------------------------------------------------------


def _cancel_mid_stream(channel: grpc.Channel, provider: LimitsProvider) -> float:
    """Start a server stream, cancel it after 3 messages; seconds until the provider's call
    ended (its termination callback ran)."""
    provider.ended.clear()
    replies: Any = channel.unary_stream(_path("Tick"), None, None)(b"", timeout=CALL_TIMEOUT_S)
    for _ in range(3):
        assert next(replies) == b"t"
    cancelled = time.monotonic()
    replies.cancel()
    assert provider.ended.wait(CALL_TIMEOUT_S)
    return provider.ended_at[-1] - cancelled


async def test_client_cancel_mid_server_stream_reaches_the_provider() -> None:
    """G3 cancel-propagation: a client cancels mid server-stream; the provider sees the
    cancellation within 50 ms more than it does without laneway in between."""
    async with limits_stack() as t:
        direct, via = [], []
        for _ in range(ROUNDS):
            direct.append(await trio.to_thread.run_sync(_cancel_mid_stream, t.direct, t.provider))
            via.append(await trio.to_thread.run_sync(_cancel_mid_stream, t.via_laneway, t.provider))
        assert median(via) <= median(direct) + CANCEL_SLACK_S, (via, direct)
        assert t.proxy.grpc_forwarder.stats.client_cancels == ROUNDS


def _provider_cancels(channel: grpc.Channel, provider: LimitsProvider) -> tuple[float, Any]:
    """The provider cancels after one message: (seconds until the client saw it, code)."""
    replies: Any = channel.unary_stream(_path("TickThenCancel"), None, None)(
        b"", timeout=CALL_TIMEOUT_S
    )
    assert next(replies) == b"t"
    with pytest.raises(grpc.RpcError) as info:
        next(replies)
    return time.monotonic() - provider.cancelled_at[-1], info.value.code()


async def test_provider_cancel_mid_stream_reaches_the_client() -> None:
    """G3 cancel-propagation (the other way): the provider cancels a stream it already
    answered on; the client's call ends at once with a non-OK status (a reset, never OK)."""
    async with limits_stack() as t:
        direct, via = [], []
        for _ in range(ROUNDS):
            took, code = await trio.to_thread.run_sync(_provider_cancels, t.direct, t.provider)
            assert code == grpc.StatusCode.CANCELLED
            direct.append(took)
            took, code = await trio.to_thread.run_sync(_provider_cancels, t.via_laneway, t.provider)
            assert code in (grpc.StatusCode.CANCELLED, grpc.StatusCode.INTERNAL), code
            via.append(took)
        assert median(via) <= median(direct) + CANCEL_SLACK_S, (via, direct)


# --- G4 bad grpc-timeout ----------------------------------------------------------------------

BAD_TIMEOUTS = (b"123456789S", b"1x", b"-5m", b"", b"5", b"m", b"5 m", b"1.5S", b"+5m", b"5M5")
INVALID_FIELD_TIMEOUTS = (b" 5m", b"5m ")
# Leading/trailing whitespace makes the field itself malformed (RFC 9113 §8.2.1).


async def test_malformed_grpc_timeouts_are_rejected_and_nothing_goes_upstream() -> None:
    """G4 bad-grpc-timeout: ``123456789S`` (9 digits), ``1x``, ``-5m`` and friends get a
    clear INTERNAL status naming grpc-timeout; none is re-read as another value or unit,
    and no call reaches the provider. The connection serves the next call."""
    async with running_grpc_stack() as stack, raw_connection(stack.address) as conn:
        await conn.handshake_done()
        sid = 1
        for value in BAD_TIMEOUTS:
            headers = request(f"/{SERVICE}/Sleep", (b"grpc-timeout", value))
            await conn.send(
                conn.f.headers(sid, headers), conn.f.data(sid, message(b"0"), end_stream=True)
            )
            got = await conn.response(sid)
            assert got.status == grpc.StatusCode.INTERNAL.value[0], (value, got)
            assert b"grpc-timeout" in (got.header(b"grpc-message") or b""), (value, got)
            sid += 2
        for value in INVALID_FIELD_TIMEOUTS:
            headers = request(f"/{SERVICE}/Sleep", (b"grpc-timeout", value))
            await conn.send(conn.f.headers(sid, headers, end_stream=True))
            assert (await conn.response(sid)).reset == ErrorCode.PROTOCOL_ERROR, value
            sid += 2
        assert stack.main.calls == 0
        headers = request(f"/{SERVICE}/Hello", (b"grpc-timeout", b"99999999n"))
        await conn.send(
            conn.f.headers(sid, headers), conn.f.data(sid, message(b"hi"), end_stream=True)
        )
        got = await conn.response(sid)
        assert got.status == 0
        assert got.data == message(b"main:hi")


async def test_an_eight_digit_hour_timeout_is_capped_when_forwarded() -> None:
    """G4 bad-grpc-timeout: ``99999999H`` (valid, ~11,400 years) reaches the provider capped
    at 300 s; ``1S`` stays 1 s (rounded up, never longer)."""
    async with running_grpc_stack() as stack, raw_connection(stack.address) as conn:
        await conn.handshake_done()
        for sid, value in ((1, b"99999999H"), (3, b"1S")):
            headers = request(f"/{SERVICE}/Sleep", (b"grpc-timeout", value))
            await conn.send(
                conn.f.headers(sid, headers), conn.f.data(sid, message(b"0"), end_stream=True)
            )
            got = await conn.response(sid)
            assert got.status == 0, got
        capped, one = stack.main.time_remaining
        assert capped is not None and 250 < capped <= 300
        assert one is not None and 0.5 < one <= 1


# --- G5 message size --------------------------------------------------------------------------


async def test_a_request_over_4_mib_is_resource_exhausted_before_the_provider() -> None:
    """G5 message-size: a 4 MiB + 1 request gets RESOURCE_EXHAUSTED from laneway and never
    reaches the provider (which would take it); exactly 4 MiB passes."""
    async with limits_stack() as t:
        echo = t.via_laneway.unary_unary(_path("EchoSize"), None, None)
        with pytest.raises(grpc.RpcError) as info:
            await trio.to_thread.run_sync(
                lambda: echo(bytes(MAX_MESSAGE + 1), timeout=CALL_TIMEOUT_S)
            )
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert str(MAX_MESSAGE) in (info.value.details() or "")
        assert t.proxy.grpc_forwarder.stats.oversize == 1
        assert t.provider.calls == 0
        reply = await trio.to_thread.run_sync(
            lambda: echo(bytes(MAX_MESSAGE), timeout=CALL_TIMEOUT_S)
        )
        assert reply == b"%d" % MAX_MESSAGE


async def test_a_response_over_4_mib_is_resource_exhausted() -> None:
    """G5 message-size: the provider answers 4 MiB + 1; the client (which would accept it)
    gets RESOURCE_EXHAUSTED from laneway; exactly 4 MiB passes."""
    async with limits_stack() as t:
        big = t.via_laneway.unary_unary(_path("Big"), None, None)
        with pytest.raises(grpc.RpcError) as info:
            await trio.to_thread.run_sync(
                lambda: big(b"%d" % (MAX_MESSAGE + 1), timeout=CALL_TIMEOUT_S)
            )
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert t.provider.address in (info.value.details() or "")  # laneway's own message
        assert t.proxy.grpc_forwarder.stats.oversize == 1
        reply = await trio.to_thread.run_sync(
            lambda: big(b"%d" % MAX_MESSAGE, timeout=CALL_TIMEOUT_S)
        )
        assert len(reply) == MAX_MESSAGE


# --- R10 graceful drain -----------------------------------------------------------------------

DRAIN_CALL_MS = 300
GRPCIO_IN_FLIGHT = 5
MAX_STREAM_ID = 2**31 - 1


def _refused(address: str) -> bool:
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


async def test_graceful_drain_goaway_ping_then_final_goaway_and_in_flight_calls_finish() -> None:
    """R10 graceful-drain (gRPC): ``proxy.shutdown()`` with calls in flight: a raw client
    sees GOAWAY(2^31-1, NO_ERROR) + PING, and after its PING ACK the final GOAWAY naming
    its last stream; every in-flight call completes OK; new connections are refused and
    a new stream on the drained connection is refused; the proxy then exits."""
    async with running_grpc_stack() as stack, raw_connection(stack.address) as conn:
        await conn.handshake_done()
        await conn.send(
            conn.f.headers(1, request(f"/{SERVICE}/Sleep")),
            conn.f.data(1, message(b"%d" % DRAIN_CALL_MS), end_stream=True),
        )
        results: list[bytes] = []

        def in_flight() -> None:
            results.append(stack.unary("Sleep")(b"%d" % DRAIN_CALL_MS, timeout=CALL_TIMEOUT_S))

        async with trio.open_nursery() as nursery:
            for _ in range(GRPCIO_IN_FLIGHT):
                nursery.start_soon(trio.to_thread.run_sync, in_flight)
            await until(lambda: stack.main.calls == GRPCIO_IN_FLIGHT + 1)
            stack.proxy.shutdown()
            draining = trio.current_time()

            first = await conn.goaway()
            assert (first.last_stream_id, first.error_code) == (MAX_STREAM_ID, ErrorCode.NO_ERROR)
            await conn.read_until(lambda: bool(pings(conn, ack=False)))
            ping = pings(conn, ack=False)[0]
            await conn.send(PingFrame(0, ping.opaque_data, flags=["ACK"]).serialize())
            await conn.read_until(lambda: len(conn.of(GoAwayFrame)) == 2)
            final = conn.of(GoAwayFrame)[1]
            assert (final.last_stream_id, final.error_code) == (1, ErrorCode.NO_ERROR)

            await until(lambda: _refused(stack.address))  # no new connections
            await conn.send(
                conn.f.headers(3, request(f"/{SERVICE}/Hello")),
                conn.f.data(3, message(b"late"), end_stream=True),
            )
            assert (await conn.response(3)).reset == ErrorCode.REFUSED_STREAM
            got = await conn.response(1)
            assert got.status == 0
            assert got.data == message(b"slept")
        assert results == [b"slept"] * GRPCIO_IN_FLIGHT
        await until(stack.proxy.stopped.is_set)
        # It waited for the calls, not for the 30 s drain timeout.
        assert trio.current_time() - draining < stack.proxy.config.limits.drain_timeout
        assert stack.main.calls == GRPCIO_IN_FLIGHT + 1  # the late stream never went upstream


# --- R11 backpressure -------------------------------------------------------------------------

READ_RATE = 10 * 1024
# TESTS.md R11: the downstream reads 10 KB/s.
READ_TICK_S = 0.1
READ_TICKS = 12
SMALL_WINDOW = 16 * 1024


async def test_a_slow_reader_keeps_laneway_buffers_bounded_and_the_provider_paused() -> None:
    """R11 backpressure: a fast provider streams to a client that reads 10 KB/s (it opens
    its HTTP/2 windows by that much per second). laneway holds at most one upstream window
    + 32 KiB for the stream, and the provider is flow-controlled: it produces about what the
    client consumes, not megabytes."""
    async with (
        limits_stack() as t,
        raw_connection(t.stack.address, settings={0x4: SMALL_WINDOW}) as conn,
    ):
        await conn.handshake_done()
        await conn.send(
            conn.f.headers(1, request(_path("Flood"))),
            conn.f.data(1, message(b""), end_stream=True),
        )
        await until(lambda: t.provider.calls == 1)
        held: list[int] = []
        produced: list[int] = []
        per_tick = int(READ_RATE * READ_TICK_S)
        for _ in range(READ_TICKS):
            with trio.move_on_after(READ_TICK_S):
                while await conn.read_some():
                    pass
            (down,) = t.proxy.grpc._connections
            held.append(down.codec.blocked_bytes(1) + down.codec.unflushed_bytes)
            produced.append(t.provider.flooded)
            await conn.send(conn.f.window_update(1, per_tick), conn.f.window_update(0, per_tick))
        consumed = len(conn.streams[1].data)
        assert consumed <= SMALL_WINDOW + READ_TICKS * per_tick
        assert max(held) <= INITIAL_STREAM_WINDOW + SOFT_UNFLUSHED_BYTES, held
        # Paused: over the second half the provider advanced by about what was read, far
        # below what a free-running provider makes in the same time (megabytes).
        half = READ_TICKS // 2
        assert produced[-1] - produced[half] <= INITIAL_STREAM_WINDOW + half * per_tick, produced
        assert produced[-1] <= consumed + 2 * INITIAL_STREAM_WINDOW + SOFT_UNFLUSHED_BYTES
