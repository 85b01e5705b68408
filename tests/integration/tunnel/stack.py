"""A laneway with its tunnel listener on loopback, a main provider of each protocol, and
laptops: real `TunnelClient`s piping to real local providers (DemoProvider for Dubbo, a
grpcio server for gRPC). Everything binds port 0."""

from __future__ import annotations

import ssl
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import trio

from proxy.config import LanewayConfig, Limits, Listen, TunnelConfig
from proxy.demo import DEMO_VERSION, GREETER, INVENTORY, DemoProvider
from proxy.net.dubbo_client import CallResult, DubboClient
from proxy.registry.model import ServiceKey
from proxy.serve import Bound, Proxy
from proxy.tunnel.client import Connected, LocalService, TunnelClient, TunnelRefused
from proxy.tunnel.server import TunnelServer
from proxy.tunnel.tokens import issue_token
from proxy.tunnel.wire import Announced, Hello, MessageReader, encode_message
from tests.integration.grpc.stack import SERVICE as GRPC_SERVICE
from tests.integration.grpc.stack import GrpcProvider, publish, start_provider

SECRET = "laneway-test-secret-0123456789abcdef"
ENV = "alice"
HEARTBEAT = 0.25
# why: short enough that heartbeat tests take a second, long enough for a loaded CI box.
CALL_LIMIT = 10.0
# why: every call in these tests answers in milliseconds; this only bounds a hang.


@dataclass
class Laptop:
    client: TunnelClient
    info: Connected
    dubbo: DemoProvider | None
    grpc: GrpcProvider | None
    cancel: trio.CancelScope
    lines: list[str] = field(default_factory=list)
    ended: list[TunnelRefused] = field(default_factory=list)
    """How the client gave up after having connected (e.g. replaced by a newer tunnel)."""

    def leave(self) -> None:
        """Ctrl-C: the client's task ends and the tunnel closes."""
        self.cancel.cancel()


