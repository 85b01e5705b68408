"""``CallObserver`` on OpenTelemetry: spans, call metrics and the per-call log lines.

One ``_Scope`` per inbound call:

- a SERVER span named by the fully-qualified method (``demo.Greeter/Hello``), child of the
  caller's W3C context when it sent one, with the current RPC conventions
  (``rpc.system.name``, ``rpc.method``, ``rpc.response.status_code``, ``server.address``)
  and laneway's decision (``laneway.*``: env asked, carrier, rule, lanes tried, lane,
  fallback, provider, table version);
- a CLIENT span per upstream attempt (a retry on another provider ends the previous one
  with an error), whose context is what ``propagation()`` hands the forwarder to write as
  ``traceparent`` on the outbound call, so the provider's span is its child;
- the duration histogram and the decision counter, recorded once at ``finished``;
- one log line per failed call (trace id, env, lanes) and, when enabled, an access line.

A new trace the sampler drops gets no span at all (the decision is one ``random()``); a
caller's unsampled context gets a non-recording span. Either way nothing is injected: the caller's
``traceparent`` (if it sent one, sampled flag and all) reaches the provider unchanged, which
is the correct parent for a hop that is not recorded; a call that arrived without context
leaves without it. That keeps a sampled-out call as cheap as tracing off on the wire too:
on the Dubbo path any injected entry forces the attachments map to be re-encoded, which
costs more than the span itself (bench/RESULTS.md, "Observability").
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Mapping

from opentelemetry.trace import (
    Span,
    SpanKind,
    Status,
    StatusCode,
    Tracer,
    format_trace_id,
    get_current_span,
    set_span_in_context,
)

from proxy.call import Call
from proxy.errors import DubboStatus, GrpcStatus
from proxy.observe import CallScope
from proxy.registry.model import InvalidRegistration, split_address
from proxy.router import Candidate
from proxy.telemetry.metrics import CallMetrics, decision_outcome
from proxy.telemetry.propagation import extract, inject
from proxy.telemetry.state import TelemetryState
from routing import Decision

CALL_LOG = logging.getLogger("laneway.calls")
ACCESS_LOG = logging.getLogger("laneway.access")

_STATUS_NAMES: dict[str, dict[int, str]] = {
    "dubbo": {int(s): s.name for s in DubboStatus},
    "grpc": {int(s): s.name for s in GrpcStatus},
}
_OK: dict[str, int] = {"dubbo": int(DubboStatus.OK), "grpc": int(GrpcStatus.OK)}
_GRPC_SERVER_ERRORS = frozenset(
    int(s)
    for s in (
        GrpcStatus.UNKNOWN,
        GrpcStatus.DEADLINE_EXCEEDED,
        GrpcStatus.UNIMPLEMENTED,
        GrpcStatus.INTERNAL,
        GrpcStatus.UNAVAILABLE,
        GrpcStatus.DATA_LOSS,
    )
)
"""The gRPC codes the RPC span conventions count as a server-side error; the others
(NOT_FOUND, FAILED_PRECONDITION, ...) are the application answering."""
_EMPTY: Mapping[str, str] = {}


def is_error(system: str, status: int) -> bool:
    """Whether ``status`` marks the call failed (span status ERROR, an error log line)."""
    if system == "grpc":
        return status in _GRPC_SERVER_ERRORS
    return status != _OK.get(system, 0)


def status_name(system: str, status: int) -> str:
    """``rpc.response.status_code``: the status's name (``OK``, ``SERVICE_NOT_FOUND``)."""
    return _STATUS_NAMES.get(system, {}).get(status) or str(status)


def decision_attributes(decision: Decision[Candidate]) -> dict[str, str | int | list[str]]:
    """The decision as span attributes (None fields left out, as OTel requires)."""
    attrs: dict[str, str | int | list[str]] = {
        "laneway.env": decision.env,
        "laneway.table_version": decision.table_version,
        "laneway.lanes_tried": [f"{a.env}:{a.outcome.value}" for a in decision.lanes_tried],
    }
    optional = {
        "laneway.env.requested": decision.tag,
        "laneway.tag.carrier": str(decision.carrier) if decision.carrier else None,
        "laneway.tag.invalid": decision.invalid_tag,
        "laneway.rule": decision.rule,
        "laneway.lane": decision.lane,
        "laneway.fallback": decision.fallback.value if decision.fallback else None,
        "laneway.provider": decision.provider.address if decision.provider else None,
        "laneway.error_kind": decision.error_kind.value if decision.error_kind else None,
    }
    for name, value in optional.items():
        if value is not None:
            attrs[name] = value
    return attrs


class TelemetryObserver:
    """The ``CallObserver`` a proxy with telemetry on uses. ``tracer`` None: no spans;
    ``metrics`` None: no call metrics."""

    __slots__ = ("access_log", "metrics", "sampling", "server_attributes", "state", "tracer")

    def __init__(
        self,
        *,
        tracer: Tracer | None,
        metrics: CallMetrics | None,
        state: TelemetryState,
        access_log: bool = False,
        sampling: float = 1.0,
    ) -> None:
        """``sampling``: the fraction of *new* traces recorded. The tracer's sampler must be
        ``ParentBased(ALWAYS_ON)``: the root decision is made here, before any span exists,
        so a dropped call costs one ``random()`` instead of a non-recording span."""
        self.tracer = tracer
        self.sampling = sampling
        self.metrics = metrics
        self.state = state
        self.access_log = access_log
        self.server_attributes: dict[str, dict[str, str | int]] = {"dubbo": {}, "grpc": {}}
        """``server.address`` / ``server.port`` of each listener, once bound."""

    def listening(self, system: str, address: str | None) -> None:
        """Record where ``system``'s listener is bound (for ``server.*`` span attributes)."""
        if address is None:
            return
        host, port = split_address(address)
        self.server_attributes[system] = {"server.address": host, "server.port": port}

    def call_started(self, call: Call, system: str) -> CallScope:
        return _Scope(self, call, system)


