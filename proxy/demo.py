"""`laneway demo`: the proxy, the embedded registry and demo providers in two envs.

The demo providers are real Dubbo 2 providers on trio (the sans-IO server codec behind a
socket). Each answers with the env that served it and echoes the tag it received, so a
person — or a test — can see routing and tag propagation at work. They register through
the registry's gRPC API with the same client any Python provider would use.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

import trio

from proxy.codecs.dubbo import (
    HEADER_LENGTH,
    ConnectionClosed,
    Request,
    RequestReceived,
    ServerConnection,
    count_parameters,
)
from proxy.codecs.hessian2 import DecodeError, Decoder, HessianObject
from proxy.errors import DubboStatus, LanewayError
from proxy.registry.backend import RegistryBackend
from proxy.registry.client import RegistryPublisher
from proxy.registry.model import Provider, ServiceKey, join_address

GREETER = "com.acme.demo.GreeterService"
INVENTORY = "com.acme.demo.InventoryService"
"""Only main runs the inventory service: tagged calls for it fall back to main."""
DEMO_VERSION = "1.0.0"
DEMO_ENV = "feature-1"
RECEIVE_SIZE = 64 * 1024
# why: demo calls are small; a read may still carry many pipelined requests.
MAX_SEEN = 1000
# why: tests read what the provider saw; a long demo must not grow without bound.

Handler = Callable[["Invocation"], Awaitable[object]]


@dataclass(frozen=True)
class Invocation:
    """One call as a provider sees it."""

    service: str
    method: str
    args: tuple[object, ...]
    attachments: Mapping[str, object]
    env: str


def decode_arguments(request: Request) -> tuple[object, ...]:
    """The request's arguments as Python values (a provider needs them; laneway never)."""
    decoder = Decoder(request.frame, HEADER_LENGTH)
    for _ in range(5):  # dubbo version, path, version, method, parameter types
        decoder.skip()
    return tuple(decoder.read() for _ in range(count_parameters(request.parameter_types)))


async def _say_hello(inv: Invocation) -> object:
    name = inv.args[0] if inv.args else "world"
    return f"Hello, {name}! (served by {inv.env})"


async def _greet(inv: Invocation) -> object:
    req = inv.args[0] if inv.args else None
    name = req.get("name", "world") if isinstance(req, HessianObject) else "world"
    return HessianObject("com.acme.demo.HelloReply", {"message": f"Hello, {name}!", "env": inv.env})


async def _stock(inv: Invocation) -> object:
    sku = inv.args[0] if inv.args else ""
    return {"sku": sku, "count": 42, "env": inv.env}


async def _sleep(inv: Invocation) -> object:
    millis = inv.args[0] if inv.args and isinstance(inv.args[0], int) else 0
    await trio.sleep(millis / 1000)
    return f"slept {millis} ms in {inv.env}"


DEMO_HANDLERS: dict[tuple[str, str], Handler] = {
    (GREETER, "sayHello"): _say_hello,
    (GREETER, "greet"): _greet,
    (GREETER, "sleep"): _sleep,
    (INVENTORY, "stock"): _stock,
}


