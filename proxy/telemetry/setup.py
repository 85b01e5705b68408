"""Build a proxy's telemetry from ``telemetry:`` in laneway.yaml.

Each ``Telemetry`` has its own tracer and meter providers (never the OTel globals), so two
proxies in one process (the tests, a benchmark) do not share spans or counters, and
nothing registers an ``atexit`` hook. With metrics, tracing and the access log all off the
observer is ``NO_OBSERVER``: the data path then pays one no-op call per hook.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING

import trio
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased

from proxy import __version__
from proxy.config import ConfigError, TelemetryConfig
from proxy.observe import NO_OBSERVER, CallObserver
from proxy.telemetry.metrics import CallMetrics, watch_proxy
from proxy.telemetry.observer import TelemetryObserver
from proxy.telemetry.prometheus import exposition
from proxy.telemetry.state import TelemetryState

if TYPE_CHECKING:
    from proxy.serve import Bound, Proxy

INSTRUMENTATION_NAME = "laneway"
OTLP_EXPORT_TIMEOUT_S = 5.0
# why: an unreachable collector must not hold a draining proxy for the SDK's 10 s default.
OTLP_BATCH_DELAY_MS = 1000
# why: one export per second keeps a busy proxy at one small POST/s, and spans visible fast.


class TelemetryUnavailable(ConfigError):
    """The configured exporter needs a package that is not installed."""


def make_exporter(config: TelemetryConfig) -> SpanProcessor | None:
    """The span processor for ``config.exporter`` (None for ``none``)."""
    if config.exporter == "console":
        # ``out`` given explicitly: the SDK's default is the stdout of import time.
        console = ConsoleSpanExporter(service_name=config.service_name, out=sys.stdout)
        return SimpleSpanProcessor(console)
    if config.exporter == "otlp":
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError as exc:
            raise TelemetryUnavailable(
                "telemetry.exporter: otlp needs the OTLP exporter: pip install 'laneway[otlp]'"
            ) from exc
        exporter = OTLPSpanExporter(endpoint=config.otlp_endpoint, timeout=OTLP_EXPORT_TIMEOUT_S)
        # Batch: the export is an HTTP POST on the SDK's worker thread, never on the trio loop.
        return BatchSpanProcessor(exporter, schedule_delay_millis=OTLP_BATCH_DELAY_MS)
    return None


class Telemetry:
    """A proxy's tracer, meter, metric reader and observer.

    ``span_exporter`` (tests, benchmarks) replaces the configured exporter with a
    synchronous one, e.g. the SDK's ``InMemorySpanExporter``.
    """

    def __init__(self, config: TelemetryConfig, *, span_exporter: SpanExporter | None = None):
        self.config = config
        self.state = TelemetryState()
        self._stopped = False
        resource = Resource.create(
            {"service.name": config.service_name, "service.version": __version__}
        )
        self.tracer_provider: TracerProvider | None = None
        tracer = None
        if config.tracing:
            self.tracer_provider = TracerProvider(
                # Roots are sampled by the observer (cheaper: no span for a dropped call).
                sampler=ParentBased(ALWAYS_ON),
                resource=resource,
                shutdown_on_exit=False,
            )
            processor = (
                SimpleSpanProcessor(span_exporter)
                if span_exporter is not None
                else make_exporter(config)
            )
            if processor is not None:
                self.tracer_provider.add_span_processor(processor)
            tracer = self.tracer_provider.get_tracer(INSTRUMENTATION_NAME, __version__)
        self.reader: InMemoryMetricReader | None = None
        self.call_metrics: CallMetrics | None = None
        self.meter_provider: MeterProvider | None = None
        call_metrics = None
        if config.metrics:
            self.reader = InMemoryMetricReader()
            self.meter_provider = MeterProvider(
                [self.reader], resource=resource, shutdown_on_exit=False
            )
            call_metrics = self.call_metrics = CallMetrics()
        self.observer: CallObserver = NO_OBSERVER
        self.call_observer: TelemetryObserver | None = None
        if tracer is not None or call_metrics is not None or config.access_log:
            self.call_observer = TelemetryObserver(
                tracer=tracer,
                metrics=call_metrics,
                state=self.state,
                access_log=config.access_log,
                sampling=config.sampling,
            )
            self.observer = self.call_observer

    def watch(self, proxy: Proxy) -> None:
        """Expose ``proxy``'s counters as observable metrics (call once, after building it)."""
        if self.meter_provider is not None:
            watch_proxy(self.meter_provider.get_meter(INSTRUMENTATION_NAME), proxy, self.state)
        self.state.note_reload(ok=True, version=proxy.tables.current.version)

    def metrics_text(self) -> str:
        """The current metrics in Prometheus text format ("" when metrics are off)."""
        if self.reader is None:
            return ""
        calls = self.call_metrics.collect() if self.call_metrics is not None else []
        return exposition(self.reader.get_metrics_data(), calls)

    async def run(
        self,
        proxy: Proxy,
        bound: Bound,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Follow the registry's changes (for the age-of-last-update gauge) until cancelled;
        flush and stop the exporters on the way out."""
        if self.call_observer is not None:
            self.call_observer.listening("dubbo", bound.dubbo)
            self.call_observer.listening("grpc", bound.grpc)
        try:
            async with proxy.registry.changes() as changes:
                self.state.registry_updated_at = time.time()  # the first full snapshot
                task_status.started()
                async for _batch in changes:
                    self.state.registry_updated_at = time.time()
                    self.state.registry_changes += 1
        finally:
            self.shutdown()

    def shutdown(self) -> None:
        """Flush spans and stop the providers (idempotent)."""
        if self._stopped:
            return
        self._stopped = True
        if self.tracer_provider is not None:
            self.tracer_provider.shutdown()
        if self.meter_provider is not None:
            self.meter_provider.shutdown()
