"""One unary gRPC call relayed through laneway's forwarder, without an event loop's waits.

What ``bench/e2e_grpc.py`` cannot separate: the Python work laneway does per call between
its two reads, warm. The pieces are the real ones: a client-side codec for the client, the
proxy's ``H2Downstream`` (codec, call table, send batching) and ``GrpcForwarder`` (call
info, routing through ``Router`` with a tag that falls back to main, the outbound headers,
``GrpcCall``), an ``H2Upstream`` to the provider, and a server-side codec for the provider.
The proxy's two connections send on real socketpairs (``RawSocketStream.send_nowait``,
as in production); the benchmark reads the other ends itself, so no task ever waits.
Per round: the client's request bytes go through the downstream read path, the provider
answers what arrived (HEADERS, a 64-byte message, trailers), the answer goes through the
upstream read path, and the client decodes the relayed answer.
"""

from __future__ import annotations

import socket
from collections.abc import Callable

import pytest
import trio
from pytest_benchmark.fixture import BenchmarkFixture

from bench.harness import drain
from proxy.codecs.grpc import events as ev
from proxy.codecs.grpc.connection import H2Connection
from proxy.codecs.grpc.grpc import encode_message
from proxy.grpc_forward import GrpcForwarder
from proxy.health import HostHealth
from proxy.net.grpc_downstream import GrpcFrontend, GrpcFrontendLimits, H2Downstream
from proxy.net.h2_upstream import H2Upstream
from proxy.net.outbox import batched
from proxy.net.pool import UpstreamPool
from proxy.net.rawsock import RawSocketStream
from proxy.registry.model import Provider
from proxy.router import Router, TableRef
from routing import loads

PROVIDER = "127.0.0.1:7001"
ROUNDS = 2_000
# why: calls per timed trio.run (one event loop start is ~1 ms: amortised below 1 us).
REQUEST = [
    (b":method", b"POST"),
    (b":scheme", b"http"),
    (b":path", b"/demo.Greeter/Hello"),
    (b":authority", b"127.0.0.1:50051"),
    (b"content-type", b"application/grpc"),
    (b"te", b"trailers"),
    (b"grpc-timeout", b"999000u"),
    (b"user-agent", b"grpc-python/1.62 grpc-c/39.0 (linux; chttp2)"),
    (b"x-env", b"feature-1"),
]
RESPONSE = [(b":status", b"200"), (b"content-type", b"application/grpc")]
TRAILERS = [(b"grpc-status", b"0")]
MESSAGE = encode_message(b"m" * 64)


class Relay:
    """The proxy's two connections plus the client and the provider codecs."""

    def __init__(self, nursery: trio.Nursery) -> None:
        self.nursery = nursery
        table = loads("environments: {feature-1: {}}\n", "routes.yaml")
        lanes = {"main": (Provider(address=PROVIDER, protocol="grpc", env="main"),)}
        health = HostHealth()
        router = Router(TableRef(table), lambda _key: lanes, health, trio.current_time)
        pool: UpstreamPool[H2Upstream] = UpstreamPool(
            health, lambda a, s, _r: H2Upstream(a, s), connect_timeout=1.0
        )
        self.forwarder = GrpcForwarder(router, pool, route_timeout=30.0, max_message_size=1 << 20)
        frontend = GrpcFrontend(self.forwarder, GrpcFrontendLimits(16, idle_timeout=60.0))
        down_proxy, self.client_sock = socket.socketpair()
        up_proxy, self.provider_sock = socket.socketpair()
        for sock in (self.client_sock, self.provider_sock):
            sock.setblocking(False)
        self.down = H2Downstream(RawSocketStream(down_proxy), frontend)
        self.up = H2Upstream(PROVIDER, RawSocketStream(up_proxy))
        pool._conns[PROVIDER] = self.up  # (the bench plays the connected pool)
        self.client = H2Connection(client_side=True)
        self.provider = H2Connection(client_side=False)
        # Handshakes: SETTINGS both ways on both connections.
        self._to_proxy_down(self.client.data_to_send())
        self.client.receive_data(drain(self.client_sock), 0.0)
        self._to_proxy_down(self.client.data_to_send())
        self.provider.receive_data(self._flushed_up(), 0.0)
        self._to_proxy_up(self.provider.data_to_send())
        self.provider.receive_data(self._flushed_up(), 0.0)

    def close(self) -> None:
        for stream in (self.down._stream, self.up._stream):
            assert isinstance(stream, RawSocketStream)
            stream.close()
        self.client_sock.close()
        self.provider_sock.close()

    def _flushed_up(self) -> bytes:
        self.up.kick()
        return drain(self.provider_sock)

    def _to_proxy_down(self, data: bytes) -> None:
        """What H2Downstream._read_loop does with one read."""
        down = self.down
        with batched():
            down._handle(down.codec.receive_data(data, trio.current_time()), self.nursery)

    def _to_proxy_up(self, data: bytes) -> None:
        """What H2Upstream._reader does with one read."""
        up = self.up
        with batched():
            for event in up.codec.receive_data(data, trio.current_time()):
                up._dispatch(event)
            up.kick()

    def call(self) -> None:
        client, provider = self.client, self.provider
        sid = client.get_next_available_stream_id()
        client.send_headers(sid, REQUEST)
        client.send_data(sid, MESSAGE, end_stream=True)
        self._to_proxy_down(client.data_to_send())
        for event in provider.receive_data(drain(self.provider_sock), 0.0):
            if type(event) is ev.DataReceived:
                provider.acknowledge_received_data(event.stream_id, len(event.data))
            elif type(event) is ev.StreamEnded:
                up_sid = event.stream_id
                provider.send_headers(up_sid, RESPONSE)
                provider.send_data(up_sid, MESSAGE)
                provider.send_headers(up_sid, TRAILERS, end_stream=True)
        self._to_proxy_up(provider.data_to_send())
        ended = False
        for event in client.receive_data(drain(self.client_sock), 0.0):
            if type(event) is ev.DataReceived:
                assert event.data == MESSAGE
                client.acknowledge_received_data(sid, len(event.data))
            elif type(event) is ev.TrailersReceived:
                assert event.headers == ((b"grpc-status", b"0"),), event.headers
            elif type(event) is ev.StreamEnded:
                ended = True
        assert ended, "the relayed call did not end"
        self._to_proxy_down(client.data_to_send())  # window updates, as a client sends


@pytest.fixture(scope="module")
def relay_run() -> Callable[[int], None]:
    def run(n: int) -> None:
        async def main() -> None:
            async with trio.open_nursery() as nursery:
                relay = Relay(nursery)
                for _ in range(n):
                    relay.call()
                assert relay.forwarder.stats.calls == n
                assert relay.up.open_streams == 0
                relay.close()
                nursery.cancel_scope.cancel()

        trio.run(main)

    return run


def test_unary_relay_through_the_forwarder(
    benchmark: BenchmarkFixture, relay_run: Callable[[int], None]
) -> None:
    """``ROUNDS`` relayed unary calls per round; divide the time by ROUNDS for one call."""
    benchmark.group = "grpc-relay"
    benchmark.extra_info["calls_per_round"] = ROUNDS
    benchmark.pedantic(relay_run, args=(ROUNDS,), rounds=5, warmup_rounds=1)  # type: ignore[no-untyped-call]