@dataclass
class DemoProvider:
    """A Dubbo 2 provider of ``services`` in ``env``. ``run`` reports its address."""

    env: str
    services: frozenset[str]
    handlers: dict[tuple[str, str], Handler] = field(default_factory=lambda: dict(DEMO_HANDLERS))
    seen: list[Invocation] = field(default_factory=list)
    calls: int = 0
    address: str = ""
    _connections: dict[
        trio.SocketStream, tuple[ServerConnection, Callable[[], Awaitable[None]]]
    ] = field(default_factory=dict)

    async def run(
        self,
        listen: str = "127.0.0.1:0",
        *,
        task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        host, _, port = listen.rpartition(":")
        listeners = await trio.open_tcp_listeners(int(port), host=host)
        sockname = listeners[0].socket.getsockname()
        self.address = join_address(sockname[0], sockname[1])
        try:
            async with trio.open_nursery() as nursery:
                task_status.started(self.address)
                await trio.serve_listeners(self._serve, listeners, handler_nursery=nursery)
        finally:
            for listener in listeners:
                listener.socket.close()

    def service_keys(self) -> list[ServiceKey]:
        return [ServiceKey.of(s, DEMO_VERSION) for s in sorted(self.services)]

    def provider(self, service: str) -> Provider:
        methods = tuple(sorted(m for s, m in self.handlers if s == service))
        return Provider(
            address=self.address,
            env=self.env,
            methods=methods,
            application=f"demo-{self.env}",
            source="registry",
        )

    async def kill_connections(self) -> None:
        """Drop every consumer connection at once (tests: an upstream dying mid-call)."""
        for stream in list(self._connections):
            await trio.aclose_forcefully(stream)

    async def announce_readonly(self) -> None:
        """Send READONLY on every consumer connection, as a provider shutting down does."""
        for codec, flush in list(self._connections.values()):
            codec.send_readonly()
            await flush()

    async def _serve(self, stream: trio.SocketStream) -> None:
        codec = ServerConnection()
        lock = trio.Lock()

        async def flush() -> None:
            async with lock:
                data = codec.data_to_send()
                if data:
                    await stream.send_all(data)

        self._connections[stream] = (codec, flush)

        try:
            async with trio.open_nursery() as calls:
                with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                    await self._read_loop(stream, codec, flush, calls)
                calls.cancel_scope.cancel()
        finally:
            self._connections.pop(stream, None)
            await trio.aclose_forcefully(stream)

    async def _read_loop(
        self,
        stream: trio.SocketStream,
        codec: ServerConnection,
        flush: Callable[[], Awaitable[None]],
        calls: trio.Nursery,
    ) -> None:
        while True:
            data = bytes(await stream.receive_some(RECEIVE_SIZE))
            try:
                events = codec.receive_data(data)
            except LanewayError:
                return  # a broken consumer: drop the connection
            for event in events:
                if isinstance(event, RequestReceived):
                    calls.start_soon(self._answer, codec, event.request, flush)
                elif isinstance(event, ConnectionClosed):
                    return
            await flush()

    async def _answer(
        self, codec: ServerConnection, request: Request, flush: Callable[[], Awaitable[None]]
    ) -> None:
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await self._dispatch(codec, request, flush)  # (the consumer may be gone)

    async def _dispatch(
        self, codec: ServerConnection, request: Request, flush: Callable[[], Awaitable[None]]
    ) -> None:
        self.calls += 1
        handler = self.handlers.get((request.path, request.method))
        if request.path not in self.services or handler is None:
            if request.two_way:
                codec.send_error(
                    request.request_id,
                    int(DubboStatus.SERVICE_NOT_FOUND),
                    f"demo provider ({self.env}) has no {request.path}.{request.method}",
                )
                await flush()
            return
        try:
            args = decode_arguments(request)
        except DecodeError as exc:
            codec.send_error(request.request_id, int(DubboStatus.BAD_REQUEST), str(exc))
            await flush()
            return
        inv = Invocation(request.path, request.method, args, dict(request.attachments), self.env)
        if len(self.seen) < MAX_SEEN:
            self.seen.append(inv)
        value = await handler(inv)
        if request.two_way:
            tag = inv.attachments.get("dubbo.tag")
            codec.send_value(
                request.request_id,
                value,
                attachments={
                    "served-by": self.env,
                    "seen-tag": tag if isinstance(tag, str) else "",
                },
            )
            await flush()


def laneway_command() -> str:
    """How the person who started the demo runs laneway (``.venv/bin/laneway`` after
    ``make run``): the ready-to-paste commands must work as printed."""
    argv0 = sys.argv[0]
    if os.path.basename(argv0) != "laneway":
        return "laneway"
    relative = os.path.relpath(argv0)
    return relative if not relative.startswith("..") else argv0


def demo_commands(dubbo: str, prog: str = "laneway") -> Sequence[str]:
    """Ready-to-paste commands showing the three routing cases."""
    url = f"dubbo://{dubbo}"
    return (
        f"{prog} call {url}/{GREETER} sayHello '[\"world\"]' --version {DEMO_VERSION}",
        f"{prog} call {url}/{GREETER} sayHello '[\"world\"]' --version {DEMO_VERSION} "
        f"--tag {DEMO_ENV}",
        f"{prog} call {url}/{INVENTORY} stock '[\"sku-1\"]' --version {DEMO_VERSION} "
        f"--tag {DEMO_ENV}",
    )


async def publish_all(registry: str, providers: Sequence[DemoProvider]) -> RegistryPublisher:
    """Register every demo provider with the registry at ``registry`` (gRPC). Returns the
    publisher; closing it unregisters them (their lease is the stream)."""
    publisher = RegistryPublisher(registry).start()
    for demo in providers:
        for key in demo.service_keys():
            await trio.to_thread.run_sync(publisher.register, key, demo.provider(key.interface))
    return publisher


async def wait_until_routable(registry: RegistryBackend, keys: Sequence[ServiceKey]) -> None:
    """Return once the registry lists every key (registration reaches it asynchronously)."""
    async with registry.changes() as changes:
        if all(registry.snapshot(k) for k in keys):
            return
        async for _batch in changes:
            if all(registry.snapshot(k) for k in keys):
                return


async def run_demo(
    dubbo_listen: str = "127.0.0.1:20880",
    *,
    out: Callable[[str], None] = print,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run the whole demo until SIGINT/SIGTERM; report the proxy's Dubbo address."""
    import signal

    from proxy.config import LanewayConfig, Listen
    from proxy.serve import Proxy

    config = LanewayConfig(listen=Listen(dubbo=dubbo_listen, registry="127.0.0.1:0"))
    proxy = Proxy(config)
    main = DemoProvider("main", frozenset({GREETER, INVENTORY}))
    feature = DemoProvider(DEMO_ENV, frozenset({GREETER}))
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            bound = await nursery.start(proxy.run)
            assert bound.dubbo is not None and bound.registry is not None
            await nursery.start(main.run)
            await nursery.start(feature.run)
            publisher = await publish_all(bound.registry, [main, feature])
            try:
                keys = main.service_keys() + feature.service_keys()
                await wait_until_routable(proxy.registry, keys)
                out(f"laneway demo ready: dubbo={bound.dubbo} registry={bound.registry}")
                out(f"  providers: main at {main.address} ({GREETER}, {INVENTORY})")
                out(f"             {DEMO_ENV} at {feature.address} ({GREETER} only)")
                out("  try (untagged -> main; tagged -> feature-1; tagged, missing -> main):")
                for command in demo_commands(bound.dubbo, laneway_command()):
                    out(f"    {command}")
                out("  Ctrl-C stops everything.")
                task_status.started(bound.dubbo)
                async for _signum in signals:
                    break
            finally:
                with trio.CancelScope(shield=True):
                    await trio.to_thread.run_sync(publisher.close)
                proxy.shutdown()
                nursery.cancel_scope.cancel()
