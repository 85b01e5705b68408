"""Relaying one gRPC / Triple call: route it, open an upstream stream, pump both ways.

DATA frames are forwarded as opaque bytes; only the 5-byte message prefixes are walked to
enforce the message-size limit (G5). Flow control is end to end (R11): bytes received on
one side are acknowledged to their sender only once the other side's codec let them out,
so a slow reader slows the writer instead of filling laneway's memory.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import trio

from proxy.call import Call
from proxy.codecs.grpc.connection import H2Connection
from proxy.codecs.grpc.errors import ErrorCode
from proxy.codecs.grpc.events import (
    DataReceived,
    ResponseReceived,
    StreamEnded,
    StreamReset,
    TrailersReceived,
    WindowUpdated,
)
from proxy.codecs.grpc.grpc import (
    MAX_FORWARDED_TIMEOUT_NS,
    CallInfo,
    MessageDecoder,
    MessageScanner,
    call_info,
    encode_message,
    format_timeout,
    parse_status,
    status_trailers,
    trailers_only,
)
from proxy.errors import GrpcStatus, LanewayError, UpstreamDied
from proxy.local_services import LocalServices
from proxy.net.h2_upstream import H2Upstream, StreamEvent, UpstreamLost
from proxy.net.pool import UpstreamPool
from proxy.observe import NO_OBSERVER, CallObserver, CallScope
from proxy.registry.model import ServiceKey
from proxy.router import Candidate, Router
from routing import Decision, RouteTable, baggage_member

GRPC_PROTOCOLS = ("grpc", "tri")
"""Registry protocols that speak gRPC over HTTP/2 (Triple is wire-compatible)."""
MAX_CONNECT_RETRIES = 2
# why: gRFC A6 / Envoy: retry only what never reached a provider, and at most twice.
_GRPC_CONTENT = b"application/grpc"
_HOST_FAILURES = frozenset({GrpcStatus.UNAVAILABLE, GrpcStatus.INTERNAL, GrpcStatus.UNKNOWN})
# Statuses that count against the provider for outlier ejection (Envoy's gateway errors);
# application statuses (NOT_FOUND, FAILED_PRECONDITION...) and client cancels do not.
_HOP_HEADERS = frozenset({b"grpc-timeout"})
# Headers laneway rewrites itself on the way out (the tag carriers are added separately).


DownstreamEvent = DataReceived | StreamEnded | StreamReset | WindowUpdated


@dataclass
class GrpcStats:
    calls: int = 0
    no_route: int = 0
    timeouts: int = 0
    upstream_died: int = 0
    retries: int = 0
    client_cancels: int = 0
    oversize: int = 0


class Downstream(Protocol):
    """The consumer-facing HTTP/2 connection, as a call relay uses it."""

    codec: H2Connection

    def kick(self) -> None:
        """Something was queued on ``codec``: let the connection's writer flush it."""

    def on_flushed(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once what is queued on ``codec`` now has been written."""


class _Pipe:
    """One direction of a stream: hands DATA to ``dst`` and acknowledges to the sender
    (``ack``) only the bytes that ``dst``'s flow control let out *and* that were written to
    ``dst``'s socket (``after_flush``): a slow reader then slows its writer instead of
    filling laneway's buffers (R11)."""

    __slots__ = ("_ack", "_after_flush", "_dst", "_dst_id", "_held")

    def __init__(
        self,
        dst: H2Connection,
        dst_id: int,
        ack: Callable[[int], None],
        after_flush: Callable[[Callable[[], None]], None],
    ) -> None:
        self._dst = dst
        self._dst_id = dst_id
        self._ack = ack
        self._after_flush = after_flush
        self._held = 0

    def push(self, data: bytes, end_stream: bool) -> None:
        held = self._dst.send_data(self._dst_id, data, end_stream)
        self._settle(len(data), held)

    def window_opened(self) -> None:
        self._settle(0, self._dst.blocked_bytes(self._dst_id))

    def _settle(self, added: int, held: int) -> None:
        sent = added + self._held - held
        self._held = held
        if sent > 0:
            ack = self._ack
            self._after_flush(lambda: ack(sent))


class GrpcForwarder:
    """Routes and relays gRPC calls. One per proxy; shared by every connection."""

    def __init__(
        self,
        router: Router,
        pool: UpstreamPool[H2Upstream],
        *,
        route_timeout: float,
        max_message_size: int,
        observer: CallObserver = NO_OBSERVER,
        local: LocalServices | None = None,
    ) -> None:
        self.router = router
        self.observer = observer
        self.local = local
        self.pool = pool
        self._route_timeout = route_timeout
        self._max_message = max_message_size
        self.stats = GrpcStats()

    async def relay(
        self,
        down: Downstream,
        stream_id: int,
        headers: tuple[tuple[bytes, bytes], ...],
        end_stream: bool,
        inbox: trio.MemoryReceiveChannel[DownstreamEvent],
    ) -> None:
        """Serve one call to its end. Never raises for call-level problems: they become
        a gRPC status (or a stream reset) on ``stream_id``."""
        self.stats.calls += 1
        try:
            info = call_info(headers)
        except LanewayError as exc:
            self._reply(down, stream_id, exc.grpc_status, exc.message)
            return
        local = self.local
        if local is not None and local.handles(info.service):
            await self._serve_local(local, down, stream_id, info, inbox)
            return
        call = self._make_call(info, headers)
        assert call.deadline is not None
        scope = self.observer.call_started(call, "grpc")
        try:
            upstream, up_id, events, where = await self._open(call, headers, end_stream, scope)
        except LanewayError as exc:
            self._reply(down, stream_id, exc.grpc_status, exc.message)
            scope.finished(int(exc.grpc_status), exc.message)
            return
        relay = _Relay(self, down, stream_id, upstream, up_id, end_stream)
        health = self.router.health  # the slot was reserved by _open
        try:
            with trio.move_on_at(call.deadline) as deadline:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(relay.client_to_provider, inbox, nursery.cancel_scope)
                    await relay.provider_to_client(events)
                    nursery.cancel_scope.cancel()
            if deadline.cancelled_caught:
                self.stats.timeouts += 1
                relay.fail(
                    GrpcStatus.DEADLINE_EXCEEDED,
                    f"deadline exceeded calling {call.key} {where} at {upstream.address}",
                )
        finally:
            upstream.forget(up_id)
            if not relay.finished:
                # Cancelled from above: the client's connection went away mid-call.
                relay.status, relay.message = int(GrpcStatus.CANCELLED), "the client went away"
                upstream.codec.reset_stream(up_id, ErrorCode.CANCEL)
                upstream.kick()
            scope.finished(relay.status, relay.message)
            ok = relay.status not in _HOST_FAILURES
            health.finished(upstream.address, ok=ok, now=trio.current_time())

    # -- pieces -------------------------------------------------------------------------------

    def _make_call(self, info: CallInfo, headers: tuple[tuple[bytes, bytes], ...]) -> Call:
        metadata: dict[str, str] = {}
        for name, value in headers:
            if not name.startswith(b":"):
                metadata.setdefault(name.decode("latin-1"), value.decode("latin-1"))
        key = ServiceKey.of(info.service, info.version, info.group)
        timeout = self._route_timeout
        if self.local is not None and info.service in self.local.relayed:
            # Registry streams (Publish, Subscribe) live as long as their caller wants.
            timeout = math.inf
        if info.timeout_ns is not None:
            timeout = min(info.timeout_ns, MAX_FORWARDED_TIMEOUT_NS) / 1e9
        deadline = trio.current_time() + timeout
        return Call(key, info.method, GRPC_PROTOCOLS, metadata, deadline)

    async def _open(
        self,
        call: Call,
        headers: tuple[tuple[bytes, bytes], ...],
        end_stream: bool,
        scope: CallScope,
    ) -> tuple[H2Upstream, int, trio.MemoryReceiveChannel[StreamEvent], str]:
        """Route the call and open its upstream stream; return it with a description of
        where it went (for error messages). Raises a LanewayError when there is no way."""
        relayed = self.local.relayed.get(call.service) if self.local is not None else None
        if relayed is not None:  # an in-process service: no routing, no tag
            upstream = await self.pool.get(relayed)
            self.router.health.started(relayed)
            outbound = [(n, v) for n, v in headers if n not in _HOP_HEADERS]
            up_id, events = upstream.open_stream(outbound, end_stream)
            return upstream, up_id, events, "(local service)"
        exclude: set[str] = set()
        for attempt in range(MAX_CONNECT_RETRIES + 1):
            decision = self.router.route(call, exclude=exclude)
            scope.routed(decision)
            if decision.provider is None:
                self.stats.no_route += 1
                raise self._no_route(call, decision)
            self.router.check_capacity(decision.provider, call.key)
            address = decision.provider.address
            health = self.router.health
            health.started(address)  # reserve now: calls opening concurrently count too
            try:
                upstream = await self.pool.get(address)
                outbound = self._outbound_headers(headers, call, decision, scope)
                up_id, events = upstream.open_stream(outbound, end_stream)
                return upstream, up_id, events, f"in env {decision.lane or decision.env!r}"
            except UpstreamDied:
                health.release(address)  # (the pool counted the connect failure)
                exclude.add(address)  # nothing reached the provider: safe to retry (R4)
                if attempt == MAX_CONNECT_RETRIES:
                    self.stats.upstream_died += 1
                    raise
                self.stats.retries += 1
        raise AssertionError("unreachable")

    def _no_route(self, call: Call, decision: Decision[Candidate]) -> LanewayError:
        from proxy.errors import NoProvider, UnknownService

        known = self.router.lanes_of(call.key)
        kind = NoProvider if known else UnknownService
        return kind(decision.error or f"no route for {call.key}")

    def _outbound_headers(
        self,
        headers: tuple[tuple[bytes, bytes], ...],
        call: Call,
        decision: Decision[Candidate],
        scope: CallScope,
    ) -> list[tuple[bytes, bytes]]:
        tag_headers = _tag_headers(self.router.table, decision.tag, call)
        tag_headers.extend(
            (name.encode("latin-1"), value.encode("latin-1"))
            for name, value in scope.propagation().items()
        )
        skip = _HOP_HEADERS | {name for name, _ in tag_headers}
        out = [(n, v) for n, v in headers if n not in skip]
        assert call.deadline is not None
        if call.deadline != math.inf:
            remaining_ns = max(1, int((call.deadline - trio.current_time()) * 1e9))
            out.append((b"grpc-timeout", format_timeout(remaining_ns)))
        out.extend(tag_headers)
        return out

    async def _serve_local(
        self,
        local: LocalServices,
        down: Downstream,
        stream_id: int,
        info: CallInfo,
        inbox: trio.MemoryReceiveChannel[DownstreamEvent],
    ) -> None:
        """Answer a unary call to a local service (health) without any upstream."""
        decoder = MessageDecoder(self._max_message)
        messages: list[bytes] = []
        try:
            with trio.move_on_after(self._route_timeout):
                async for event in inbox:
                    if isinstance(event, DataReceived):
                        messages.extend(m.payload for m in decoder.feed(event.data))
                        down.codec.acknowledge_received_data(stream_id, len(event.data))
                    elif isinstance(event, StreamReset):
                        return
                    elif isinstance(event, StreamEnded):
                        break
        except LanewayError as exc:
            self._reply(down, stream_id, exc.grpc_status, exc.message)
            return
        reply = local.call(info.service, info.method, messages[0] if messages else b"")
        if reply.payload is None:
            self._reply(down, stream_id, reply.status, reply.message)
            return
        codec = down.codec
        codec.send_headers(
            stream_id, [(b":status", b"200"), (b"content-type", b"application/grpc")]
        )
        codec.send_data(stream_id, encode_message(reply.payload))
        codec.send_headers(stream_id, status_trailers(reply.status), end_stream=True)
        down.kick()

    def _reply(self, down: Downstream, stream_id: int, status: int, message: str) -> None:
        down.codec.send_headers(stream_id, trailers_only(status, message), end_stream=True)
        down.kick()


def _tag_headers(table: RouteTable, tag: str | None, call: Call) -> list[tuple[bytes, bytes]]:
    """Headers that carry the requested env on to the next hop (DESIGN.md §2.4)."""
    if tag is None:
        return []
    carriers = table.config.tag
    out: list[tuple[bytes, bytes]] = []
    for name in (carriers.header, carriers.attachment):
        if name:
            out.append((name.lower().encode("latin-1"), tag.encode("latin-1")))
    if carriers.baggage:
        current = call.meta("baggage") or ""
        if baggage_member(current, carriers.baggage) == tag:
            out.append((b"baggage", current.encode("latin-1")))
        else:
            members = [
                m
                for m in current.split(",")
                if m.strip() and m.split("=", 1)[0].strip() != carriers.baggage
            ]
            members.append(f"{carriers.baggage}={tag}")
            out.append((b"baggage", ",".join(members).encode("latin-1")))
    return out


class _Relay:
    """The state of one relayed stream."""

    def __init__(
        self,
        forwarder: GrpcForwarder,
        down: Downstream,
        down_id: int,
        upstream: H2Upstream,
        up_id: int,
        request_ended: bool,
    ) -> None:
        self.forwarder = forwarder
        self.down = down
        self.down_id = down_id
        self.upstream = upstream
        self.up_id = up_id
        self.response_started = False
        self.finished = False
        self.status = int(GrpcStatus.UNKNOWN)
        self.message: str | None = None
        self.request_ended = request_ended
        up, dn = upstream.codec, down.codec
        self.to_provider = _Pipe(up, up_id, self._ack_client, upstream.on_flushed)
        self.to_client = _Pipe(dn, down_id, self._ack_provider, down.on_flushed)
        self.request_sizes = MessageScanner(forwarder._max_message)
        self.response_sizes = MessageScanner(forwarder._max_message)

    def _ack_client(self, n: int) -> None:
        self.down.codec.acknowledge_received_data(self.down_id, n)
        self.down.kick()

    def _ack_provider(self, n: int) -> None:
        self.upstream.codec.acknowledge_received_data(self.up_id, n)
        self.upstream.kick()

    async def client_to_provider(
        self, inbox: trio.MemoryReceiveChannel[DownstreamEvent], scope: trio.CancelScope
    ) -> None:
        async for event in inbox:
            if isinstance(event, DataReceived):
                try:
                    self.request_sizes.feed(event.data)
                except LanewayError as exc:
                    self.forwarder.stats.oversize += 1
                    self.fail(exc.grpc_status, exc.message)
                    scope.cancel()
                    return
                self.to_provider.push(event.data, event.end_stream)
                self.request_ended = event.end_stream
                self.upstream.kick()
            elif isinstance(event, StreamEnded):
                if not self.request_ended:  # ended by an empty frame or client trailers
                    self.upstream.codec.end_stream(self.up_id)
                    self.upstream.kick()
                self.request_ended = True
            elif isinstance(event, StreamReset):
                # The client cancelled (G3): cancel upstream too, at once.
                self.forwarder.stats.client_cancels += 1
                self.status, self.message = int(GrpcStatus.CANCELLED), "cancelled by the client"
                self.finished = True
                self.upstream.codec.reset_stream(self.up_id, ErrorCode.CANCEL)
                self.upstream.kick()
                scope.cancel()
                return
            elif isinstance(event, WindowUpdated):
                self.to_client.window_opened()

    async def provider_to_client(self, events: trio.MemoryReceiveChannel[StreamEvent]) -> None:
        dn = self.down.codec
        async for event in events:
            if self.finished:
                return
            if isinstance(event, ResponseReceived):
                self.response_started = True
                dn.send_headers(self.down_id, list(event.headers), event.end_stream)
                if event.end_stream:  # Trailers-Only
                    self.status, self.message = parse_status(event.headers)
                    self.finished = True
            elif isinstance(event, DataReceived):
                try:
                    self.response_sizes.feed(event.data)
                except LanewayError as exc:
                    self.forwarder.stats.oversize += 1
                    self.fail(exc.grpc_status, f"provider {self.upstream.address}: {exc.message}")
                    return
                self.to_client.push(event.data, event.end_stream)
            elif isinstance(event, TrailersReceived):
                dn.send_headers(self.down_id, list(event.headers), end_stream=True)
                self.status, self.message = parse_status(event.headers)
                self.finished = True
            elif isinstance(event, StreamEnded):
                self.finished = True
            elif isinstance(event, StreamReset):
                self._upstream_failed(
                    f"provider {self.upstream.address} reset the stream "
                    f"(HTTP/2 error {event.error_code})"
                )
            elif isinstance(event, UpstreamLost):
                self.forwarder.stats.upstream_died += 1
                self._upstream_failed(event.reason)
            elif isinstance(event, WindowUpdated):
                self.to_provider.window_opened()
            self.down.kick()
            if self.finished:
                return

    def _upstream_failed(self, message: str) -> None:
        """R1: before response headers the client gets UNAVAILABLE; after, the stream is
        reset (never a fake OK)."""
        if not self.response_started:
            self.fail(GrpcStatus.UNAVAILABLE, message)
        else:
            self.finished = True
            self.status, self.message = int(GrpcStatus.INTERNAL), message
            self.down.codec.reset_stream(self.down_id, ErrorCode.INTERNAL_ERROR)
            self.down.kick()

    def fail(self, status: int, message: str) -> None:
        """End the call locally with ``status``; cancel the upstream stream."""
        if self.finished:
            return
        self.finished = True
        self.status, self.message = int(status), message
        self.upstream.codec.reset_stream(self.up_id, ErrorCode.CANCEL)
        self.upstream.kick()
        dn = self.down.codec
        if self.response_started:
            dn.send_headers(self.down_id, status_trailers(status, message), end_stream=True)
        else:
            dn.send_headers(self.down_id, trailers_only(status, message), end_stream=True)
        self.down.kick()


__all__ = ["GRPC_PROTOCOLS", "Downstream", "DownstreamEvent", "GrpcForwarder", "GrpcStats"]
