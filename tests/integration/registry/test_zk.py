"""The ZooKeeper backend against a real ZooKeeper 3.8 (Debian), Dubbo 2's layout."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable

import pytest
import trio
from kazoo.client import KazooClient

from proxy.registry.dubbo_url import parse_provider_url, provider_node_name, providers_path
from proxy.registry.model import Lanes, Provider, ServiceKey
from proxy.registry.zk import RegistryUnavailable, ZkRegistry
from tests.zk import TcpRelay, ZooKeeperServer

IFACE = "com.example.Greeter"
KEY = ServiceKey.of(IFACE, "1.0.0")
SESSION = 1.0  # short ZooKeeper session so expiry tests stay fast
WAIT = 15.0  # generous "eventually" bound: these tests check behaviour, not speed


def node(provider: Provider, key: ServiceKey = KEY) -> str:
    return f"{providers_path(key.interface)}/{provider_node_name(key, provider)}"


async def write(fleet: KazooClient, *paths: str, ephemeral: bool = False) -> None:
    def create() -> None:
        for p in paths:
            fleet.create(p, b"", makepath=True, ephemeral=ephemeral)

    await trio.to_thread.run_sync(create)


async def delete_at_once(fleet: KazooClient, *paths: str) -> None:
    """Delete ``paths`` in one ZooKeeper transaction: watchers see a single empty push."""

    def run() -> None:
        tx = fleet.transaction()
        for p in paths:
            tx.delete(p)
        tx.commit()

    await trio.to_thread.run_sync(run)


async def until(reg: ZkRegistry, predicate: Callable[[], bool]) -> None:
    with trio.fail_after(WAIT):
        async with reg.changes() as changes:
            while not predicate():
                await changes.__anext__()


async def poll(predicate: Callable[[], bool], within: float) -> None:
    """For states the change stream does not announce (connection state, stale flag)."""
    step = 0.02
    for _ in range(int(within / step)):
        if predicate():
            return
        await trio.sleep(step)
    raise AssertionError(f"condition not met within {within}s")


async def live_listener() -> tuple[trio.SocketListener, str]:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    return listeners[0], f"127.0.0.1:{port}"


async def start(nursery: trio.Nursery, hosts: str, **kw: object) -> ZkRegistry:
    reg = ZkRegistry(hosts, session_timeout=SESSION, **kw)  # type: ignore[arg-type]
    await nursery.start(reg.run)
    return reg


def addresses(lanes: Lanes, env: str = "main") -> set[str]:
    return {p.address for p in lanes.get(env, ())}


async def test_reads_existing_java_nodes_and_tags(
    nursery: trio.Nursery, fleet: KazooClient, zk_chroot: str
) -> None:
    main = Provider("10.0.0.1:20880", application="shop")
    feat = Provider("10.0.0.2:20880", env="feature-login", application="shop")
    other = Provider("10.0.0.3:20880")
    await write(fleet, node(main), node(feat), node(other, ServiceKey.of(IFACE, "2.0.0", "blue")))
    reg = await start(nursery, zk_chroot)
    assert not reg.is_stale()
    lanes = reg.snapshot(KEY)
    assert addresses(lanes, "main") == {"10.0.0.1:20880"}
    assert addresses(lanes, "feature-login") == {"10.0.0.2:20880"}
    assert lanes["main"][0].source == "zookeeper"
    assert addresses(reg.snapshot(ServiceKey.of(IFACE, "2.0.0", "blue")), "main") == {
        "10.0.0.3:20880"
    }
    # Watches: a new interface and a new provider both show up.
    late = ServiceKey.of("com.example.Late")
    await write(fleet, node(main, late), node(Provider("10.0.0.9:1"), KEY))
    await until(
        reg,
        lambda: "10.0.0.9:1" in addresses(reg.snapshot(KEY), "main") and bool(reg.snapshot(late)),
    )


async def test_starts_on_an_empty_registry_and_sees_the_root_appear(
    nursery: trio.Nursery, fleet: KazooClient, zk_chroot: str
) -> None:
    reg = await start(nursery, zk_chroot)
    assert reg.services() == ()
    await write(fleet, node(Provider("10.0.0.1:1")))
    await until(reg, lambda: bool(reg.snapshot(KEY)))


async def test_publish_writes_an_ephemeral_java_format_url(
    nursery: trio.Nursery, fleet: KazooClient, zk_chroot: str
) -> None:
    """Real Dubbo consumers see laneway's providers: Java-format URL, ephemeral node."""
    reg = await start(nursery, zk_chroot)
    provider = Provider("127.0.0.1:20881", env="feature-x", methods=("hello",), application="lw")
    await reg.publish(KEY, provider)
    names = await trio.to_thread.run_sync(fleet.get_children, providers_path(IFACE))
    assert len(names) == 1
    assert names[0].startswith("dubbo%3A%2F%2F127.0.0.1%3A20881%2Fcom.example.Greeter%3F")
    key, parsed = parse_provider_url(names[0])
    assert key == KEY and parsed.env == "feature-x" and parsed.meta("dubbo") == "2.0.2"
    stat = await trio.to_thread.run_sync(fleet.exists, f"{providers_path(IFACE)}/{names[0]}")
    assert stat is not None and stat.ephemeralOwner != 0
    await until(reg, lambda: addresses(reg.snapshot(KEY), "feature-x") == {"127.0.0.1:20881"})
    await reg.unpublish(KEY, provider)
    await until(reg, lambda: not reg.snapshot(KEY))


