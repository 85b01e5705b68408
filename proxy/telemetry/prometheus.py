"""OpenTelemetry metrics data -> Prometheus text exposition format 0.0.4.

Why not ``opentelemetry-exporter-prometheus``: its reader registers a collector in
``prometheus_client``'s process-wide ``REGISTRY`` when constructed, so two proxies in one
process (every integration test, a config reload that rebuilds telemetry) collide, and it
is a pre-1.0 package pinned to the SDK's exact release. The format is small and stable;
rendering it from the SDK's own ``MetricsData`` keeps ``/metrics`` a pure function.

Names follow the OpenTelemetry -> Prometheus compatibility rules: ``.`` and other invalid
characters become ``_``, the unit is appended (``s`` -> ``_seconds``), monotonic sums get
``_total``; histograms expose cumulative ``_bucket{le=...}``, ``_sum`` and ``_count``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence

from opentelemetry.sdk.metrics.export import (
    Gauge,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricsData,
    NumberDataPoint,
    Sum,
)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_UNIT_SUFFIX = {"s": "seconds", "ms": "milliseconds", "By": "bytes", "1": ""}
_INVALID = re.compile(r"[^a-zA-Z0-9_:]")
_INVALID_LABEL = re.compile(r"[^a-zA-Z0-9_]")

Labels = Mapping[str, object]


def metric_name(name: str, unit: str, *, counter: bool) -> str:
    """The Prometheus name of an OTel instrument (``rpc.server.call.duration``, ``s`` ->
    ``rpc_server_call_duration_seconds``)."""
    out = _INVALID.sub("_", name)
    if out[:1].isdigit():
        out = "_" + out
    suffix = _UNIT_SUFFIX.get(unit, _INVALID.sub("_", unit))
    if suffix and not out.endswith("_" + suffix):
        out += "_" + suffix
    if counter and not out.endswith("_total"):
        out += "_total"
    return out


def label_name(name: str) -> str:
    out = _INVALID_LABEL.sub("_", name)
    return "_" + out if out[:1].isdigit() else out


def escape_value(value: object) -> str:
    text = value if isinstance(value, str) else str(value)
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def format_number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if isinstance(value, int) or float(value).is_integer():
        return str(int(value))
    return repr(float(value))


def _labels(attributes: Labels | None, extra: tuple[str, str] | None = None) -> str:
    pairs = [(label_name(k), escape_value(v)) for k, v in sorted((attributes or {}).items())]
    if extra is not None:
        pairs.append(extra)
    if not pairs:
        return ""
    return "{" + ",".join(f'{k}="{v}"' for k, v in pairs) + "}"


def _render(metric: Metric) -> Iterable[str]:
    data = metric.data
    counter = isinstance(data, Sum) and data.is_monotonic
    name = metric_name(metric.name, metric.unit or "", counter=counter)
    if isinstance(data, Histogram):
        kind = "histogram"
    elif counter:
        kind = "counter"
    else:
        kind = "gauge"  # gauges and up-down sums
    if metric.description:
        yield f"# HELP {name} {escape_help(metric.description)}"
    yield f"# TYPE {name} {kind}"
    if isinstance(data, Histogram):
        base = name
        for point in data.data_points:
            yield from _histogram_lines(base, point)
        return
    if isinstance(data, Sum | Gauge):
        for num in data.data_points:
            assert isinstance(num, NumberDataPoint)
            yield f"{name}{_labels(num.attributes)} {format_number(num.value)}"


def _histogram_lines(base: str, point: HistogramDataPoint) -> Iterable[str]:
    cumulative = 0
    for bound, count in zip(point.explicit_bounds, point.bucket_counts, strict=False):
        cumulative += count
        le = ("le", format_number(bound))
        yield f"{base}_bucket{_labels(point.attributes, le)} {cumulative}"
    yield f"{base}_bucket{_labels(point.attributes, ('le', '+Inf'))} {point.count}"
    yield f"{base}_sum{_labels(point.attributes)} {format_number(point.sum)}"
    yield f"{base}_count{_labels(point.attributes)} {point.count}"


def exposition(data: MetricsData | None, extra: Sequence[Metric] = ()) -> str:
    """Every metric in ``extra`` and ``data`` as Prometheus text (one family per name)."""
    metrics: list[Metric] = list(extra)
    for resource in data.resource_metrics if data is not None else ():
        for scope in resource.scope_metrics:
            metrics.extend(scope.metrics)
    lines: list[str] = []
    seen: set[str] = set()
    for metric in metrics:
        if metric.name in seen:
            continue  # a family may appear once per exposition
        seen.add(metric.name)
        lines.extend(_render(metric))
    return "\n".join(lines) + "\n" if lines else ""
