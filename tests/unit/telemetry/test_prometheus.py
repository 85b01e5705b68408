"""Prometheus text exposition rendered from real OpenTelemetry SDK metric data."""

from __future__ import annotations

from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from proxy.telemetry.metrics import DURATION_BUCKETS, MAX_SERIES, CallMetrics
from proxy.telemetry.prometheus import escape_value, exposition, format_number, metric_name

CALL = "rpc_server_call_duration_seconds"


def _provider() -> tuple[MeterProvider, InMemoryMetricReader]:
    reader = InMemoryMetricReader()
    return MeterProvider([reader], shutdown_on_exit=False), reader


def test_names_follow_the_otel_to_prometheus_rules() -> None:
    assert metric_name("rpc.server.call.duration", "s", counter=False) == (
        "rpc_server_call_duration_seconds"
    )
    assert metric_name("laneway.decisions", "1", counter=True) == "laneway_decisions_total"
    assert metric_name("laneway.reloads_total", "1", counter=True) == "laneway_reloads_total"
    assert metric_name("9lives", "By", counter=False) == "_9lives_bytes"


def test_label_values_are_escaped() -> None:
    assert escape_value('a"b\\c\nd') == 'a\\"b\\\\c\\nd'
    assert format_number(3.0) == "3"
    assert format_number(0.25) == "0.25"
    assert format_number(float("inf")) == "+Inf"


def test_counter_histogram_and_gauge_render() -> None:
    provider, reader = _provider()
    meter = provider.get_meter("t")
    counter = meter.create_counter("laneway.decisions", unit="1", description="Decisions.")
    counter.add(2, {"outcome": "matched"})
    counter.add(1, {"outcome": "fallback"})
    hist = meter.create_histogram(
        "rpc.server.call.duration", unit="s", explicit_bucket_boundaries_advisory=DURATION_BUCKETS
    )
    for value in (0.00003, 0.0004, 0.0004, 45.0):
        hist.record(value, {"rpc.method": 'a/"b"'})

    def observe(_options: CallbackOptions) -> list[Observation]:
        return [Observation(7, {"env": "main"})]

    meter.create_observable_gauge("laneway.registry.providers", [observe], unit="1")
    text = exposition(reader.get_metrics_data())
    lines = text.splitlines()
    assert "# HELP laneway_decisions_total Decisions." in lines
    assert "# TYPE laneway_decisions_total counter" in lines
    assert 'laneway_decisions_total{outcome="matched"} 2' in lines
    assert 'laneway_decisions_total{outcome="fallback"} 1' in lines
    assert "# TYPE rpc_server_call_duration_seconds histogram" in lines
    label = 'rpc_method="a/\\"b\\""'
    assert f'rpc_server_call_duration_seconds_bucket{{{label},le="5e-05"}} 1' in lines
    assert f'rpc_server_call_duration_seconds_bucket{{{label},le="0.0005"}} 3' in lines
    assert f'rpc_server_call_duration_seconds_bucket{{{label},le="30"}} 3' in lines
    assert f'rpc_server_call_duration_seconds_bucket{{{label},le="+Inf"}} 4' in lines
    assert f"rpc_server_call_duration_seconds_count{{{label}}} 4" in lines
    sums = [ln for ln in lines if ln.startswith("rpc_server_call_duration_seconds_sum")]
    assert len(sums) == 1 and abs(float(sums[0].rsplit(" ", 1)[1]) - 45.00083) < 1e-9
    assert "# TYPE laneway_registry_providers gauge" in lines
    assert 'laneway_registry_providers{env="main"} 7' in lines
    assert text.endswith("\n")
    provider.shutdown()


def test_buckets_span_50us_to_30s() -> None:
    assert DURATION_BUCKETS[0] == 0.00005
    assert DURATION_BUCKETS[-1] == 30.0
    assert list(DURATION_BUCKETS) == sorted(DURATION_BUCKETS)


def test_no_data_is_an_empty_exposition() -> None:
    assert exposition(None) == ""
    provider, reader = _provider()
    assert exposition(reader.get_metrics_data()) == ""
    provider.shutdown()


def test_call_metrics_fold_excess_series_into_one_overflow_series() -> None:
    """Labels come from requests: a caller inventing method names cannot grow memory."""
    metrics = CallMetrics()
    for i in range(MAX_SERIES + 50):
        labels = ("grpc", f"a.B/m{i}", "OK", "a.B", "", "main")
        metrics.record(labels, 0.001, "grpc", "matched")
    text = exposition(None, metrics.collect())
    counts = [ln for ln in text.splitlines() if ln.startswith(f"{CALL}_count")]
    assert len(counts) == MAX_SERIES + 1
    assert f'{CALL}_count{{otel_metric_overflow="true"}} 50' in counts
    assert 'laneway_decisions_total{outcome="matched",rpc_system_name="grpc"} 2050' in text


def test_call_metrics_bucket_edges_are_inclusive() -> None:
    metrics = CallMetrics()
    labels = ("dubbo", "a.B/m", "OK", "a.B", "", "main")
    for seconds in (0.00005, 0.0000501, 31.0):
        metrics.record(labels, seconds, "dubbo", "matched")
    lines = exposition(None, metrics.collect()).splitlines()
    assert any('le="5e-05"} 1' in ln for ln in lines)
    assert any('le="0.0001"} 2' in ln for ln in lines)
    assert any('le="30"} 2' in ln for ln in lines)
    assert any('le="+Inf"} 3' in ln for ln in lines)
