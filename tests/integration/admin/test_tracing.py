"""Traces through a whole proxy: real Dubbo and grpcio callers and providers on loopback,
spans read from the SDK's in-memory exporter, trace context read at the providers."""

from __future__ import annotations

import grpc
import pytest
import trio
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from proxy.demo import GREETER
from tests.integration.admin.stack import FEATURE, AdminStack, admin_stack
from tests.integration.grpc.stack import until

TRACE = "0af7651916cd43dd8448eb211c80319c"
PARENT = "b7ad6b7169203331"


def only(spans: tuple[ReadableSpan, ...], kind: SpanKind, system: str) -> ReadableSpan:
    found = [
        s for s in spans if s.kind == kind and (s.attributes or {}).get("rpc.system.name") == system
    ]
    assert len(found) == 1, found
    return found[0]


async def settled(stack: AdminStack, servers: int = 1) -> tuple[ReadableSpan, ...]:
    """The finished spans once ``servers`` server spans ended (a relay ends its span just
    after the client has its answer)."""

    def ended() -> bool:
        done = stack.spans.get_finished_spans()
        return sum(1 for s in done if s.kind == SpanKind.SERVER) >= servers

    await until(ended)
    return stack.spans.get_finished_spans()


def parent_of(traceparent: str) -> tuple[str, str, str]:
    version, trace_id, span_id, flags = traceparent.split("-")
    assert version == "00"
    return trace_id, span_id, flags


async def test_dubbo_call_continues_the_callers_trace_into_the_provider() -> None:
    async with admin_stack() as stack:
        result = await stack.dubbo_call(
            tag=FEATURE,
            attachments={"traceparent": f"00-{TRACE}-{PARENT}-01", "tracestate": "acme=1"},
        )
        assert result.ok
        spans = await settled(stack)
        server = only(spans, SpanKind.SERVER, "dubbo")
        client = only(spans, SpanKind.CLIENT, "dubbo")
        attrs = dict(server.attributes or {})
        assert f"{server.context.trace_id:032x}" == TRACE
        assert server.parent is not None and f"{server.parent.span_id:016x}" == PARENT
        assert attrs["rpc.method"] == f"{GREETER}/sayHello"
        assert attrs["rpc.response.status_code"] == "OK"
        assert attrs["laneway.env.requested"] == FEATURE
        assert attrs["laneway.tag.carrier"] == "attachment dubbo.tag"
        assert attrs["laneway.lane"] == FEATURE
        assert attrs["laneway.provider"] == stack.feature.address
        assert attrs["server.port"] == int(str(stack.bound.dubbo).rsplit(":", 1)[1])
        # The provider got W3C context in its attachments, parented on the client span.
        seen = stack.feature.seen[-1].attachments
        trace_id, span_id, flags = parent_of(str(seen["traceparent"]))
        assert trace_id == TRACE and span_id == f"{client.context.span_id:016x}"
        assert int(flags, 16) & 1 == 1
        assert seen["tracestate"] == "acme=1"
        assert seen["dubbo.tag"] == FEATURE  # the tag carriers are still written


async def test_grpc_call_continues_the_callers_trace_into_the_provider() -> None:
    async with admin_stack() as stack:
        reply = await stack.grpc_call(
            metadata=(("x-env", FEATURE), ("traceparent", f"00-{TRACE}-{PARENT}-01"))
        )
        assert reply == b"feature-1:hi"
        spans = await settled(stack)
        server = only(spans, SpanKind.SERVER, "grpc")
        client = only(spans, SpanKind.CLIENT, "grpc")
        assert f"{server.context.trace_id:032x}" == TRACE
        assert server.name == "demo.Greeter/Hello"
        cattrs = dict(client.attributes or {})
        assert cattrs["server.address"] == "127.0.0.1"
        assert cattrs["server.port"] == int(stack.grpc_feature.address.rsplit(":", 1)[1])
        seen = stack.grpc_feature.seen_metadata[-1]
        trace_id, span_id, _flags = parent_of(seen["traceparent"])
        assert (trace_id, span_id) == (TRACE, f"{client.context.span_id:016x}")
        assert list(seen).count("traceparent") == 1


async def test_untraced_caller_gets_a_new_trace_that_reaches_the_provider() -> None:
    async with admin_stack() as stack:
        assert await stack.grpc_call() == b"main:hi"
        server = only(await settled(stack), SpanKind.SERVER, "grpc")
        assert server.parent is None
        trace_id, _span, _flags = parent_of(stack.grpc_main.seen_metadata[-1]["traceparent"])
        assert trace_id == f"{server.context.trace_id:032x}"


async def test_sampled_out_calls_pass_the_callers_context_through_untouched() -> None:
    async with admin_stack(sampling=0.0) as stack:
        assert (await stack.dubbo_call()).ok
        assert "traceparent" not in stack.main.seen[-1].attachments
        unsampled = f"00-{TRACE}-{PARENT}-00"
        assert (await stack.dubbo_call(attachments={"traceparent": unsampled})).ok
        assert stack.main.seen[-1].attachments["traceparent"] == unsampled
        assert await stack.grpc_call(metadata=(("traceparent", unsampled),)) == b"main:hi"
        assert stack.grpc_main.seen_metadata[-1]["traceparent"] == unsampled
        assert stack.spans.get_finished_spans() == ()


async def test_tracing_off_sends_no_trace_context() -> None:
    async with admin_stack(tracing=False) as stack:
        assert (await stack.dubbo_call()).ok
        assert "traceparent" not in stack.main.seen[-1].attachments
        assert stack.spans.get_finished_spans() == ()


async def test_unknown_service_is_an_error_span_without_a_client_span() -> None:
    """R3 no-route (as a span)"""
    async with admin_stack() as stack:
        other = stack.channel.unary_unary("/acme.Missing/Get", None, None)
        with pytest.raises(grpc.RpcError):
            await trio.to_thread.run_sync(lambda: other(b"", timeout=5))
        spans = await settled(stack)
        server = only(spans, SpanKind.SERVER, "grpc")
        assert server.status.status_code == StatusCode.ERROR
        attrs = dict(server.attributes or {})
        assert attrs["rpc.response.status_code"] == "UNIMPLEMENTED"
        assert attrs["laneway.error_kind"] == "no_provider"
        assert not [s for s in spans if s.kind == SpanKind.CLIENT]
