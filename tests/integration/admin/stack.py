"""A whole laneway with telemetry and the admin listener on loopback, for these tests.

The proxy listens for Dubbo, gRPC and admin on port 0, traces into the SDK's in-memory
exporter, and routes to real providers: demo Dubbo servers (trio) and grpcio servers, in
main and in ``feature-1``. ``http`` speaks to the admin API with the standard library's
HTTP client in a worker thread (a real client, not the server's own code).
"""

from __future__ import annotations

import http.client
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
import trio
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from proxy.config import LanewayConfig, Listen, TelemetryConfig
from proxy.demo import GREETER, INVENTORY, DemoProvider
from proxy.net.dubbo_client import CallResult, DubboClient
from proxy.registry.model import split_address
from proxy.serve import Bound, Proxy
from proxy.telemetry import Telemetry
from tests.integration.grpc.stack import SERVICE, GrpcProvider, publish, start_provider

FEATURE = "feature-1"
HTTP_TIMEOUT_S = 10.0
# why: every admin answer is computed from memory; 10 s means the server is stuck.
CALL_TIMEOUT_S = 10.0
# why: a call through the loopback proxy takes milliseconds; 10 s means a hang.


@dataclass(frozen=True)
class HttpReply:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode()


@dataclass
class AdminStack:
    proxy: Proxy
    bound: Bound
    spans: InMemorySpanExporter
    main: DemoProvider
    feature: DemoProvider
    grpc_main: GrpcProvider
    grpc_feature: GrpcProvider
    channel: grpc.Channel

    @property
    def admin(self) -> str:
        assert self.bound.admin is not None
        return self.bound.admin

    async def http(self, method: str, path: str) -> HttpReply:
        host, port = split_address(self.admin)

        def fetch() -> HttpReply:
            conn = http.client.HTTPConnection(host, port, timeout=HTTP_TIMEOUT_S)
            try:
                conn.request(method, path)
                reply = conn.getresponse()
                headers = {k.lower(): v for k, v in reply.getheaders()}
                return HttpReply(reply.status, headers, reply.read())
            finally:
                conn.close()

        return await trio.to_thread.run_sync(fetch)

    async def dubbo_call(
        self,
        *,
        service: str = GREETER,
        method: str = "sayHello",
        args: tuple[object, ...] = ("world",),
        tag: str | None = None,
        attachments: dict[str, object] | None = None,
    ) -> CallResult:
        extra = dict(attachments or {})
        if tag is not None:
            extra["dubbo.tag"] = tag
        assert self.bound.dubbo is not None
        client = await DubboClient.connect(self.bound.dubbo)
        async with trio.open_nursery() as nursery:
            await nursery.start(client.run)
            try:
                with trio.fail_after(CALL_TIMEOUT_S):
                    return await client.call(
                        service, method, list(args), version="1.0.0", attachments=extra
                    )
            finally:
                await client.aclose()
                nursery.cancel_scope.cancel()

    async def grpc_call(
        self, method: str = "Hello", metadata: tuple[tuple[str, str], ...] = ()
    ) -> bytes:
        stub = self.channel.unary_unary(f"/{SERVICE}/{method}", None, None)
        result: bytes = await trio.to_thread.run_sync(
            lambda: stub(b"hi", metadata=metadata, timeout=CALL_TIMEOUT_S)
        )
        return result


@asynccontextmanager
async def admin_stack(
    tmp_path: Path | None = None,
    routes: str | None = None,
    *,
    sampling: float = 1.0,
    tracing: bool = True,
    access_log: bool = False,
    otlp_endpoint: str | None = None,
) -> AsyncIterator[AdminStack]:
    """Start the proxy and providers; yield once every provider is routable. Spans go to
    ``AdminStack.spans`` unless ``otlp_endpoint`` is given (then to it, over OTLP/HTTP)."""
    routes_path = None
    if routes is not None:
        assert tmp_path is not None
        routes_path = tmp_path / "routes.yaml"
        routes_path.write_text(routes)
    config = LanewayConfig(
        listen=Listen(dubbo="127.0.0.1:0", grpc="127.0.0.1:0", admin="127.0.0.1:0", registry=None),
        routes=routes_path,
        watch_routes=False,
        telemetry=TelemetryConfig(
            tracing=tracing,
            sampling=sampling,
            access_log=access_log,
            exporter="none" if otlp_endpoint is None else "otlp",
            otlp_endpoint=otlp_endpoint or TelemetryConfig().otlp_endpoint,
        ),
    )
    spans = InMemorySpanExporter()
    memory = spans if otlp_endpoint is None else None
    proxy = Proxy(config, telemetry=Telemetry(config.telemetry, span_exporter=memory))
    grpc_main = start_provider("main")
    grpc_feature = start_provider(FEATURE)
    try:
        async with trio.open_nursery() as nursery:
            bound = await nursery.start(proxy.run)
            assert bound.grpc is not None
            main = DemoProvider("main", frozenset({GREETER, INVENTORY}))
            feature = DemoProvider(FEATURE, frozenset({GREETER}))
            for provider in (main, feature):
                await nursery.start(provider.run)
                for key in provider.service_keys():
                    await proxy.registry.publish(key, provider.provider(key.interface))
            for gp in (grpc_main, grpc_feature):
                await publish(proxy, gp)
            channel = grpc.insecure_channel(bound.grpc)
            try:
                yield AdminStack(
                    proxy, bound, spans, main, feature, grpc_main, grpc_feature, channel
                )
            finally:
                channel.close()
                nursery.cancel_scope.cancel()
    finally:
        grpc_main.stop()
        grpc_feature.stop()
