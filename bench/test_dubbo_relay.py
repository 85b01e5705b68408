"""One Dubbo 2 call relayed through laneway's forwarder, without an event loop's waits.

What ``bench/e2e_dubbo.py`` cannot separate: the Python work laneway does per call between
its two reads, warm. The pieces are the real ones: the proxy's ``DownstreamConnection``
(codec, admission, call table, send batching) and ``DubboForwarder`` (call, routing through
``Router`` with a ``dubbo.tag`` that falls back to main, the tag re-injected into the
attachments, ``DubboCall``), an ``UpstreamConnection`` to the provider (id rewrite, deadline,
completion), and the observer ``laneway serve`` runs by default (call metrics). A
``ClientConnection`` plays the consumer and a ``ServerConnection`` the provider. The proxy's
two connections send on real socketpairs (``RawSocketStream.send_nowait``, as in
production); the benchmark reads the other ends itself, so no task ever waits.
Per round: the consumer's request goes through the downstream read path, the provider
answers what arrived (a pre-encoded ``"hello world"``), the answer goes through the
upstream read path, and the consumer decodes the relayed answer.
"""

from __future__ import annotations

import socket
from collections.abc import Callable

import pytest
import trio
from pytest_benchmark.fixture import BenchmarkFixture

from bench.harness import drain
from proxy.codecs.dubbo import (
    ClientConnection,
    RequestReceived,
    ResponseReceived,
    ServerConnection,
    encode_request,
    encode_value_response,
    rewrite_request_id,
)
from proxy.config import TelemetryConfig
from proxy.forward import DubboForwarder
from proxy.health import HostHealth
from proxy.net.dubbo_downstream import DownstreamConnection, DubboFrontend, FrontendLimits
from proxy.net.dubbo_upstream import UpstreamConnection
from proxy.net.outbox import batched
from proxy.net.pool import UpstreamPool
from proxy.net.rawsock import RawSocketStream
from proxy.registry.model import Provider
from proxy.router import Router, TableRef
from proxy.telemetry import Telemetry
from routing import loads

PROVIDER = "127.0.0.1:20880"
SERVICE = "com.acme.demo.GreeterService"
ROUNDS = 2_000
# why: calls per timed trio.run (one event loop start is ~1 ms: amortised below 1 us).
TAG = "feature-1"
REQUEST = encode_request(
    request_id=0,
    path=SERVICE,
    method="sayHello",
    parameter_types="Ljava/lang/String;",
    arguments=["world"],
    attachments={
        "path": SERVICE,
        "interface": SERVICE,
        "version": "1.0.0",
        "timeout": "3000",
        "dubbo.tag": TAG,
    },
    version="1.0.0",
)
ANSWER = encode_value_response(0, "hello world")