async def test_z1_outage_freezes_then_rearms(
    nursery: trio.Nursery, fleet: KazooClient, zk_server: ZooKeeperServer, zk_chroot: str
) -> None:
    """Z1 zk-session-expiry: ZooKeeper unreachable past the session timeout: the table stays
    frozen (stale, counted, never emptied); after reconnect watches are re-armed (≤ 5 s)
    and laneway's own ephemeral registration is re-created."""
    relay = TcpRelay(zk_server.port)
    relay_port = await nursery.start(relay.serve)
    chroot = zk_chroot[len(zk_server.hosts) :]
    reg = await start(nursery, f"127.0.0.1:{relay_port}{chroot}")
    await write(fleet, node(Provider("10.0.0.1:1")))
    mine = Provider("127.0.0.1:20999", application="laneway")
    await reg.publish(KEY, mine)
    await until(
        reg, lambda: addresses(reg.snapshot(KEY), "main") == {"10.0.0.1:1", "127.0.0.1:20999"}
    )
    before = reg.snapshot(KEY)

    relay.cut()
    await poll(lambda: reg.stats.suspended > 0, WAIT)
    assert reg.is_stale()
    await trio.sleep(SESSION * 2.5)  # the session expires on the server meanwhile
    assert reg.snapshot(KEY) == before  # frozen, not emptied

    await write(fleet, node(Provider("10.0.0.2:2")))  # a change made during the outage
    relay.restore()
    # Z1: watches re-armed within 5 s of reconnecting.
    await poll(
        lambda: not reg.is_stale() and "10.0.0.2:2" in addresses(reg.snapshot(KEY), "main"), 5.0
    )
    assert reg.stats.lost >= 1 and reg.stats.reconnects >= 1
    assert "127.0.0.1:20999" in addresses(reg.snapshot(KEY), "main")  # re-published
    await write(fleet, node(Provider("10.0.0.3:3")))  # a change after: the new watch fires
    await until(reg, lambda: "10.0.0.3:3" in addresses(reg.snapshot(KEY), "main"))


async def test_z2_empty_push_protects_main_not_envs(
    nursery: trio.Nursery, fleet: KazooClient, zk_chroot: str
) -> None:
    """Z2 empty-push: every node deleted while the main providers still answer: main keeps
    its list (counted); the project env is removed."""
    l1, a1 = await live_listener()
    l2, a2 = await live_listener()
    main1, main2 = Provider(a1), Provider(a2)
    feat = Provider("127.0.0.1:1", env="feature-x")
    paths = [node(main1), node(main2), node(feat)]
    await write(fleet, *paths)
    reg = await start(nursery, zk_chroot)
    assert addresses(reg.snapshot(KEY), "main") == {a1, a2}
    await delete_at_once(fleet, *paths)
    await until(reg, lambda: "feature-x" not in reg.snapshot(KEY))
    assert addresses(reg.snapshot(KEY), "main") == {a1, a2}
    assert reg.stats.empty_push_protected == 1
    # One protected provider dies: it is dropped, the live one stays.
    await l1.aclose()
    await until(reg, lambda: addresses(reg.snapshot(KEY), "main") == {a2})
    # Providers come back in the registry: the push is served as is again.
    await write(fleet, node(Provider("10.0.0.5:5")))
    await until(reg, lambda: addresses(reg.snapshot(KEY), "main") == {"10.0.0.5:5"})
    await l2.aclose()


