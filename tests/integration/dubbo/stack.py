"""A whole laneway on loopback for integration tests: proxy + in-process embedded registry +
demo providers (real Dubbo servers on trio) in main and in a project env."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import trio

from proxy.config import LanewayConfig, Limits, Listen
from proxy.demo import GREETER, INVENTORY, DemoProvider
from proxy.net.dubbo_client import CallResult, DubboClient
from proxy.serve import Proxy
from tests.polling import until as until  # re-exported: tests import it from here

FEATURE = "feature-1"


@dataclass
class Stack:
    proxy: Proxy
    dubbo: str
    main: DemoProvider
    feature: DemoProvider
    nursery: trio.Nursery

    async def add_provider(self, env: str, services: frozenset[str]) -> DemoProvider:
        provider = DemoProvider(env, services)
        await self.nursery.start(provider.run)
        await self.publish(provider)
        return provider

    async def publish(self, provider: DemoProvider) -> None:
        for key in provider.service_keys():
            await self.proxy.registry.publish(key, provider.provider(key.interface))

    async def client(self) -> DubboClient:
        client = await DubboClient.connect(self.dubbo)
        await self.nursery.start(client.run)
        return client

    async def call(
        self,
        method: str = "sayHello",
        args: tuple[object, ...] = ("world",),
        *,
        service: str = GREETER,
        tag: str | None = None,
        attachments: dict[str, object] | None = None,
        client: DubboClient | None = None,
    ) -> CallResult:
        extra = dict(attachments or {})
        if tag is not None:
            extra["dubbo.tag"] = tag
        own = client is None
        c = client if client is not None else await self.client()
        try:
            with trio.fail_after(10):
                return await c.call(service, method, list(args), version="1.0.0", attachments=extra)
        finally:
            if own:
                await c.aclose()


@asynccontextmanager
async def running_stack(
    routes: str | None = None,
    tmp_path: Path | None = None,
    *,
    watch_routes: bool = True,
    **limits: float,
) -> AsyncIterator[Stack]:
    """Start everything; yield once the providers are routable; tear it all down after."""
    routes_path = None
    if routes is not None:
        assert tmp_path is not None
        routes_path = tmp_path / "routes.yaml"
        routes_path.write_text(routes)
    config = LanewayConfig(
        listen=Listen(dubbo="127.0.0.1:0", registry=None),
        routes=routes_path,
        watch_routes=watch_routes,
        limits=Limits(**limits),  # type: ignore[arg-type]
    )
    proxy = Proxy(config)
    async with trio.open_nursery() as nursery:
        bound = await nursery.start(proxy.run)
        assert bound.dubbo is not None
        main = DemoProvider("main", frozenset({GREETER, INVENTORY}))
        feature = DemoProvider(FEATURE, frozenset({GREETER}))
        stack = Stack(proxy, bound.dubbo, main, feature, nursery)
        for provider in (main, feature):
            await nursery.start(provider.run)
            await stack.publish(provider)
        yield stack
        nursery.cancel_scope.cancel()