class Relay:
    """The proxy's two connections plus the consumer and the provider codecs."""

    def __init__(self, nursery: trio.Nursery, *, metrics: bool) -> None:
        self.nursery = nursery
        table = loads(f"environments: {{{TAG}: {{}}}}\n", "routes.yaml")
        lanes = {"main": (Provider(address=PROVIDER, protocol="dubbo", env="main"),)}
        health = HostHealth()
        router = Router(TableRef(table), lambda _key: lanes, health, trio.current_time)
        pool: UpstreamPool[UpstreamConnection] = UpstreamPool(
            health, _upstream, connect_timeout=1.0
        )
        self.telemetry = Telemetry(TelemetryConfig(metrics=metrics))
        self.forwarder = DubboForwarder(
            router,
            pool,
            route_timeout=30.0,
            max_timeout=60.0,
            observer=self.telemetry.observer,
        )
        self.frontend = DubboFrontend(self.forwarder, LIMITS)
        down_proxy, self.consumer_sock = socket.socketpair()
        up_proxy, self.provider_sock = socket.socketpair()
        for sock in (self.consumer_sock, self.provider_sock):
            sock.setblocking(False)
        self.down = DownstreamConnection(RawSocketStream(down_proxy), self.frontend)
        self.up = _upstream(PROVIDER, RawSocketStream(up_proxy), lambda _address: None)
        pool._conns[PROVIDER] = self.up  # (the bench plays the connected pool)
        self.consumer = ClientConnection()
        self.provider = ServerConnection()
        self.checked = False

    def close(self) -> None:
        for stream in (self.down._stream, self.up._stream):
            assert isinstance(stream, RawSocketStream)
            stream.close()
        self.consumer_sock.close()
        self.provider_sock.close()
        self.telemetry.shutdown()

    def _to_proxy_down(self, data: bytes) -> None:
        """What DownstreamConnection._read_loop does with one read."""
        down = self.down
        with batched():
            down._handle(down.codec.receive_data(data), self.nursery)

    def _to_proxy_up(self, data: bytes) -> None:
        """What UpstreamConnection._reader does with one read."""
        up = self.up
        with batched():
            up._dispatch(up._codec.receive_data(data))

    def call(self) -> None:
        consumer, provider = self.consumer, self.provider
        call_id = consumer.send_request(REQUEST)
        self._to_proxy_down(consumer.data_to_send())
        for event in provider.receive_data(drain(self.provider_sock)):
            assert type(event) is RequestReceived, event
            request = event.request
            if not self.checked:  # the tag re-injected (fallback to main): checked once
                attachments = request.attachments
                assert attachments["dubbo.tag"] == TAG, attachments
                assert attachments["x-env"] == TAG, attachments
                assert attachments["baggage"] == f"env={TAG}", attachments
                assert attachments["path"] == SERVICE, attachments
                self.checked = True
            provider.send_response(rewrite_request_id(ANSWER, request.request_id))
        self._to_proxy_up(provider.data_to_send())
        answered = False
        for event in consumer.receive_data(drain(self.consumer_sock)):
            assert type(event) is ResponseReceived, event
            response = event.response
            assert response.request_id == call_id, (response.request_id, call_id)
            assert response.frame[16:] == ANSWER[16:]
            answered = True
        assert answered, "the relayed call was not answered"


def _upstream(
    address: str, stream: trio.abc.Stream, on_readonly: Callable[[str], None]
) -> UpstreamConnection:
    return UpstreamConnection(
        address, stream, heartbeat_interval=60.0, idle_timeout=600.0, on_readonly=on_readonly
    )


LIMITS = FrontendLimits(
    request_read_timeout=10.0,
    max_inflight_per_connection=1000,
    max_inflight_total=10_000,
    max_connections=100,
    idle_timeout=600.0,
)


@pytest.fixture(scope="module")
def relay_run() -> Callable[[int, bool], None]:
    def run(n: int, metrics: bool) -> None:
        async def main() -> None:
            async with trio.open_nursery() as nursery:
                relay = Relay(nursery, metrics=metrics)
                for _ in range(n):
                    relay.call()
                assert relay.forwarder.stats.calls == n
                assert relay.up.in_flight == 0
                assert relay.down.in_flight == 0
                assert relay.frontend.stats.by_status == {20: n}
                relay.close()
                nursery.cancel_scope.cancel()

        trio.run(main)

    return run


@pytest.mark.parametrize("metrics", [True, False], ids=["metrics", "no-telemetry"])
def test_dubbo_relay_through_the_forwarder(
    benchmark: BenchmarkFixture, relay_run: Callable[[int, bool], None], metrics: bool
) -> None:
    """``ROUNDS`` relayed calls per round; divide the time by ROUNDS for one call.
    ``metrics``: with the call metrics ``laneway serve`` records by default."""
    benchmark.group = "dubbo-relay"
    benchmark.extra_info["calls_per_round"] = ROUNDS
    benchmark.pedantic(relay_run, args=(ROUNDS, metrics), rounds=5, warmup_rounds=1)  # type: ignore[no-untyped-call]
