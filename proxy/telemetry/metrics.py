"""laneway's OpenTelemetry metrics: what each call records, and gauges read at scrape time.

Per call (recorded by the observer when a call finishes; see ``CallMetrics`` for why
laneway aggregates these two itself):

- ``rpc.server.call.duration`` (histogram, seconds, buckets 50 us .. 30 s) by
  ``rpc.system.name``, ``rpc.method`` (fully qualified), ``rpc.response.status_code``,
  ``laneway.service``, ``laneway.env`` (asked for; "" untagged), ``laneway.lane`` (used).
- ``laneway.decisions`` (counter) by ``outcome``: matched, fallback, strict_failure,
  invalid_tag, undeclared_env, no_provider.

Everything else is an observable instrument whose callback reads the proxy's own counters
(the ``stats`` dataclasses, the route table, the registry, host health) when
``/metrics`` is scraped, so the data path pays nothing for them.
"""

from __future__ import annotations

import math
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable
from dataclasses import asdict
from typing import TYPE_CHECKING

import trio
from opentelemetry.metrics import CallbackOptions, Meter, Observation
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Histogram,
    HistogramDataPoint,
    Metric,
    NumberDataPoint,
    Sum,
)

from proxy.router import Candidate
from routing import Decision, ErrorKind

if TYPE_CHECKING:
    from proxy.serve import Proxy
    from proxy.telemetry.state import TelemetryState

DURATION_BUCKETS: tuple[float, ...] = (
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)
"""From 50 us (a Dubbo pass-through on loopback) to 30 s (the drain timeout): a call
outside this range is either impossible or already a failure."""

CALL_DURATION = "rpc.server.call.duration"
DECISIONS = "laneway.decisions"

_OUTCOME_OF_ERROR = {
    ErrorKind.STRICT: "strict_failure",
    ErrorKind.INVALID_TAG: "invalid_tag",
    ErrorKind.UNDECLARED_ENV: "undeclared_env",
    ErrorKind.NO_PROVIDER: "no_provider",
}


def decision_outcome(decision: Decision[Candidate] | None) -> str:
    """How a routing decision went, as the ``outcome`` label of ``laneway.decisions``."""
    if decision is None:
        return "no_provider"
    if decision.error_kind is not None:
        return _OUTCOME_OF_ERROR[decision.error_kind]
    if decision.invalid_tag is not None:
        return "invalid_tag"  # an unusable tag, routed as untagged (``invalid_tag: main``)
    if decision.fallback is not None:
        return "fallback"
    return "matched"


CALL_LABELS = (
    "rpc.system.name",
    "rpc.method",
    "rpc.response.status_code",
    "laneway.service",
    "laneway.env",
    "laneway.lane",
)
DECISION_LABELS = ("rpc.system.name", "outcome")
MAX_SERIES = 2000
# why: OTel's default cardinality limit. Labels come from requests (service, method), so a
# caller inventing names must not grow memory without bound: the excess is folded into one
# series marked ``otel.metric.overflow`` (the OTel convention).
_OVERFLOW_CALL = ("",) * len(CALL_LABELS)


class _Buckets:
    __slots__ = ("count", "counts", "max", "min", "sum")

    def __init__(self) -> None:
        self.counts = [0] * (len(DURATION_BUCKETS) + 1)
        self.count = 0
        self.sum = 0.0
        self.min = math.inf
        self.max = -math.inf


