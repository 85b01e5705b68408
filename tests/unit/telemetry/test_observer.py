"""The OpenTelemetry CallObserver without sockets: a real router decides, the observer
records spans (SDK in-memory exporter), metrics (SDK reader) and log lines."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator, Mapping

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from proxy import logs
from proxy.call import Call
from proxy.config import TelemetryConfig
from proxy.errors import DubboStatus, GrpcStatus
from proxy.health import HostHealth
from proxy.observe import NO_OBSERVER
from proxy.registry.model import Lanes, Provider, ServiceKey
from proxy.router import Router, TableRef
from proxy.telemetry import Telemetry
from proxy.telemetry.metrics import decision_outcome
from proxy.telemetry.observer import is_error, status_name
from routing import loads

SERVICE = "demo.Greeter"
MAIN = Provider(address="127.0.0.1:7001", protocol="grpc", env="main")
FEATURE = Provider(address="127.0.0.1:7002", protocol="grpc", env="feature-1")
PARENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_SPAN = "00f067aa0ba902b7"

ROUTES = """
environments:
  feature-1: {}
  locked: {strict: true}
"""


def make_router(lanes: Lanes | None = None) -> Router:
    table = loads(ROUTES, "routes.yaml")
    known = {"main": (MAIN,), "feature-1": (FEATURE,)} if lanes is None else lanes
    return Router(TableRef(table), lambda _key: known, HostHealth(), lambda: 0.0)


def make_call(metadata: Mapping[str, str] | None = None) -> Call:
    return Call(ServiceKey.of(SERVICE), "Hello", ("grpc",), dict(metadata or {}))


def telemetry(sampling: float = 1.0) -> tuple[Telemetry, InMemorySpanExporter]:
    spans = InMemorySpanExporter()
    config = TelemetryConfig(tracing=True, sampling=sampling)
    return Telemetry(config, span_exporter=spans), spans


def by_kind(spans: tuple[ReadableSpan, ...], kind: SpanKind) -> list[ReadableSpan]:
    return [s for s in spans if s.kind == kind]


@pytest.fixture
def call_log() -> Iterator[io.StringIO]:
    out = io.StringIO()
    handler = logs.configure(stream=out, json_output=True)
    yield out
    logging.getLogger(logs.ROOT).removeHandler(handler)


def test_all_off_means_no_observer_at_all() -> None:
    t = Telemetry(TelemetryConfig(metrics=False, tracing=False, access_log=False))
    assert t.observer is NO_OBSERVER
    assert t.metrics_text() == ""


def test_server_and_client_spans_carry_rpc_conventions_and_the_decision() -> None:
    t, spans = telemetry()
    router = make_router()
    call = make_call({"x-env": "feature-1"})
    scope = t.observer.call_started(call, "grpc")
    scope.routed(router.route(call))
    outbound = scope.propagation()
    scope.finished(int(GrpcStatus.OK))
    done = spans.get_finished_spans()
    (server,) = by_kind(done, SpanKind.SERVER)
    (client,) = by_kind(done, SpanKind.CLIENT)
    attrs = dict(server.attributes or {})
    assert server.name == "demo.Greeter/Hello"
    assert attrs["rpc.system.name"] == "grpc"
    assert attrs["rpc.method"] == "demo.Greeter/Hello"
    assert attrs["rpc.response.status_code"] == "OK"
    assert attrs["laneway.env.requested"] == "feature-1"
    assert attrs["laneway.tag.carrier"] == "header x-env"
    assert attrs["laneway.lane"] == "feature-1"
    assert attrs["laneway.provider"] == FEATURE.address
    assert attrs["laneway.lanes_tried"] == ("feature-1:used",)
    assert "rpc.system" not in attrs and "rpc.service" not in attrs  # deprecated names
    cattrs = dict(client.attributes or {})
    assert cattrs["server.address"] == "127.0.0.1" and cattrs["server.port"] == 7002
    assert client.parent is not None and client.parent.span_id == server.context.span_id
    # The next hop's parent is the client span.
    assert outbound["traceparent"] == (
        f"00-{client.context.trace_id:032x}-{client.context.span_id:016x}-"
        f"{int(client.context.trace_flags):02x}"
    )


def test_incoming_trace_context_is_continued_with_tracestate() -> None:
    t, spans = telemetry()
    call = make_call(
        {
            "traceparent": f"00-{PARENT_TRACE}-{PARENT_SPAN}-01",
            "tracestate": "vendor=abc",
            "baggage": "user=7",
        }
    )
    scope = t.observer.call_started(call, "grpc")
    scope.routed(make_router().route(call))
    outbound = scope.propagation()
    scope.finished(int(GrpcStatus.OK))
    (server,) = by_kind(spans.get_finished_spans(), SpanKind.SERVER)
    assert f"{server.context.trace_id:032x}" == PARENT_TRACE
    assert server.parent is not None and f"{server.parent.span_id:016x}" == PARENT_SPAN
    assert outbound["traceparent"].startswith(f"00-{PARENT_TRACE}-")
    assert outbound["tracestate"] == "vendor=abc"
    assert "baggage" not in outbound  # the data path forwards the caller's baggage itself


def test_malformed_traceparent_starts_a_new_trace() -> None:
    t, spans = telemetry()
    call = make_call({"traceparent": "00-zzzz-not-hex-01"})
    scope = t.observer.call_started(call, "grpc")
    scope.routed(make_router().route(call))
    scope.finished(int(GrpcStatus.OK))
    (server,) = by_kind(spans.get_finished_spans(), SpanKind.SERVER)
    assert server.parent is None


def test_sampled_out_calls_record_and_inject_nothing() -> None:
    """The caller's own carriers pass through untouched (the right parent for an unrecorded
    hop); writing our own would force the Dubbo path to re-encode the attachments."""
    t, spans = telemetry(sampling=0.0)
    for metadata in ({}, {"traceparent": f"00-{PARENT_TRACE}-{PARENT_SPAN}-00"}):
        call = make_call(metadata)
        scope = t.observer.call_started(call, "dubbo")
        scope.routed(make_router().route(call))
        assert scope.propagation() == {}
        scope.finished(int(DubboStatus.OK))
    assert spans.get_finished_spans() == ()


def test_parent_sampled_flag_wins_over_the_ratio() -> None:
    t, spans = telemetry(sampling=0.0)
    call = make_call({"traceparent": f"00-{PARENT_TRACE}-{PARENT_SPAN}-01"})
    scope = t.observer.call_started(call, "grpc")
    scope.routed(make_router().route(call))
    scope.finished(int(GrpcStatus.OK))
    assert len(by_kind(spans.get_finished_spans(), SpanKind.SERVER)) == 1


def test_a_retry_ends_the_previous_client_span_with_an_error() -> None:
    t, spans = telemetry()
    router = make_router()
    call = make_call()
    scope = t.observer.call_started(call, "grpc")
    scope.routed(router.route(call))
    scope.routed(router.route(call))
    scope.finished(int(GrpcStatus.OK))
    clients = by_kind(spans.get_finished_spans(), SpanKind.CLIENT)
    assert len(clients) == 2
    assert clients[0].status.status_code == StatusCode.ERROR
    assert clients[1].status.status_code != StatusCode.ERROR


def test_failed_call_is_one_log_line_with_trace_id_and_env(call_log: io.StringIO) -> None:
    t, spans = telemetry()
    router = make_router({})  # no provider anywhere
    call = make_call({"x-env": "feature-1"})
    scope = t.observer.call_started(call, "grpc")
    decision = router.route(call)
    scope.routed(decision)
    scope.finished(int(GrpcStatus.UNAVAILABLE), decision.error)
    (server,) = spans.get_finished_spans()
    assert server.status.status_code == StatusCode.ERROR
    assert dict(server.attributes or {})["error.type"] == "UNAVAILABLE"
    lines = call_log.getvalue().splitlines()
    assert len(lines) == 1
    line = json.loads(lines[0])
    assert line["level"] == "warning" and line["logger"] == "laneway.calls"
    assert line["trace_id"] == f"{server.context.trace_id:032x}"
    assert line["env"] == "feature-1"
    assert line["status"] == "UNAVAILABLE"
    assert "demo.Greeter" in line["msg"]


def test_access_log_writes_one_line_per_call(call_log: io.StringIO) -> None:
    t = Telemetry(TelemetryConfig(metrics=False, access_log=True))
    call = make_call()
    scope = t.observer.call_started(call, "grpc")
    scope.routed(make_router().route(call))
    assert scope.propagation() == {}  # tracing off: nothing to inject
    scope.finished(int(GrpcStatus.OK))
    (line,) = [json.loads(x) for x in call_log.getvalue().splitlines()]
    assert line["logger"] == "laneway.access" and line["status"] == "OK"
    assert line["lane"] == "main" and line["trace_id"] == ""


def test_metrics_count_duration_and_decisions() -> None:
    t = Telemetry(TelemetryConfig())
    router = make_router()
    for env in ("feature-1", "feature-2", None):
        call = make_call({"x-env": env} if env else {})
        scope = t.observer.call_started(call, "grpc")
        scope.routed(router.route(call))
        scope.finished(int(GrpcStatus.OK))
    text = t.metrics_text()
    assert 'laneway_decisions_total{outcome="matched",rpc_system_name="grpc"} 2' in text
    assert 'laneway_decisions_total{outcome="fallback",rpc_system_name="grpc"} 1' in text
    count = [
        ln
        for ln in text.splitlines()
        if ln.startswith("rpc_server_call_duration_seconds_count")
        and 'laneway_env="feature-2"' in ln
        and 'laneway_lane="main"' in ln
    ]
    assert count and count[0].endswith(" 1")


def test_decision_outcomes_and_status_names() -> None:
    router = make_router({"main": (MAIN,)})
    assert decision_outcome(router.route(make_call())) == "matched"
    assert decision_outcome(router.route(make_call({"x-env": "feature-1"}))) == "fallback"
    assert decision_outcome(router.route(make_call({"x-env": "locked"}))) == "strict_failure"
    assert decision_outcome(router.route(make_call({"x-env": "bad tag!"}))) == "invalid_tag"
    assert decision_outcome(None) == "no_provider"
    assert status_name("dubbo", 60) == "SERVICE_NOT_FOUND"
    assert status_name("grpc", 14) == "UNAVAILABLE"
    assert status_name("grpc", 99) == "99"
    assert is_error("dubbo", 31) and not is_error("dubbo", 20)
    assert is_error("grpc", 14) and not is_error("grpc", 9)  # FAILED_PRECONDITION: the app's


def test_console_exporter_prints_each_span(capsys: pytest.CaptureFixture[str]) -> None:
    t = Telemetry(TelemetryConfig(tracing=True, exporter="console"))
    call = make_call()
    scope = t.observer.call_started(call, "grpc")
    scope.routed(make_router().route(call))
    scope.finished(int(GrpcStatus.OK))
    t.shutdown()
    out = capsys.readouterr().out
    assert out.count('"name": "demo.Greeter/Hello"') == 2  # the server and the client span
    assert '"kind": "SpanKind.SERVER"' in out


def test_new_traces_are_sampled_at_the_configured_ratio() -> None:
    t, spans = telemetry(sampling=0.05)
    router = make_router()
    for _ in range(2000):
        call = make_call()
        scope = t.observer.call_started(call, "grpc")
        scope.routed(router.route(call))
        scope.finished(int(GrpcStatus.OK))
    servers = by_kind(spans.get_finished_spans(), SpanKind.SERVER)
    assert 40 <= len(servers) <= 180  # binomial(2000, 0.05): mean 100, sd ~10
