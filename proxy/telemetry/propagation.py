"""W3C trace context in and out of a call's carriers (gRPC metadata, Dubbo attachments).

Both protocols reach telemetry as one lower-cased ``str -> str`` mapping (``Call.metadata``):
gRPC metadata names are lower case on the wire, and the Dubbo front end lower-cases its
string attachments. So one extractor serves both, and one injector produces the entries
the forwarders write on the outbound call (as headers or as attachments).

What goes out: ``traceparent`` (and ``tracestate`` when the caller sent one). ``baggage``
is read into the context but not re-written here: the data path already forwards the
caller's baggage unchanged, adding only the env member (DESIGN.md §2.4), and writing it
twice would duplicate members on the gRPC side.
"""

from __future__ import annotations

from collections.abc import Mapping

from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context import Context
from opentelemetry.trace import SpanContext
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
BAGGAGE = "baggage"
CARRIER_NAMES = (TRACEPARENT, TRACESTATE, BAGGAGE)

_TRACE_CONTEXT = TraceContextTextMapPropagator()
_BAGGAGE = W3CBaggagePropagator()


def extract(metadata: Mapping[str, str]) -> Context | None:
    """The caller's context (remote parent span and baggage), or None when the call carries
    neither ``traceparent`` nor ``baggage`` (the common, cheap case). Malformed values are
    ignored, as the W3C spec asks: the call then starts a new trace."""
    if TRACEPARENT not in metadata and BAGGAGE not in metadata:
        return None
    ctx = _TRACE_CONTEXT.extract(metadata)
    if BAGGAGE in metadata:
        ctx = _BAGGAGE.extract(metadata, context=ctx)
    return ctx


def traceparent(span: SpanContext) -> str:
    """The W3C ``traceparent`` value naming ``span`` as the parent (version 00)."""
    return f"00-{span.trace_id:032x}-{span.span_id:016x}-{int(span.trace_flags):02x}"


def inject(span: SpanContext) -> dict[str, str]:
    """Entries to write on the outbound call so the next hop continues ``span``'s trace.
    Empty for an invalid context (nothing to continue)."""
    if not span.is_valid:
        return {}
    out = {TRACEPARENT: traceparent(span)}
    state = span.trace_state.to_header()
    if state:
        out[TRACESTATE] = state
    return out