class CallMetrics:
    """The per-call metrics, aggregated by laneway itself.

    The OTel SDK validates and hashes a measurement's attribute dict on every ``record``
    (~6 us for six labels, ~13 us per call for both instruments: bench/RESULTS.md). Here a
    call costs one tuple-keyed dict lookup and a ``bisect``; the OTel data points
    (``Histogram`` / ``Sum``, cumulative) are built only when ``/metrics`` is scraped.
    """

    __slots__ = ("_calls", "_decisions", "_start_ns")

    def __init__(self) -> None:
        self._calls: dict[tuple[str, ...], _Buckets] = {}
        self._decisions: dict[tuple[str, str], int] = {}
        self._start_ns = time.time_ns()

    def record(self, labels: tuple[str, ...], seconds: float, system: str, outcome: str) -> None:
        """One finished call: ``labels`` in ``CALL_LABELS`` order."""
        calls = self._calls
        b = calls.get(labels)
        if b is None:
            if len(calls) >= MAX_SERIES:
                labels = _OVERFLOW_CALL
            b = calls.get(labels)
            if b is None:
                b = calls[labels] = _Buckets()
        b.counts[bisect_left(DURATION_BUCKETS, seconds)] += 1
        b.count += 1
        b.sum += seconds
        if seconds < b.min:
            b.min = seconds
        if seconds > b.max:
            b.max = seconds
        key = (system, outcome)
        self._decisions[key] = self._decisions.get(key, 0) + 1

    def collect(self) -> list[Metric]:
        """The current totals as OTel metric data (what an SDK reader would produce)."""
        now = time.time_ns()
        points = [
            HistogramDataPoint(
                attributes=_attributes(CALL_LABELS, labels),
                start_time_unix_nano=self._start_ns,
                time_unix_nano=now,
                count=b.count,
                sum=b.sum,
                bucket_counts=list(b.counts),
                explicit_bounds=DURATION_BUCKETS,
                min=b.min,
                max=b.max,
            )
            for labels, b in self._calls.items()
        ]
        decisions = [
            NumberDataPoint(
                attributes=dict(zip(DECISION_LABELS, key, strict=True)),
                start_time_unix_nano=self._start_ns,
                time_unix_nano=now,
                value=count,
            )
            for key, count in self._decisions.items()
        ]
        return [
            Metric(
                CALL_DURATION,
                "Duration of inbound RPC calls, admission to final status.",
                "s",
                Histogram(points, AggregationTemporality.CUMULATIVE),
            ),
            Metric(
                DECISIONS,
                "Routing decisions by outcome.",
                "1",
                Sum(decisions, AggregationTemporality.CUMULATIVE, is_monotonic=True),
            ),
        ]


def _attributes(names: tuple[str, ...], labels: tuple[str, ...]) -> dict[str, str]:
    if labels == _OVERFLOW_CALL:
        return {"otel.metric.overflow": "true"}
    return dict(zip(names, labels, strict=True))


def _gauge(value: float, **attributes: str) -> Observation:
    return Observation(value, attributes)


def _each(
    fn: Callable[[], Iterable[Observation]],
) -> Callable[[CallbackOptions], Iterable[Observation]]:
    def callback(_options: CallbackOptions) -> Iterable[Observation]:
        return list(fn())

    return callback


