"""laneway's gRPC path on loopback: the proxy plus real grpcio servers in main and in a
project env, called by a real grpcio client (in worker threads: grpcio is blocking)."""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import trio

from proxy.config import LanewayConfig, Limits, Listen, TlsConfig
from proxy.registry.model import Provider, ServiceKey
from proxy.serve import Proxy
from tests.polling import until as until  # re-exported: tests import it from here

SERVICE = "demo.Greeter"
FEATURE = "feature-1"
SERVER_THREADS = 32
# why: streaming tests keep dozens of calls open at once on one server.


@dataclass
class GrpcProvider:
    """A grpcio server of ``demo.Greeter`` that says which env it is in."""

    env: str
    server: grpc.Server
    address: str
    seen_metadata: list[dict[str, str]] = field(default_factory=list)
    calls: int = 0
    time_remaining: list[float | None] = field(default_factory=list)
    cancelled: threading.Event = field(default_factory=threading.Event)

    def stop(self) -> None:
        self.server.stop(grace=None)


def start_provider(env: str) -> GrpcProvider:
    server = grpc.server(ThreadPoolExecutor(max_workers=SERVER_THREADS))
    provider = GrpcProvider(env, server, "")

    def note(context: grpc.ServicerContext) -> None:
        provider.calls += 1
        provider.seen_metadata.append({k: str(v) for k, v in context.invocation_metadata()})

    def hello(request: bytes, context: grpc.ServicerContext) -> bytes:
        note(context)
        return env.encode() + b":" + request

    def sleep(request: bytes, context: grpc.ServicerContext) -> bytes:
        note(context)
        provider.time_remaining.append(context.time_remaining())
        deadline = time.monotonic() + int(request) / 1000
        while time.monotonic() < deadline:
            if not context.is_active():
                provider.cancelled.set()
                return b""
            time.sleep(0.005)
        return b"slept"

    def count(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        note(context)
        for i in range(int(request)):
            yield b"%d" % i

    def total(requests: Iterator[bytes], context: grpc.ServicerContext) -> bytes:
        note(context)
        return b"%d" % sum(len(r) for r in requests)

    def chat(requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
        note(context)
        for r in requests:
            yield env.encode() + b">" + r

    def fail(request: bytes, context: grpc.ServicerContext) -> bytes:
        note(context)
        context.abort(grpc.StatusCode.FAILED_PRECONDITION, "no: " + request.decode())

    def size(request: bytes, context: grpc.ServicerContext) -> bytes:
        note(context)
        return b"x" * int(request)

    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {
        "Hello": grpc.unary_unary_rpc_method_handler(hello),
        "Sleep": grpc.unary_unary_rpc_method_handler(sleep),
        "Fail": grpc.unary_unary_rpc_method_handler(fail),
        "Size": grpc.unary_unary_rpc_method_handler(size),
        "Count": grpc.unary_stream_rpc_method_handler(count),
        "Total": grpc.stream_unary_rpc_method_handler(total),
        "Chat": grpc.stream_stream_rpc_method_handler(chat),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    provider.address = f"127.0.0.1:{port}"
    return provider


@dataclass
class GrpcStack:
    proxy: Proxy
    address: str
    main: GrpcProvider
    feature: GrpcProvider
    channel: grpc.Channel

    def unary(self, method: str) -> grpc.UnaryUnaryMultiCallable[bytes, bytes]:
        return self.channel.unary_unary(f"/{SERVICE}/{method}", None, None)

    async def call(
        self,
        method: str = "Hello",
        request: bytes = b"hi",
        *,
        metadata: tuple[tuple[str, str], ...] = (),
        deadline_s: float = 10.0,
    ) -> bytes:
        """One unary call with a gRPC deadline of ``deadline_s`` (the client's own)."""
        stub = self.unary(method)
        result: bytes = await trio.to_thread.run_sync(
            lambda: stub(request, metadata=metadata, timeout=deadline_s)
        )
        return result


async def publish(proxy: Proxy, provider: GrpcProvider) -> None:
    key = ServiceKey.of(SERVICE)
    entry = Provider(address=provider.address, protocol="grpc", env=provider.env, source="registry")
    await proxy.registry.publish(key, entry)


@asynccontextmanager
async def running_grpc_stack(
    routes: str | None = None,
    tmp_path: Path | None = None,
    *,
    registry_listen: str | None = None,
    grpc_tls: TlsConfig | None = None,
    channel_credentials: grpc.ChannelCredentials | None = None,
    **limits: float,
) -> AsyncIterator[GrpcStack]:
    routes_path = None
    if routes is not None:
        assert tmp_path is not None
        routes_path = tmp_path / "routes.yaml"
        routes_path.write_text(routes)
    config = LanewayConfig(
        listen=Listen(dubbo=None, grpc="127.0.0.1:0", registry=registry_listen, grpc_tls=grpc_tls),
        routes=routes_path,
        watch_routes=False,
        limits=Limits(**limits),  # type: ignore[arg-type]
    )
    proxy = Proxy(config)
    main = start_provider("main")
    feature = start_provider(FEATURE)
    try:
        async with trio.open_nursery() as nursery:
            bound = await nursery.start(proxy.run)
            assert bound.grpc is not None
            for provider in (main, feature):
                await publish(proxy, provider)
            channel = (
                grpc.insecure_channel(bound.grpc)
                if channel_credentials is None
                else grpc.secure_channel(bound.grpc, channel_credentials)
            )
            try:
                yield GrpcStack(proxy, bound.grpc, main, feature, channel)
            finally:
                channel.close()
                nursery.cancel_scope.cancel()
    finally:
        main.stop()
        feature.stop()
