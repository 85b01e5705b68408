"""Registry at the reference fleet's scale: 13,000 services x 4 providers (`make bench`).

For the embedded registry (publishers in 4 separate processes, one Publish stream each,
like 4 provider hosts) and for ZooKeeper (a real Debian ZooKeeper 3.8, nodes in Dubbo's
layout) it measures:

* time to the first full snapshot (registry start -> every provider in the proxy's table),
* memory (RSS growth of this process, which holds only the registry side),
* snapshot lookup cost (``snapshot(key)``, the per-call read; pytest-benchmark),
* change propagation p50/p99: a Publish / a ZooKeeper write -> the change is in the
  proxy's table (seen through the change stream on the trio thread).

Results are printed and attached as ``extra_info``; bench/RESULTS.md has the numbers.
``LANEWAY_BENCH_SERVICES`` overrides the service count (default 13,000).
"""

from __future__ import annotations

import itertools
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import trio
import trio.testing
from pytest_benchmark.fixture import BenchmarkFixture

from proxy.registry.backend import RegistryBackend
from proxy.registry.client import RegistryPublisher
from proxy.registry.dubbo_url import provider_node_name, providers_path
from proxy.registry.embedded import EmbeddedRegistry
from proxy.registry.model import Provider, ServiceKey
from proxy.registry.zk import ZkRegistry
from tests.zk import ZooKeeperServer

ROOT = Path(__file__).resolve().parents[1]
SERVICES = int(os.environ.get("LANEWAY_BENCH_SERVICES", "13000"))
PROVIDERS = 4  # per service: 3 in main, 1 in a project env
SAMPLES = 300  # propagation samples per backend
LOAD_TIMEOUT = 600.0  # why: a bound for the whole load on a slow machine, not a target


def key_of(i: int) -> ServiceKey:
    return ServiceKey.of(f"com.bench.svc{i:05d}.Service", "1.0.0")


def provider_of(i: int, host: int) -> Provider:
    return Provider(
        f"10.{host}.{i // 250}.{i % 250 + 1}:20880",
        env="main" if host < 3 else f"feature-{i % 10}",
        methods=("get", "put", "list"),
        application=f"app{i % 100}",
    )


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def count(reg: RegistryBackend, key: ServiceKey) -> int:
    return sum(len(ps) for ps in reg.snapshot(key).values())


def complete(reg: RegistryBackend) -> bool:
    services = reg.services()
    return len(services) == SERVICES and all(count(reg, k) == PROVIDERS for k in services)


async def wait_complete(reg: RegistryBackend) -> None:
    """Until every service has all its providers; O(changed keys) per change batch."""
    counts: dict[ServiceKey, int] = {}
    full = 0
    async with reg.changes() as changes:
        async for batch in changes:
            for key in batch:
                before, counts[key] = counts.get(key, 0), count(reg, key)
                full += (counts[key] == PROVIDERS) - (before == PROVIDERS)
            if full == SERVICES:
                return


def quantiles(samples: list[float]) -> dict[str, float]:
    cuts = statistics.quantiles(samples, n=100)
    return {"p50_ms": cuts[49] * 1000, "p99_ms": cuts[98] * 1000, "max_ms": max(samples) * 1000}


async def propagation(
    reg: RegistryBackend, key: ServiceKey, add: Callable[[], None], remove: Callable[[], None]
) -> list[float]:
    """Alternately add/remove one provider of ``key`` (blocking calls, run in a thread) and
    time each until the proxy's table shows it."""
    samples = []
    async with reg.changes() as changes:
        for n in range(SAMPLES):
            adding = n % 2 == 0
            want = len(reg.snapshot(key).get("main", ())) + (1 if adding else -1)
            t0 = time.perf_counter()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(trio.to_thread.run_sync, add if adding else remove)
                while len(reg.snapshot(key).get("main", ())) != want:
                    await changes.__anext__()
                samples.append(time.perf_counter() - t0)
    return samples


PUBLISHER = """
import sys
sys.path.insert(0, {root!r})
from bench.test_registry import key_of, provider_of
from proxy.registry.client import RegistryPublisher
addr, host, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
pub = RegistryPublisher(addr).start()
pub.register_many([(key_of(i), provider_of(i, host)) for i in range(n)], timeout=600)
print("ready", flush=True)
sys.stdin.read()
pub.close()
"""


def report(name: str, figures: dict[str, float]) -> None:
    text = ", ".join(f"{k}={v:,.1f}" for k, v in figures.items())
    sys.stdout.write(f"\n[registry bench] {name}: {text}\n")