def watch_proxy(meter: Meter, proxy: Proxy, state: TelemetryState) -> None:
    """Register the observable instruments that read ``proxy``'s state at collection time."""

    def in_flight() -> Iterable[Observation]:
        for system, count in state.in_flight.items():
            yield _gauge(count, **{"rpc.system.name": system})

    def connections() -> Iterable[Observation]:
        yield _gauge(len(proxy.pool.connections()), **{"rpc.system.name": "dubbo"})
        yield _gauge(len(proxy.grpc_pool.connections()), **{"rpc.system.name": "grpc"})

    def connects() -> Iterable[Observation]:
        for system, pool in (("dubbo", proxy.pool), ("grpc", proxy.grpc_pool)):
            ok = pool.stats.connects - pool.stats.connect_failures
            yield _gauge(ok, **{"rpc.system.name": system, "result": "ok"})
            yield _gauge(
                pool.stats.connect_failures, **{"rpc.system.name": system, "result": "failed"}
            )

    def upstream_in_flight() -> Iterable[Observation]:
        hosts = proxy.health.snapshot(0.0).values()
        yield _gauge(sum(n for h in hosts if isinstance(n := h["in_flight"], int)))

    def ejections() -> Iterable[Observation]:
        yield _gauge(proxy.health.ejections_total)

    def ejected() -> Iterable[Observation]:
        hosts = proxy.health.snapshot(trio.current_time())
        yield _gauge(sum(1 for h in hosts.values() if h["ejected"]))

    def registry_services() -> Iterable[Observation]:
        yield _gauge(len(proxy.registry.services()))

    def registry_providers() -> Iterable[Observation]:
        by_env: dict[str, int] = {}
        for key in proxy.registry.services():
            for env, providers in proxy.registry.snapshot(key).items():
                by_env[env] = by_env.get(env, 0) + len(providers)
        for env, count in sorted(by_env.items()):
            yield _gauge(count, env=env)

    def registry_stale() -> Iterable[Observation]:
        yield _gauge(1 if proxy.registry.is_stale() else 0)

    def registry_age() -> Iterable[Observation]:
        if state.registry_updated_at is not None:
            yield _gauge(max(0.0, time.time() - state.registry_updated_at))

    def registry_events() -> Iterable[Observation]:
        for kind, count in proxy.registry.stats.as_dict().items():
            yield _gauge(count, kind=kind)

    def reload_success() -> Iterable[Observation]:
        yield _gauge(1 if proxy.tables.last_error is None else 0)

    def reload_time() -> Iterable[Observation]:
        last = state.last_reload
        if last is not None:
            yield _gauge(last.at)

    def reloads() -> Iterable[Observation]:
        yield _gauge(proxy.tables.reloads, result="ok")
        yield _gauge(proxy.tables.reload_failures, result="failed")

    def codec_errors() -> Iterable[Observation]:
        dubbo = proxy.dubbo.stats
        yield _gauge(dubbo.protocol_errors, **{"rpc.system.name": "dubbo", "kind": "protocol"})
        yield _gauge(dubbo.read_timeouts, **{"rpc.system.name": "dubbo", "kind": "read_timeout"})
        for kind, count in sorted(proxy.grpc.stats.connection_errors.items()):
            yield _gauge(count, **{"rpc.system.name": "grpc", "kind": kind})
        yield _gauge(
            proxy.grpc_forwarder.stats.oversize, **{"rpc.system.name": "grpc", "kind": "oversize"}
        )

    def tunnels() -> Iterable[Observation]:
        yield _gauge(0 if proxy.tunnel is None else len(proxy.tunnel.sessions()))

    def tunnel_events() -> Iterable[Observation]:
        if proxy.tunnel is not None:
            for kind, count in asdict(proxy.tunnel.stats).items():
                yield _gauge(count, kind=kind)

    gauges: list[tuple[str, str, str, Callable[[], Iterable[Observation]]]] = [
        ("laneway.calls.in_flight", "1", "Inbound calls in flight.", in_flight),
        ("laneway.upstream.connections", "1", "Open upstream connections.", connections),
        ("laneway.upstream.in_flight", "1", "Calls in flight to providers.", upstream_in_flight),
        ("laneway.upstream.ejected", "1", "Providers ejected right now.", ejected),
        ("laneway.registry.services", "1", "Services with providers.", registry_services),
        ("laneway.registry.providers", "1", "Providers by env.", registry_providers),
        ("laneway.registry.stale", "1", "1 while a provider list is frozen.", registry_stale),
        ("laneway.registry.update.age", "s", "Seconds since the last change.", registry_age),
        ("laneway.reload.success", "1", "1 when the last reload succeeded.", reload_success),
        ("laneway.reload.timestamp", "s", "Unix time of the last reload.", reload_time),
        ("laneway.tunnels", "1", "Live developer tunnels.", tunnels),
    ]
    for name, unit, description, fn in gauges:
        meter.create_observable_gauge(name, [_each(fn)], unit=unit, description=description)
    counters: list[tuple[str, str, Callable[[], Iterable[Observation]]]] = [
        ("laneway.upstream.connects", "Upstream connection attempts.", connects),
        ("laneway.upstream.ejections", "Outlier ejections.", ejections),
        ("laneway.registry.events", "Registry events by kind.", registry_events),
        ("laneway.reloads", "Routes reloads by result.", reloads),
        ("laneway.codec.errors", "Connections closed for bad input, by kind.", codec_errors),
        ("laneway.tunnel.events", "Tunnel server events by kind.", tunnel_events),
    ]
    for name, description, fn in counters:
        meter.create_observable_counter(name, [_each(fn)], unit="1", description=description)
