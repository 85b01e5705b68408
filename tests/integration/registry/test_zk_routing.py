"""laneway serving Dubbo calls with ZooKeeper as its registry (Apache Dubbo's layout).

A "Dubbo fleet" writes Java-format provider URLs under ``/dubbo/{interface}/providers``; a
URL's ``dubbo.tag`` is its env. The proxy learns them through the ZooKeeper backend and
routes real calls to real providers by tag — and stops routing to a provider the moment
its node goes.
"""

from __future__ import annotations

import trio
from kazoo.client import KazooClient

from proxy.config import LanewayConfig, Listen, ZooKeeperRegistryConfig
from proxy.demo import GREETER, DemoProvider
from proxy.errors import DubboStatus
from proxy.net.dubbo_client import call_once
from proxy.registry.dubbo_url import provider_node_name, providers_path
from proxy.registry.model import Provider, ServiceKey
from proxy.serve import Proxy
from tests.polling import until

FEATURE = "feature-1"


def _write_node(fleet: KazooClient, key: ServiceKey, provider: Provider) -> str:
    path = providers_path(key.interface) + "/" + provider_node_name(key, provider)
    fleet.create(path, b"", ephemeral=True, makepath=True)
    return path


async def test_dubbo_calls_route_by_the_tag_in_zookeeper_urls(
    zk_chroot: str, fleet: KazooClient
) -> None:
    key = ServiceKey.of(GREETER, "1.0.0")
    config = LanewayConfig(
        listen=Listen(dubbo="127.0.0.1:0", registry=None),
        registry=ZooKeeperRegistryConfig(kind="zookeeper", hosts=zk_chroot),
    )
    proxy = Proxy(config)
    main = DemoProvider("main", frozenset({GREETER}))
    feature = DemoProvider(FEATURE, frozenset({GREETER}))
    main_scope = trio.CancelScope()

    async def run_main(*, task_status: trio.TaskStatus[str]) -> None:
        with main_scope:
            await main.run(task_status=task_status)

    async with trio.open_nursery() as nursery:
        await nursery.start(run_main)
        await nursery.start(feature.run)
        main_node = _write_node(fleet, key, Provider(address=main.address, env="main"))
        _write_node(fleet, key, Provider(address=feature.address, env=FEATURE))
        bound = await nursery.start(proxy.run)
        assert bound.dubbo is not None
        await until(lambda: len(proxy.registry.snapshot(key)) == 2)

        async def hello(tag: str | None) -> tuple[int, object]:
            extra = {"dubbo.tag": tag} if tag else {}
            with trio.fail_after(10):
                r = await call_once(
                    bound.dubbo, GREETER, "sayHello", ["zk"], version="1.0.0", attachments=extra
                )
            return r.status, r.attachments.get("served-by")

        assert await hello(None) == (DubboStatus.OK, "main")
        assert await hello(FEATURE) == (DubboStatus.OK, FEATURE)
        # The main provider dies and its node goes: untagged calls have nowhere to go (never
        # to the project env), tagged ones still reach it. (While a main provider still
        # answers, an empty main push is refused: Z2.)
        main_scope.cancel()
        fleet.delete(main_node)
        await until(lambda: "main" not in proxy.registry.snapshot(key))
        status, _ = await hello(None)
        assert status == DubboStatus.SERVICE_NOT_FOUND
        assert await hello(FEATURE) == (DubboStatus.OK, FEATURE)
        assert feature.calls == 2
        nursery.cancel_scope.cancel()