@dataclass
class TunnelStack:
    proxy: Proxy
    bound: Bound
    main: DemoProvider
    grpc_main: GrpcProvider
    nursery: trio.Nursery
    grpc_providers: list[GrpcProvider] = field(default_factory=list)

    @property
    def tunnel(self) -> TunnelServer:
        assert self.proxy.tunnel is not None
        return self.proxy.tunnel

    @property
    def tunnel_address(self) -> str:
        assert self.bound.tunnel is not None
        return self.bound.tunnel

    def token(self, env: str = ENV, ttl: int = 3600, services: Sequence[str] = ()) -> str:
        return issue_token(SECRET.encode(), env, ttl, time.time(), services)

    async def laptop(
        self,
        token: str | None = None,
        *,
        dubbo: bool = True,
        grpc: bool = False,
        env_claim: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> Laptop:
        """Start local providers and a tunnel client for them; return once connected."""
        services: list[LocalService] = []
        demo: DemoProvider | None = None
        local_grpc: GrpcProvider | None = None
        if dubbo:
            demo = DemoProvider("laptop", frozenset({GREETER}))
            await self.nursery.start(demo.run)
            key = ServiceKey.of(GREETER, DEMO_VERSION)
            services.append(LocalService(Announced(key, "dubbo"), demo.address))
        if grpc:
            local_grpc = start_provider("laptop")
            self.grpc_providers.append(local_grpc)
            key = ServiceKey.of(GRPC_SERVICE)
            services.append(LocalService(Announced(key, "grpc"), local_grpc.address))
        lines: list[str] = []
        client = TunnelClient(
            self.tunnel_address,
            token if token is not None else self.token(),
            services,
            client_name="test-laptop",
            env=env_claim,
            ssl_context=ssl_context,
            out=lines.append,
            backoff_initial=0.05,
            backoff_max=0.2,
        )
        cancel = trio.CancelScope()
        ended: list[TunnelRefused] = []

        async def run(task_status: trio.TaskStatus[Connected]) -> None:
            with cancel:
                try:
                    await client.run(task_status=task_status)
                except TunnelRefused as exc:
                    if client.sessions == 0:
                        raise  # refused at connect: nursery.start() raises it to the test
                    ended.append(exc)

        info = await self.nursery.start(run)
        return Laptop(client, info, demo, local_grpc, cancel, lines, ended)

    async def client(self) -> DubboClient:
        assert self.bound.dubbo is not None
        client = await DubboClient.connect(self.bound.dubbo)
        await self.nursery.start(client.run)
        return client

    async def call(
        self,
        client: DubboClient,
        *,
        tag: str | None = None,
        method: str = "sayHello",
        args: tuple[object, ...] = ("world",),
        service: str = GREETER,
    ) -> CallResult:
        attachments: dict[str, object] = {} if tag is None else {"dubbo.tag": tag}
        with trio.fail_after(CALL_LIMIT):
            return await client.call(
                service, method, list(args), version=DEMO_VERSION, attachments=attachments
            )

    def lanes(self, service: str = GREETER, version: str = DEMO_VERSION) -> dict[str, Any]:
        return dict(self.proxy.registry.snapshot(ServiceKey.of(service, version)))


@asynccontextmanager
async def running_tunnel_stack(*, admin: bool = False, **tunnel: Any) -> AsyncIterator[TunnelStack]:
    """The proxy (Dubbo + gRPC + tunnel listeners, and the admin API when ``admin``) with
    main providers of both protocols; ``tunnel`` overrides the `tunnel:` section."""
    settings: dict[str, Any] = {"secret": SECRET, "heartbeat_interval": HEARTBEAT, **tunnel}
    config = LanewayConfig(
        listen=Listen(
            dubbo="127.0.0.1:0",
            grpc="127.0.0.1:0",
            registry=None,
            tunnel="127.0.0.1:0",
            admin="127.0.0.1:0" if admin else None,
        ),
        watch_routes=False,
        limits=Limits(),
        tunnel=TunnelConfig.model_validate(settings),
    )
    proxy = Proxy(config)
    grpc_main = start_provider("main")
    stack: TunnelStack | None = None
    try:
        async with trio.open_nursery() as nursery:
            bound = await nursery.start(proxy.run)
            main = DemoProvider("main", frozenset({GREETER, INVENTORY}))
            await nursery.start(main.run)
            for key in main.service_keys():
                await proxy.registry.publish(key, main.provider(key.interface))
            await publish(proxy, grpc_main)
            stack = TunnelStack(proxy, bound, main, grpc_main, nursery)
            yield stack
            nursery.cancel_scope.cancel()
    finally:
        grpc_main.stop()
        for provider in stack.grpc_providers if stack is not None else ():
            provider.stop()


POLL_INTERVAL = 0.01
UNTIL_LIMIT = 5.0
# why: every condition polled here holds within a heartbeat or two when the code works.


async def until(predicate: Any, limit: float = UNTIL_LIMIT) -> float:
    """Poll ``predicate`` until true; return the seconds it took; fail after ``limit``."""
    start = trio.current_time()
    while not predicate():
        if trio.current_time() - start > limit:
            raise AssertionError(f"condition not met within {limit}s")
        await trio.sleep(POLL_INTERVAL)
    return trio.current_time() - start


async def raw_tunnel(
    stack: TunnelStack, token: str, *, source: str = "127.0.0.1", op: str = "open"
) -> tuple[trio.SocketStream, dict[str, Any], bytes]:
    """A hand-driven laptop: dial (from ``source``), say hello for GREETER, read the answer.
    Returns the open connection, the answer and any bytes read past it (tests then speak,
    or fail to speak, HTTP/2 on it themselves)."""
    host, port = stack.tunnel_address.rsplit(":", 1)
    sock = trio.socket.socket()
    await sock.bind((source, 0))
    await sock.connect((host, int(port)))
    stream = trio.SocketStream(sock)
    announced = Announced(ServiceKey.of(GREETER, DEMO_VERSION), "dubbo")
    hello = Hello(op, token, "raw-laptop", None, (announced,) if op == "open" else ())
    await stream.send_all(encode_message(hello.as_json()))
    reader = MessageReader()
    with trio.fail_after(CALL_LIMIT):
        while (reply := reader.next()) is None:
            data = await stream.receive_some(65536)
            assert data, "the proxy closed without answering"
            reader.feed(bytes(data))
    return stream, reply, reader.leftover()
