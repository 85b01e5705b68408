"""What telemetry costs per call (pytest-benchmark): `make bench`. Figures go to
bench/RESULTS.md, "Observability".

Measured: the four observer hooks every forwarded call makes (``call_started``,
``routed``, ``propagation``, ``finished``) with a real routing decision, for each
telemetry setting a proxy can run with. The decision itself is made once outside the loop:
routing's cost is in "Routing: decide()", this is only what telemetry adds. Spans go
through a ``SimpleSpanProcessor`` into an exporter that drops them, so ending a span costs
what it costs in production minus the network.

The contract (DESIGN.md §8, issue 8): tracing off must cost close to nothing, and a call
sampled out must cost much less than one recorded. Both are checked as ratios measured
side by side in one run, never against a fixed number.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence

import pytest
import trio
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from pytest_benchmark.fixture import BenchmarkFixture

from proxy.call import Call
from proxy.config import LanewayConfig, Listen, TelemetryConfig
from proxy.demo import GREETER, DemoProvider
from proxy.errors import GrpcStatus
from proxy.health import HostHealth
from proxy.net.dubbo_client import DubboClient
from proxy.observe import NO_OBSERVER, CallObserver
from proxy.registry.model import Provider, ServiceKey
from proxy.router import Router, TableRef
from proxy.serve import Proxy
from proxy.telemetry import Telemetry
from routing import loads

ROUNDS, CALLS = 200, 200
# Interleaved rounds x calls per round for the ratio checks: enough for a stable median.
MAX_OFF_TO_METRICS = 0.25
# "Close to nothing": the no-op observer must cost under a quarter of the cheapest real one.
MAX_SAMPLED_OUT_TO_SAMPLED = 0.6
# A call the sampler drops must cost well under a recorded one (DESIGN.md §8: ~9 vs ~27 us).

OK = int(GrpcStatus.OK)


class DropSpans(SpanExporter):
    """An exporter that accepts and forgets (the export path without a network)."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def observer(setting: str) -> CallObserver:
    if setting == "off":
        return NO_OBSERVER
    metrics = setting.endswith("+metrics") or setting == "metrics"
    tracing = setting.startswith("tracing")
    sampling = 0.01 if "1%" in setting else 1.0
    config = TelemetryConfig(metrics=metrics, tracing=tracing, sampling=sampling)
    return Telemetry(config, span_exporter=DropSpans()).observer


SETTINGS = [
    "off",
    "metrics",
    "tracing-1%",
    "tracing-100%",
    "tracing-1%+metrics",
    "tracing-100%+metrics",
]


def one_call(setting: str, traceparent: bool = False) -> Callable[[], None]:
    table = loads("environments: {feature-1: {}}\n", "bench.yaml")
    lanes = {"main": (Provider(address="127.0.0.1:7001", protocol="grpc", env="main"),)}
    router = Router(TableRef(table), lambda _key: lanes, HostHealth(), lambda: 0.0)
    metadata = {"x-env": "feature-1"}
    if traceparent:
        metadata["traceparent"] = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    call = Call(ServiceKey.of("demo.Greeter"), "Hello", ("grpc",), metadata)
    decision = router.route(call)
    obs = observer(setting)

    def run() -> None:
        scope = obs.call_started(call, "grpc")
        scope.routed(decision)
        scope.propagation()
        scope.finished(OK)

    return run


@pytest.mark.parametrize("setting", SETTINGS)
def test_hooks_per_call(benchmark: BenchmarkFixture, setting: str) -> None:
    benchmark.group = "telemetry per call"
    benchmark(one_call(setting))


def test_hooks_per_call_with_incoming_traceparent(benchmark: BenchmarkFixture) -> None:
    """The caller sent W3C context: extraction is added to the 100 % case."""
    benchmark.group = "telemetry per call"
    benchmark(one_call("tracing-100%+metrics", traceparent=True))


def _medians(fns: Sequence[Callable[[], None]]) -> list[float]:
    """Median per-call ns of each, measured in interleaved rounds (drift hits all)."""
    samples: list[list[float]] = [[] for _ in fns]
    for _ in range(ROUNDS):
        for fn, out in zip(fns, samples, strict=True):
            start = time.perf_counter_ns()
            for _ in range(CALLS):
                fn()
            out.append((time.perf_counter_ns() - start) / CALLS)
    return [statistics.median(s) for s in samples]