async def test_z3_killed_provider_is_removed(nursery: trio.Nursery, zk_chroot: str) -> None:
    """Z3 ephemeral-removal: a provider process killed (no goodbye) disappears from the
    table after its session times out (its address no longer answers)."""
    reg = await start(nursery, zk_chroot)
    dead_addr = "127.0.0.1:9"  # discard port: nothing listens on loopback
    path = node(Provider(dead_addr))
    script = textwrap.dedent(f"""
        import sys, time
        from kazoo.client import KazooClient
        c = KazooClient(hosts={zk_chroot!r}, timeout={SESSION})
        c.start(10)
        c.create({path!r}, b"", ephemeral=True, makepath=True)
        print("ready", flush=True)
        time.sleep(600)
    """)
    proc = await trio.lowlevel.open_process([sys.executable, "-c", script], stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        with trio.fail_after(WAIT):
            line = await proc.stdout.receive_some()
        assert line.strip() == b"ready"
        await until(reg, lambda: addresses(reg.snapshot(KEY), "main") == {dead_addr})
        proc.send_signal(signal.SIGKILL)
        with trio.fail_after(SESSION + 1 + 1 + 1):  # session + Z3's 1 s + probe timeout + slack
            await until(reg, lambda: not reg.snapshot(KEY))
    finally:
        proc.kill()
        await proc.wait()
        if proc.stdout is not None:
            await proc.stdout.aclose()


async def test_z4_poison_nodes_are_skipped_and_counted(
    nursery: trio.Nursery, fleet: KazooClient, zk_chroot: str
) -> None:
    """Z4 registry-poison: malformed URL, port 0, non-dubbo scheme, oversize name, 10 MB node
    data: skipped + counted, the good provider is served, the registry keeps running."""
    base = providers_path(IFACE)
    good = node(Provider("10.0.0.1:1"))
    poison = [
        f"{base}/garbage%%%",
        f"{base}/dubbo%3A%2F%2F10.0.0.1%3A0%2F{IFACE}",
        f"{base}/http%3A%2F%2F10.0.0.1%3A80%2F{IFACE}",
        f"{base}/dubbo%3A%2F%2F10.0.0.1%3A1%2F{IFACE}%3F" + "a%3Db%26" * 4000,
    ]
    await write(fleet, good, *poison)
    await trio.to_thread.run_sync(lambda: fleet.set(good, b"x" * (10 * 1024 * 1024)))
    reg = await start(nursery, zk_chroot)
    assert addresses(reg.snapshot(KEY), "main") == {"10.0.0.1:1"}
    assert reg.stats.malformed_nodes == 4
    await write(fleet, f"{base}/another-bad-one")  # counted once, even when re-listed
    await write(fleet, node(Provider("10.0.0.2:2")))
    await until(reg, lambda: "10.0.0.2:2" in addresses(reg.snapshot(KEY), "main"))
    assert reg.stats.malformed_nodes == 5


async def test_z5_rapid_changes_all_arrive(
    nursery: trio.Nursery, fleet: KazooClient, zk_chroot: str
) -> None:
    """Z5 listener-nonblocking: 1000 rapid child changes; the table converges on all of them."""
    reg = await start(nursery, zk_chroot)
    paths = [node(Provider(f"10.0.{i // 250}.{i % 250 + 1}:20880")) for i in range(1000)]

    def burst() -> None:
        for p in paths:
            fleet.create_async(p, b"", makepath=True)
        fleet.sync(providers_path(IFACE))

    await write(fleet, paths[0])
    await trio.to_thread.run_sync(burst)
    await until(reg, lambda: len(reg.snapshot(KEY).get("main", ())) == 1000)
    assert reg.stats.overflows == 0


async def test_unreachable_zookeeper_fails_loudly_at_start() -> None:
    """No ZooKeeper at start: ``run`` raises RegistryUnavailable (never a silent empty table)."""
    reg = ZkRegistry("127.0.0.1:9", connect_timeout=0.5)
    with pytest.raises(RegistryUnavailable):
        await reg.run()
    with pytest.raises(RegistryUnavailable):
        await reg.publish(KEY, Provider("127.0.0.1:1"))


async def test_kazoo_threads_live_exactly_as_long_as_the_task(zk_chroot: str) -> None:
    """The registry task owns kazoo's threads: started in run(), joined when it ends."""
    before = set(threading.enumerate())
    async with trio.open_nursery() as nursery:
        await start(nursery, zk_chroot)
        kazoo_threads = {t for t in set(threading.enumerate()) - before if "Trio" not in t.name}
        assert kazoo_threads  # kazoo's connection and worker threads
        nursery.cancel_scope.cancel()
    assert not [t.name for t in kazoo_threads if t.is_alive()]
