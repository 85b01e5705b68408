"""`telemetry.exporter: otlp`: spans leave the proxy as OTLP/HTTP protobuf POSTs. The
collector here is a small h11 server on loopback that decodes what it receives with the
OTLP protobuf definitions."""

from __future__ import annotations

from dataclasses import dataclass, field

import h11
import trio
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from proxy.registry.model import join_address
from tests.integration.admin.stack import FEATURE, admin_stack
from tests.integration.grpc.stack import until

MAX_BODY = 4 * 1024 * 1024
# why: one export batch of a few spans is kilobytes; more means the test is broken.


@dataclass
class Collector:
    posts: list[tuple[bytes, dict[bytes, bytes], bytes]] = field(default_factory=list)

    async def serve_one(self, stream: trio.SocketStream) -> None:
        conn = h11.Connection(h11.SERVER)
        body = b""
        request: h11.Request | None = None
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await stream.receive_some(65536))
            elif isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                body += event.data
                assert len(body) <= MAX_BODY
            elif isinstance(event, h11.EndOfMessage):
                break
            else:
                return
        assert request is not None
        self.posts.append((request.target, dict(request.headers), body))
        out = conn.send(h11.Response(status_code=200, headers=[("content-length", "0")])) or b""
        out += conn.send(h11.EndOfMessage()) or b""
        await stream.send_all(out)
        await stream.aclose()

    async def run(self, *, task_status: trio.TaskStatus[str]) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        host, port = listeners[0].socket.getsockname()[:2]
        async with trio.open_nursery() as nursery:
            task_status.started(join_address(host, port))
            await trio.serve_listeners(self.serve_one, listeners, handler_nursery=nursery)


async def test_spans_are_exported_over_otlp_http() -> None:
    collector = Collector()
    async with trio.open_nursery() as nursery:
        address = await nursery.start(collector.run)
        async with admin_stack(otlp_endpoint=f"http://{address}/v1/traces") as stack:
            assert await stack.grpc_call(metadata=(("x-env", FEATURE),)) == b"feature-1:hi"
            await until(lambda: stack.proxy.telemetry.state.in_flight["grpc"] == 0)
            provider = stack.proxy.telemetry.tracer_provider
            assert provider is not None
            # The batch exporter POSTs from its own thread; flush without blocking trio.
            assert await trio.to_thread.run_sync(provider.force_flush)
            await until(lambda: bool(collector.posts))
        nursery.cancel_scope.cancel()
    target, headers, body = collector.posts[0]
    assert target == b"/v1/traces"
    assert headers[b"content-type"] == b"application/x-protobuf"
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    spans = [s for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]
    names = {(s.name, s.kind) for s in spans}
    assert ("demo.Greeter/Hello", 2) in names  # SPAN_KIND_SERVER
    assert ("demo.Greeter/Hello", 3) in names  # SPAN_KIND_CLIENT
    resource = {a.key: a.value.string_value for a in request.resource_spans[0].resource.attributes}
    assert resource["service.name"] == "laneway"
