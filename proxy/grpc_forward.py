"""Relaying one gRPC / Triple call: route it, open an upstream stream, pass events both ways.

No task per call: a :class:`GrpcCall` is driven by callbacks — the client connection's
reader hands it the stream's events, the provider connection's reader hands it the
upstream stream's events, and the connection's deadline timer expires it — so a unary call
costs no task switch of its own (measured in ``bench/e2e_grpc.py``). Only a call whose
provider has no open connection yet runs a short task to connect.

DATA frames are forwarded as opaque bytes; only the 5-byte message prefixes are walked to
enforce the message-size limit (G5). Flow control is end to end (R11): bytes received on
one side are acknowledged to their sender only once the other side let them out and wrote
them, so a slow reader slows the writer instead of filling laneway's memory.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Awaitable, Callable, Iterator, Mapping
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
from proxy.errors import GrpcStatus, LanewayError, NoProvider, UnknownService, UpstreamDied
from proxy.local_services import LocalServices
from proxy.net.h2_upstream import H2Upstream, StreamEvent, UpstreamLost
from proxy.net.outbox import after_sends
from proxy.net.pool import UpstreamPool
from proxy.net.timer import Deadline, DeadlineTimer
from proxy.observe import NO_OBSERVER, CallObserver, CallScope
from proxy.registry.model import ServiceKey
from proxy.router import Candidate, Router
from routing import Decision, RouteTable, baggage_member, with_baggage_member

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
MAX_CACHED_TAG_HEADERS = 1024
# why: one entry per (route table, tag, caller baggage) seen; a full cache is cleared.


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
    """The consumer-facing HTTP/2 connection, as a call uses it."""

    codec: H2Connection
    timer: DeadlineTimer

    def stream_done(self, stream_id: int) -> None:
        """The call on ``stream_id`` is over: deliver it no more events."""

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
        self.pool = pool
        self._route_timeout = route_timeout
        self.max_message = max_message_size
        self.observer = observer
        self.local = local
        self.stats = GrpcStats()
        # (table, tag, caller's baggage) -> (tag carrier headers, names replaced): the
        # same few on every call (~3 us to rebuild); bounded, the baggage is the caller's.
        self._tag_cache: dict[
            tuple[RouteTable, str | None, str | None],
            tuple[tuple[tuple[bytes, bytes], ...], frozenset[bytes]],
        ] = {}

    def start(
        self,
        down: Downstream,
        stream_id: int,
        headers: tuple[tuple[bytes, bytes], ...],
        end_stream: bool,
    ) -> GrpcCall:
        """Begin the call a client opened on ``stream_id``. Feed it the stream's later
        events through ``GrpcCall.on_client``; run ``call.slow`` in a task when it is set
        (the provider's connection must be opened first). Never raises for call-level
        problems: they become a gRPC status or a stream reset."""
        self.stats.calls += 1
        call = GrpcCall(self, down, stream_id, end_stream)
        call.begin(headers)
        return call

    def make_call(self, info: CallInfo, headers: tuple[tuple[bytes, bytes], ...]) -> Call:
        metadata = GrpcMetadata(headers)
        key = ServiceKey.of(info.service, info.version, info.group)
        timeout = self._route_timeout
        if self.local is not None and info.service in self.local.relayed:
            # Registry streams (Publish, Subscribe) live as long as their caller wants.
            timeout = math.inf
        if info.timeout_ns is not None:
            timeout = min(info.timeout_ns, MAX_FORWARDED_TIMEOUT_NS) / 1e9
        deadline = trio.current_time() + timeout
        return Call(key, info.method, GRPC_PROTOCOLS, metadata, deadline)

    def no_route(self, call: Call, decision: Decision[Candidate]) -> LanewayError:
        known = self.router.lanes_of(call.key)
        kind = NoProvider if known else UnknownService
        return kind(decision.error or f"no route for {call.key}")

    def outbound_headers(
        self,
        headers: tuple[tuple[bytes, bytes], ...],
        call: Call,
        decision: Decision[Candidate] | None,
        scope: CallScope,
    ) -> list[tuple[bytes, bytes]]:
        """The request headers for the provider: the client's, the tag carriers and the
        trace context written anew, ``grpc-timeout`` set to the time left."""
        tag = decision.tag if decision is not None else None
        table = self.router.table
        baggage = call.meta("baggage") if tag is not None else None
        key = (table, tag, baggage)
        known = self._tag_cache.get(key)
        if known is None:
            extra = tuple(_tag_headers(table, tag, call))
            known = (extra, _HOP_HEADERS | {name for name, _ in extra})
            if len(self._tag_cache) >= MAX_CACHED_TAG_HEADERS:
                self._tag_cache.clear()
            self._tag_cache[key] = known
        extra, skip = known
        propagation = scope.propagation()
        if propagation:  # a recorded trace: its context is new on every call
            traced = tuple(
                (name.encode("latin-1"), value.encode("latin-1"))
                for name, value in propagation.items()
            )
            extra += traced
            skip = skip | {name for name, _ in traced}
        out = [(n, v) for n, v in headers if n not in skip]
        assert call.deadline is not None
        if call.deadline != math.inf:
            remaining_ns = max(1, int((call.deadline - trio.current_time()) * 1e9))
            out.append((b"grpc-timeout", format_timeout(remaining_ns)))
        out.extend(extra)
        return out


class GrpcMetadata(Mapping[str, str]):
    """A call's gRPC metadata as ``Call.metadata`` wants it: lower-case ``str`` names and
    values, pseudo-headers left out, the first value of a name wins. Routing reads one or
    two names per call, so ``get`` scans the raw headers instead of decoding all of them
    (~2 us a call); anything else (iteration, tracing's extract) builds the dict once."""

    __slots__ = ("_dict", "_headers")

    def __init__(self, headers: tuple[tuple[bytes, bytes], ...]) -> None:
        self._headers = headers
        self._dict: dict[str, str] | None = None

    def get(self, name: str, default: str | None = None) -> str | None:  # type: ignore[override]
        if self._dict is not None:
            return self._dict.get(name, default)
        try:
            wanted = name.encode("latin-1")
        except UnicodeEncodeError:  # no HTTP/2 field name can be that
            return default
        if wanted[:1] != b":":
            for field_name, value in self._headers:
                if field_name == wanted:
                    return value.decode("latin-1")
        return default

    def _full(self) -> dict[str, str]:
        found = self._dict
        if found is None:
            found = self._dict = {}
            for name, value in self._headers:
                if name[:1] != b":":
                    found.setdefault(name.decode("latin-1"), value.decode("latin-1"))
        return found

    def __getitem__(self, name: str) -> str:
        return self._full()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._full())

    def __len__(self) -> int:
        return len(self._full())


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
        if baggage_member(current, carriers.baggage) != tag:
            current = with_baggage_member(current, carriers.baggage, tag)
        out.append((b"baggage", current.encode("latin-1")))
    return out


class _Mode(enum.Enum):
    LOCAL = "local"  # answered by laneway itself (health)
    OPENING = "opening"  # routed; the provider's connection is being opened
    RELAYING = "relaying"  # an upstream stream is open
    DONE = "done"


class GrpcCall:
    """One relayed stream, driven by callbacks from both connections and the timer."""

    __slots__ = (
        "address",
        "call",
        "deadline",
        "down",
        "down_id",
        "fwd",
        "headers",
        "held",
        "local_info",
        "local_messages",
        "local_request",
        "message",
        "mode",
        "request_ended",
        "request_sizes",
        "response_sizes",
        "response_started",
        "scope",
        "slow",
        "status",
        "to_client",
        "to_provider",
        "up_conn",
        "up_id",
        "upstream",
    )

    def __init__(self, fwd: GrpcForwarder, down: Downstream, stream_id: int, ended: bool) -> None:
        self.fwd = fwd
        self.down = down
        self.down_id = stream_id
        self.request_ended = ended
        self.mode = _Mode.OPENING
        self.slow: SlowPath | None = None
        self.status = int(GrpcStatus.UNKNOWN)
        self.message: str | None = None
        self.response_started = False
        self.scope: CallScope | None = None
        self.address = ""  # the provider whose in-flight slot this call holds
        self.upstream: H2Upstream | None = None  # while the upstream stream is open
        self.up_conn: H2Upstream | None = None  # the provider's connection, once opened
        self.up_id = 0
        self.deadline: Deadline | None = None
        self.held: list[DataReceived | StreamEnded | WindowUpdated] = []  # while OPENING
        self.request_sizes = MessageScanner(fwd.max_message)
        self.response_sizes = MessageScanner(fwd.max_message)
        self.to_provider: _Pipe | None = None
        self.to_client: _Pipe | None = None
        self.local_info: CallInfo | None = None
        self.local_request: MessageDecoder | None = None  # LOCAL mode only
        self.local_messages: list[bytes] = []
        self.call: Call | None = None
        self.headers: tuple[tuple[bytes, bytes], ...] = ()

    # -- start ---------------------------------------------------------------------------------

    def begin(self, headers: tuple[tuple[bytes, bytes], ...]) -> None:
        fwd = self.fwd
        try:
            info = call_info(headers)
        except LanewayError as exc:
            self._reply(exc.grpc_status, exc.message)
            return
        local = fwd.local
        if local is not None and local.handles(info.service):
            self.mode = _Mode.LOCAL
            self.local_info = info
            self.local_request = MessageDecoder(fwd.max_message)
            if self.request_ended:
                self._answer_local()
            return
        call = self.call = fwd.make_call(info, headers)
        self.headers = headers
        self.scope = fwd.observer.call_started(call, "grpc")
        assert call.deadline is not None
        if call.deadline != math.inf:
            self.deadline = self.down.timer.add(call.deadline, self._expired)
        relayed = local.relayed.get(call.service) if local is not None else None
        try:
            if relayed is not None:  # an in-process service: no routing, no tag
                self._reserve(relayed)
                self._connect(relayed, None)
            else:
                self._route(set())
        except LanewayError as exc:
            self.fail(exc.grpc_status, exc.message)

    def _route(self, exclude: set[str]) -> None:
        fwd = self.fwd
        assert self.call is not None and self.scope is not None
        decision = fwd.router.route(self.call, exclude=exclude)
        self.scope.routed(decision)
        if decision.provider is None:
            fwd.stats.no_route += 1
            raise fwd.no_route(self.call, decision)
        fwd.router.check_capacity(decision.provider, self.call.key)
        self._reserve(decision.provider.address)
        self._connect(decision.provider.address, decision)

    def _reserve(self, address: str) -> None:
        # Reserve the slot at decision time: calls opening a connection count too.
        self.address = address
        self.fwd.router.health.started(address)

    def _release(self) -> None:
        if self.address:
            self.fwd.router.health.release(self.address)
            self.address = ""

    def _connect(self, address: str, decision: Decision[Candidate] | None) -> None:
        conn = self.fwd.pool.ready(address)
        if conn is not None:
            self._open(conn, decision)
        else:
            self.slow = lambda: self._slow(address, decision)

    async def _slow(self, address: str, decision: Decision[Candidate] | None) -> None:
        """Open the provider's connection; on connect failure route again without it
        (nothing reached a provider, so this is safe: TESTS.md R4)."""
        fwd = self.fwd
        exclude: set[str] = set()
        try:
            for attempt in range(MAX_CONNECT_RETRIES + 1):
                try:
                    conn = await fwd.pool.get(address)
                except UpstreamDied:
                    self._release()  # (the pool counted the connect failure)
                    if self.mode is _Mode.DONE:
                        return
                    exclude.add(address)
                    if attempt == MAX_CONNECT_RETRIES or decision is None:
                        fwd.stats.upstream_died += 1
                        raise
                    fwd.stats.retries += 1
                    self.slow = None
                    self._route(exclude)
                    if self.slow is None:
                        return  # opened on an existing connection
                    address = self.address
                    continue
                if self.mode is _Mode.OPENING:
                    self._open(conn, decision)
                return
        except LanewayError as exc:
            self.fail(exc.grpc_status, exc.message)

    def _open(self, conn: H2Upstream, decision: Decision[Candidate] | None) -> None:
        assert self.call is not None and self.scope is not None
        outbound = self.fwd.outbound_headers(self.headers, self.call, decision, self.scope)
        ended = self.request_ended and not self.held
        self.up_id = conn.open_stream(outbound, ended, self.on_provider)
        self.upstream = self.up_conn = conn
        self.mode = _Mode.RELAYING
        self.to_provider = _Pipe(conn.codec, self.up_id, self._ack_client, conn.on_flushed)
        self.to_client = _Pipe(
            self.down.codec, self.down_id, self._ack_provider, self.down.on_flushed
        )
        held, self.held = self.held, []
        for event in held:
            if self.mode is not _Mode.RELAYING:
                break
            self._forward_client(event)

    # -- events from the client ------------------------------------------------------------

    def on_client(self, event: DataReceived | StreamEnded | StreamReset | WindowUpdated) -> None:
        mode = self.mode
        if mode is _Mode.DONE:
            return
        if isinstance(event, StreamReset):
            # The client cancelled (G3): cancel upstream too, at once.
            self.fwd.stats.client_cancels += 1
            self._end_upstream()
            self._finish(int(GrpcStatus.CANCELLED), "cancelled by the client")
            return
        if mode is _Mode.LOCAL:
            self._on_local(event)
            return
        if isinstance(event, DataReceived):
            try:
                self.request_sizes.feed(event.data)
            except LanewayError as exc:
                self.fwd.stats.oversize += 1
                self.fail(exc.grpc_status, exc.message)
                return
        if mode is _Mode.OPENING:
            if not isinstance(event, WindowUpdated):
                self.held.append(event)  # bounded by the stream's flow-control window
            return
        self._forward_client(event)

    def _forward_client(self, event: DataReceived | StreamEnded | WindowUpdated) -> None:
        """Pass a (size-checked) client event on to the open upstream stream."""
        assert self.upstream is not None and self.to_provider is not None
        if isinstance(event, DataReceived):
            self.to_provider.push(event.data, event.end_stream)
            self.request_ended = event.end_stream
            self.upstream.kick()
        elif isinstance(event, StreamEnded):
            if not self.request_ended:  # ended by an empty frame or client trailers
                self.upstream.codec.end_stream(self.up_id)
                self.upstream.kick()
            self.request_ended = True
        elif isinstance(event, WindowUpdated) and self.to_client is not None:
            self.to_client.window_opened()

    def client_gone(self) -> None:
        """The client's connection ended with this call open."""
        if self.mode is not _Mode.DONE:
            self._end_upstream()
            self._finish(int(GrpcStatus.CANCELLED), "the client went away")

    # -- events from the provider ----------------------------------------------------------

    def on_provider(self, event: StreamEvent) -> None:
        if self.mode is _Mode.DONE:
            return
        dn = self.down.codec
        if isinstance(event, ResponseReceived):
            self.response_started = True
            dn.send_headers(self.down_id, event.headers, event.end_stream)
            if event.end_stream:  # Trailers-Only
                self._answered(parse_status(event.headers))
        elif isinstance(event, DataReceived):
            try:
                self.response_sizes.feed(event.data)
            except LanewayError as exc:
                self.fwd.stats.oversize += 1
                assert self.upstream is not None
                self.fail(exc.grpc_status, f"provider {self.upstream.address}: {exc.message}")
                return
            assert self.to_client is not None
            self.to_client.push(event.data, event.end_stream)
        elif isinstance(event, TrailersReceived):
            dn.send_headers(self.down_id, event.headers, end_stream=True)
            self._answered(parse_status(event.headers))
        elif isinstance(event, StreamEnded):
            self._answered((self.status, self.message))
        elif isinstance(event, StreamReset):
            assert self.upstream is not None
            self._upstream_failed(
                f"provider {self.upstream.address} reset the stream "
                f"(HTTP/2 error {event.error_code})"
            )
        elif isinstance(event, UpstreamLost):
            self.fwd.stats.upstream_died += 1
            self._upstream_failed(event.reason)
        elif isinstance(event, WindowUpdated) and self.to_provider is not None:
            self.to_provider.window_opened()
        self.down.kick()

    # -- endings ---------------------------------------------------------------------------

    def _expired(self) -> None:
        if self.mode is _Mode.DONE:
            return
        self.fwd.stats.timeouts += 1
        assert self.call is not None
        where = f" at {self.upstream.address}" if self.upstream is not None else ""
        self.fail(GrpcStatus.DEADLINE_EXCEEDED, f"deadline exceeded calling {self.call.key}{where}")

    def _upstream_failed(self, message: str) -> None:
        """R1: before response headers the client gets UNAVAILABLE; after, the stream is
        reset (never a fake OK)."""
        self.upstream = None  # that stream is gone: nothing to reset
        if not self.response_started:
            self.fail(GrpcStatus.UNAVAILABLE, message)
            return
        self.down.codec.reset_stream(self.down_id, ErrorCode.INTERNAL_ERROR)
        self.down.kick()
        self._finish(int(GrpcStatus.INTERNAL), message)

    def fail(self, status: int, message: str) -> None:
        """End the call locally with ``status``; cancel the upstream stream."""
        if self.mode is _Mode.DONE:
            return
        self._end_upstream()
        trailers = status_trailers if self.response_started else trailers_only
        self.down.codec.send_headers(self.down_id, trailers(status, message), end_stream=True)
        self.down.kick()
        self._finish(int(status), message)

    def _answered(self, status: tuple[int, str | None]) -> None:
        self.upstream = None  # the stream ended cleanly: nothing to reset
        self._finish(*status)

    def _end_upstream(self) -> None:
        upstream = self.upstream
        if upstream is not None:
            upstream.codec.reset_stream(self.up_id, ErrorCode.CANCEL)
            upstream.kick()
            upstream.forget(self.up_id)
            self.upstream = None

    def _finish(self, status: int, message: str | None) -> None:
        if self.mode is _Mode.DONE:
            return
        self.mode = _Mode.DONE
        self.status, self.message = status, message
        if self.deadline is not None:
            self.deadline.cancel()
        self.held = []
        address, self.address = self.address, ""
        # The bookkeeping waits until this batch's frames are written: a sequential
        # client gets its answer ~10 us sooner (bench/RESULTS.md).
        after_sends(lambda: self._account(status, message, address))

    def _account(self, status: int, message: str | None, address: str) -> None:
        if self.scope is not None:
            self.scope.finished(status, message)
        if address:
            ok = status not in _HOST_FAILURES
            self.fwd.router.health.finished(address, ok=ok, now=trio.current_time())
        self.down.stream_done(self.down_id)

    # -- flow control ----------------------------------------------------------------------

    def _ack_client(self, n: int) -> None:
        self.down.codec.acknowledge_received_data(self.down_id, n)
        self.down.kick()

    def _ack_provider(self, n: int) -> None:
        # Also after the stream ended: the connection-level window must get its bytes back
        # (a flush callback often runs after the trailers closed the call).
        conn = self.up_conn
        if conn is not None:
            conn.codec.acknowledge_received_data(self.up_id, n)
            conn.kick()

    # -- local services --------------------------------------------------------------------

    def _on_local(self, event: DataReceived | StreamEnded | WindowUpdated) -> None:
        if isinstance(event, DataReceived):
            assert self.local_request is not None
            try:
                self.local_messages.extend(m.payload for m in self.local_request.feed(event.data))
            except LanewayError as exc:
                self._reply(exc.grpc_status, exc.message)
                return
            self.down.codec.acknowledge_received_data(self.down_id, len(event.data))
            self.down.kick()
        elif isinstance(event, StreamEnded):
            self._answer_local()

    def _answer_local(self) -> None:
        local, info = self.fwd.local, self.local_info
        assert local is not None and info is not None
        request = self.local_messages[0] if self.local_messages else b""
        reply = local.call(info.service, info.method, request)
        if reply.payload is None:
            self._reply(reply.status, reply.message)
            return
        codec = self.down.codec
        codec.send_headers(self.down_id, [(b":status", b"200"), (b"content-type", _GRPC_CONTENT)])
        codec.send_data(self.down_id, encode_message(reply.payload))
        codec.send_headers(self.down_id, status_trailers(reply.status), end_stream=True)
        self.down.kick()
        self._finish(int(reply.status), None)

    def _reply(self, status: int, message: str) -> None:
        """A local answer before any upstream work: Trailers-Only."""
        self.down.codec.send_headers(self.down_id, trailers_only(status, message), end_stream=True)
        self.down.kick()
        self._finish(int(status), message)


SlowPath = Callable[[], Awaitable[None]]
DONE = _Mode.DONE


__all__ = [
    "GRPC_PROTOCOLS",
    "Downstream",
    "DownstreamEvent",
    "GrpcCall",
    "GrpcForwarder",
    "GrpcStats",
]