async def test_embedded_registry_scale(benchmark: BenchmarkFixture, tmp_path: Path) -> None:
    state = tmp_path / "registry.json"
    rss0 = rss_bytes()
    figures: dict[str, float] = {}
    async with trio.open_nursery() as nursery:
        reg = EmbeddedRegistry(listen="127.0.0.1:0", state_file=state)
        address = await nursery.start(reg.run)
        assert address is not None
        t0 = time.perf_counter()
        procs = []
        for host in range(PROVIDERS):
            procs.append(
                await trio.lowlevel.open_process(
                    [
                        sys.executable,
                        "-c",
                        PUBLISHER.format(root=str(ROOT)),
                        address,
                        str(host),
                        str(SERVICES),
                    ],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                )
            )
        with trio.fail_after(LOAD_TIMEOUT):
            await wait_complete(reg)
        figures["first_full_snapshot_s"] = time.perf_counter() - t0
        figures["rss_growth_mib"] = (rss_bytes() - rss0) / 2**20
        figures["providers"] = sum(
            len(ps) for k in reg.services() for ps in reg.snapshot(k).values()
        )

        probe_key = key_of(0)
        extra = Provider("10.99.0.1:20880", methods=("get",))
        with RegistryPublisher(address) as pub:
            samples = await propagation(
                reg,
                probe_key,
                lambda: pub.register(probe_key, extra),
                lambda: pub.unregister(probe_key, extra),
            )
        figures.update({f"publish_to_table_{k}": v for k, v in quantiles(samples).items()})

        keys = itertools.cycle([key_of(i) for i in range(SERVICES)])
        benchmark(lambda: reg.snapshot(next(keys)))

        nursery.cancel_scope.cancel()  # stops first: the final save keeps the full list
    for proc in procs:
        assert proc.stdin is not None
        await proc.stdin.aclose()
    for proc in procs:
        await proc.wait()
        assert proc.stdout is not None
        await proc.stdout.aclose()

    # Restart from the state file: the last list is served (stale) before any publisher.
    async with trio.open_nursery() as nursery:
        t0 = time.perf_counter()
        restarted = EmbeddedRegistry(listen=None, state_file=state)
        await nursery.start(restarted.run)
        figures["restart_from_state_file_s"] = time.perf_counter() - t0
        assert complete(restarted) and restarted.is_stale()
        nursery.cancel_scope.cancel()
    benchmark.extra_info.update(figures)
    report(f"embedded, {SERVICES} services x {PROVIDERS}", figures)


async def test_zookeeper_registry_scale(benchmark: BenchmarkFixture) -> None:
    from kazoo.client import KazooClient

    server = await trio.to_thread.run_sync(ZooKeeperServer().start)
    fleet = KazooClient(hosts=server.hosts, timeout=30.0)
    figures: dict[str, float] = {}
    try:
        await trio.to_thread.run_sync(fleet.start, 30)

        def populate() -> float:
            t = time.perf_counter()
            fleet.ensure_path("/dubbo")
            results = []
            for i in range(SERVICES):  # pipelined; ZooKeeper applies them in order
                key = key_of(i)
                base = providers_path(key.interface)
                results.append(fleet.create_async(base.rsplit("/", 1)[0], b""))
                results.append(fleet.create_async(base, b""))
                for host in range(PROVIDERS):
                    name = provider_node_name(key, provider_of(i, host))
                    results.append(fleet.create_async(f"{base}/{name}", b""))
            for r in results:
                r.get(timeout=LOAD_TIMEOUT)
            return time.perf_counter() - t

        figures["zk_populate_s"] = await trio.to_thread.run_sync(populate)
        rss0 = rss_bytes()
        async with trio.open_nursery() as nursery:
            reg = ZkRegistry(server.hosts, session_timeout=30.0)
            t0 = time.perf_counter()
            with trio.fail_after(LOAD_TIMEOUT):
                await nursery.start(reg.run)
            figures["first_full_snapshot_s"] = time.perf_counter() - t0
            assert complete(reg)
            figures["rss_growth_mib"] = (rss_bytes() - rss0) / 2**20

            probe_key = key_of(0)
            extra = Provider("10.99.0.1:20880", methods=("get",))
            path = f"{providers_path(probe_key.interface)}/{provider_node_name(probe_key, extra)}"
            samples = await propagation(
                reg, probe_key, lambda: fleet.create(path, b""), lambda: fleet.delete(path)
            )
            figures.update({f"zk_write_to_table_{k}": v for k, v in quantiles(samples).items()})

            keys = itertools.cycle([key_of(i) for i in range(SERVICES)])
            benchmark(lambda: reg.snapshot(next(keys)))
            nursery.cancel_scope.cancel()
    finally:
        await trio.to_thread.run_sync(fleet.stop)
        fleet.close()
        await trio.to_thread.run_sync(server.stop)
    benchmark.extra_info.update(figures)
    report(f"zookeeper, {SERVICES} services x {PROVIDERS}", figures)


async def test_kazoo_bridge_post_cost(benchmark: BenchmarkFixture) -> None:
    """Z5: what a kazoo listener/watch pays to hand an event to trio (must never block)."""
    from proxy.registry.zk_bridge import TrioBridge

    bridge: TrioBridge[int] = TrioBridge()
    benchmark.pedantic(bridge.post, args=(1,), rounds=1000, iterations=1)  # type: ignore[no-untyped-call]
    stats = benchmark.stats
    assert stats is not None
    figures = {"post_max_us": stats.stats.max * 1e6, "post_median_us": stats.stats.median * 1e6}
    benchmark.extra_info.update(figures)
    report("kazoo->trio bridge post", figures)
    await trio.testing.wait_all_tasks_blocked()
    assert not bridge.overflowed