class _Scope:
    __slots__ = (
        "_call",
        "_client",
        "_decision",
        "_done",
        "_method",
        "_obs",
        "_span",
        "_start",
        "_system",
    )

    def __init__(self, obs: TelemetryObserver, call: Call, system: str) -> None:
        self._start = time.perf_counter()
        self._done = False
        self._obs = obs
        self._call = call
        self._system = system
        self._decision: Decision[Candidate] | None = None
        self._client: Span | None = None
        self._method = f"{call.key.interface}/{call.method}"
        obs.state.in_flight[system] = obs.state.in_flight.get(system, 0) + 1
        self._span: Span | None = None
        if obs.tracer is not None:
            parent = extract(call.metadata)
            remote = parent is not None and get_current_span(parent).get_span_context().is_valid
            if remote or obs.sampling >= 1.0 or random.random() < obs.sampling:
                # A caller's context: the parent-based sampler follows its sampled flag.
                attrs: dict[str, str | int] = {
                    "rpc.system.name": system,
                    "rpc.method": self._method,
                }
                attrs.update(obs.server_attributes.get(system, {}))
                self._span = obs.tracer.start_span(
                    self._method, context=parent, kind=SpanKind.SERVER, attributes=attrs
                )

    def routed(self, decision: Decision[Candidate]) -> None:
        self._decision = decision
        span = self._span
        if span is None or not span.is_recording():
            return
        span.set_attributes(decision_attributes(decision))
        if self._client is not None:
            self._client.set_status(Status(StatusCode.ERROR, "retried on another provider"))
            self._client.end()
            self._client = None
        provider = decision.provider
        if provider is None or self._obs.tracer is None:
            return
        attrs: dict[str, str | int] = {
            "rpc.system.name": self._system,
            "rpc.method": self._method,
            "laneway.lane": provider.env,
        }
        try:
            host, port = split_address(provider.address)
        except InvalidRegistration:
            attrs["server.address"] = provider.address  # a non-TCP address (tunnel:...)
        else:
            attrs["server.address"] = host
            attrs["server.port"] = port
        self._client = self._obs.tracer.start_span(
            self._method,
            context=set_span_in_context(span),
            kind=SpanKind.CLIENT,
            attributes=attrs,
        )

    def propagation(self) -> Mapping[str, str]:
        if self._client is not None:
            return inject(self._client.get_span_context())
        span = self._span
        if span is None or not span.is_recording():
            # Sampled out: write nothing, so the caller's own carriers (if any) reach the
            # provider untouched -- the right parent for an unrecorded hop -- and the Dubbo
            # path keeps forwarding the original bytes instead of re-encoding attachments.
            return _EMPTY
        return inject(span.get_span_context())

    def finished(self, status: int, message: str | None = None) -> None:
        if self._done:
            return  # a call ends once; a late second report (e.g. after a cancel) is ignored
        self._done = True
        obs, system, decision = self._obs, self._system, self._decision
        duration = time.perf_counter() - self._start
        obs.state.in_flight[system] -= 1
        code = status_name(system, status)
        failed = is_error(system, status)
        env = (decision.tag or "") if decision is not None else ""
        lane = (decision.lane or "") if decision is not None else ""
        metrics = obs.metrics
        if metrics is not None:
            labels = (system, self._method, code, self._call.key.interface, env, lane)
            metrics.record(labels, duration, system, decision_outcome(decision))
        trace_id = ""
        span = self._span
        if span is not None:
            context = span.get_span_context()
            if context.is_valid:
                trace_id = format_trace_id(context.trace_id)
            if span.is_recording():
                self._end_spans(span, code, failed, message)
        if failed:
            self._log(CALL_LOG, logging.WARNING, code, message, trace_id, env, lane, duration)
        elif obs.access_log and ACCESS_LOG.isEnabledFor(logging.INFO):
            self._log(ACCESS_LOG, logging.INFO, code, message, trace_id, env, lane, duration)

    def _end_spans(self, span: Span, code: str, failed: bool, message: str | None) -> None:
        client = self._client
        for s in (client, span) if client is not None else (span,):
            s.set_attribute("rpc.response.status_code", code)
            if failed:
                s.set_attribute("error.type", code)
                s.set_status(Status(StatusCode.ERROR, message or code))
            s.end()
        self._client = None

    def _log(
        self,
        logger: logging.Logger,
        level: int,
        code: str,
        message: str | None,
        trace_id: str,
        env: str,
        lane: str,
        duration: float,
    ) -> None:
        decision = self._decision
        fields: dict[str, object] = {
            "system": self._system,
            "method": self._method,
            "status": code,
            "env": env,
            "lane": lane,
            "trace_id": trace_id,
            "duration_ms": round(duration * 1000, 3),
        }
        if decision is not None and decision.provider is not None:
            fields["provider"] = decision.provider.address
        if decision is not None and decision.lanes_tried:
            fields["lanes_tried"] = ",".join(a.env for a in decision.lanes_tried)
        text = f"{self._method} {code}"
        if message:
            text += f": {message}"
        logger.log(level, "%s", text, extra={"fields": fields})