def test_off_and_sampled_out_are_cheap(benchmark: BenchmarkFixture) -> None:
    """Off costs close to nothing; 1 % sampling costs well under 100 %."""
    names = ["off", "metrics", "tracing-1%", "tracing-100%"]
    off, metrics, sampled_out, sampled = _medians([one_call(n) for n in names])
    benchmark.group = "telemetry ratios"
    benchmark.extra_info.update(
        off_ns=off, metrics_ns=metrics, tracing_1pct_ns=sampled_out, tracing_100pct_ns=sampled
    )
    benchmark(one_call("off"))
    print(
        f"\np50 per call: off {off:.0f} ns, metrics {metrics:.0f} ns, "
        f"tracing 1% {sampled_out:.0f} ns, tracing 100% {sampled:.0f} ns"
    )
    assert off <= MAX_OFF_TO_METRICS * metrics
    assert sampled_out <= MAX_SAMPLED_OUT_TO_SAMPLED * sampled


E2E_ROUNDS, E2E_CALLS, E2E_WARMUP = 60, 100, 300
# Interleaved rounds x sequential calls per round, per setting; warm-up calls first.
E2E_SETTINGS = ["off", "metrics", "tracing-1%+metrics", "tracing-100%+metrics"]


def _telemetry(setting: str) -> Telemetry:
    if setting == "off":
        return Telemetry(TelemetryConfig(metrics=False, tracing=False))
    sampling = 0.01 if "1%" in setting else 1.0
    config = TelemetryConfig(tracing=setting.startswith("tracing"), sampling=sampling)
    return Telemetry(config, span_exporter=DropSpans())


async def _e2e() -> dict[str, float]:
    """Median wall time per sequential Dubbo call through a whole proxy, one proxy per
    setting, all in one trio loop with one provider; rounds interleave the settings."""
    config = LanewayConfig(listen=Listen(dubbo="127.0.0.1:0", registry=None))
    samples: dict[str, list[float]] = {s: [] for s in E2E_SETTINGS}
    async with trio.open_nursery() as nursery:
        provider = DemoProvider("main", frozenset({GREETER}))
        await nursery.start(provider.run)
        clients: dict[str, DubboClient] = {}
        for setting in E2E_SETTINGS:
            proxy = Proxy(config, telemetry=_telemetry(setting))
            bound = await nursery.start(proxy.run)
            for key in provider.service_keys():
                await proxy.registry.publish(key, provider.provider(key.interface))
            assert bound.dubbo is not None
            clients[setting] = await DubboClient.connect(bound.dubbo)
            await nursery.start(clients[setting].run)

        async def calls(client: DubboClient, n: int) -> None:
            for _ in range(n):
                result = await client.call(GREETER, "sayHello", ["x"], version="1.0.0")
                assert result.ok

        try:
            for client in clients.values():
                await calls(client, E2E_WARMUP)
            for _ in range(E2E_ROUNDS):
                for setting, client in clients.items():
                    start = time.perf_counter_ns()
                    await calls(client, E2E_CALLS)
                    samples[setting].append((time.perf_counter_ns() - start) / E2E_CALLS)
        finally:
            for client in clients.values():
                await client.aclose()
            nursery.cancel_scope.cancel()
    return {s: statistics.median(v) for s, v in samples.items()}


def test_e2e_dubbo_call_cost(benchmark: BenchmarkFixture) -> None:
    """What each setting adds to a whole Dubbo call (client, proxy and provider in one
    process: the absolute figure is not laneway's latency, the differences are)."""
    result: dict[str, float] = {}

    def run() -> None:
        result.update(trio.run(_e2e))

    benchmark.group = "telemetry end to end"
    benchmark.pedantic(run, rounds=1, iterations=1)  # type: ignore[no-untyped-call]
    benchmark.extra_info.update({f"{k}_ns": v for k, v in result.items()})
    base = result["off"]
    print()
    for setting, ns in result.items():
        print(f"{setting:>22}: {ns / 1000:7.1f} us per call ({(ns - base) / 1000:+.1f} us)")
