"""Forwarding one Dubbo request: route it, re-inject its tag, send it upstream, map errors.

Protocol glue between the Dubbo codec's ``Request``, the router and the upstream pool. A
call is started synchronously (``DubboForwarder.start``) and completes through a callback;
the only await is the pool's connect, on the slow path of a call whose provider has no open
connection yet.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from types import MappingProxyType

import trio

from proxy.call import Call, lower_metadata
from proxy.codecs.dubbo import Request, Response
from proxy.errors import DubboStatus, LanewayError, NoProvider, UpstreamDied, UpstreamTimeout
from proxy.net.dubbo_upstream import UpstreamConnection
from proxy.net.outbox import after_sends
from proxy.net.pool import UpstreamPool
from proxy.observe import NO_OBSERVER, CallObserver, CallScope
from proxy.registry.model import ServiceKey
from proxy.router import Candidate, Router
from routing import Decision, RouteTable, baggage_member, with_baggage_member

DUBBO_PROTOCOLS = ("dubbo",)
MAX_CONNECT_RETRIES = 2
# why: gRFC A6 / Envoy: retry only what never reached a provider, and at most twice.
MAX_CACHED_FACTS = 1024
# why: one entry per distinct attachments map the codec shares (few per consumer fleet);
# a consumer varying its map per call only ever clears this.
MAX_CACHED_REWRITES_PER_MAP = 16
# why: one entry per (route table, tag) a map was routed with; reloads and a consumer
# varying its tag must not grow one map's entry without limit.
_NO_EXCLUSIONS: frozenset[str] = frozenset()


@dataclass
class ForwardStats:
    calls: int = 0
    no_route: int = 0
    timeouts: int = 0
    upstream_died: int = 0
    retries: int = 0
    oneway: int = 0


def call_timeout(attachments: Mapping[str, object], default: float, cap: float) -> float:
    """The call's timeout in seconds: the Dubbo ``timeout`` attachment (milliseconds) when
    sane, capped at ``cap``; else ``default``."""
    raw = attachments.get("timeout")
    millis: int | None = None
    if isinstance(raw, bool):
        millis = None
    elif isinstance(raw, int):
        millis = raw
    elif isinstance(raw, str) and raw.isdigit() and len(raw) <= 9:
        millis = int(raw)
    if millis is None or millis <= 0:
        return default
    return min(millis / 1000.0, cap)


def tag_updates(table: RouteTable, tag: str, attachments: Mapping[str, object]) -> dict[str, str]:
    """Attachments to write so the requested env survives the hop (DESIGN.md §2.4): the
    tag attachment, the header carrier's name, and the baggage member. Empty when every
    carrier already says ``tag`` (the original bytes then pass through untouched)."""
    carriers = table.config.tag
    updates: dict[str, str] = {}
    for name in (carriers.attachment, carriers.header):
        if name and attachments.get(name) != tag:
            updates[name] = tag
    if carriers.baggage:
        raw = attachments.get("baggage")
        current = raw if isinstance(raw, str) else ""
        if baggage_member(current, carriers.baggage) != tag:
            updates["baggage"] = with_baggage_member(current, carriers.baggage, tag)
    return updates


class DubboForwarder:
    """Routes and forwards Dubbo requests. One per proxy; shared by every connection."""

    def __init__(
        self,
        router: Router,
        pool: UpstreamPool[UpstreamConnection],
        *,
        route_timeout: float,
        max_timeout: float,
        observer: CallObserver = NO_OBSERVER,
    ) -> None:
        self.router = router
        self.observer = observer
        self.pool = pool
        self._route_timeout = route_timeout
        self._max_timeout = max_timeout
        self.stats = ForwardStats()
        # id(attachments view) -> its facts; see facts().
        self._facts: dict[int, AttachmentFacts] = {}

    def facts(self, request: Request) -> AttachmentFacts:
        """What this forwarder derives from the request's attachments; remembered while
        the codec shares the attachments view between requests carrying the same map.
        Raises BadRequest when the attachments are malformed."""
        attachments = request.attachments
        if not request.attachments_memoised:
            return AttachmentFacts(attachments, self._route_timeout, self._max_timeout)
        facts = self._facts.get(id(attachments))
        if facts is None or facts.attachments is not attachments:
            facts = AttachmentFacts(attachments, self._route_timeout, self._max_timeout)
            if len(self._facts) >= MAX_CACHED_FACTS:
                self._facts.clear()
            self._facts[id(attachments)] = facts  # (the entry keeps the view, and its id, alive)
        return facts

    def make_call(self, request: Request, facts: AttachmentFacts | None = None) -> Call:
        if facts is None:
            facts = self.facts(request)
        return Call(
            ServiceKey.of(request.path, request.version, facts.group),
            request.method,
            DUBBO_PROTOCOLS,
            facts.metadata,
            trio.current_time() + facts.timeout,
        )

    def start(self, request: Request, reply: Reply) -> DubboCall:
        """Begin forwarding ``request``; ``reply`` is called exactly once, later (or now)
        with the response frame under the consumer's request id (None for one-way), or
        with the LanewayError to answer.

        Fast path (a usable connection to the chosen provider is open): everything happens
        here, synchronously. Otherwise the call's ``slow`` is set: a coroutine function that
        opens the connection (retrying elsewhere on connect failure); run it in a task.
        Raises BadRequest before ``reply`` is armed when the attachments are malformed.
        """
        self.stats.calls += 1
        facts = self.facts(request)
        job = DubboCall(self, request, self.make_call(request, facts), facts, reply)
        job.begin()
        return job


class AttachmentFacts:
    """Pure functions of one attachments map, computed once per distinct map: the group,
    the routing metadata, the timeout, and per (route table, tag) the map to forward."""

    __slots__ = ("attachments", "group", "metadata", "rewrites", "timeout")

    def __init__(self, attachments: Mapping[str, object], default: float, cap: float) -> None:
        self.attachments = attachments
        group = attachments.get("group")
        self.group = group if isinstance(group, str) else ""
        # Shared by every call with this map: read-only.
        self.metadata: Mapping[str, str] = MappingProxyType(lower_metadata(attachments.items()))
        self.timeout = call_timeout(attachments, default, cap)
        # (table, tag) -> the rewritten attachments map, None when the original passes.
        self.rewrites: dict[tuple[RouteTable, str], bytes | None] = {}


Reply = Callable[[bytes | None, LanewayError | None], None]
SlowPath = Callable[[], Awaitable[None]]


class DubboCall:
    """One Dubbo call between admission and its reply."""

    __slots__ = (
        "address",
        "call",
        "facts",
        "fwd",
        "reply",
        "request",
        "scope",
        "slow",
        "upstream",
        "upstream_id",
    )

    def __init__(
        self,
        fwd: DubboForwarder,
        request: Request,
        call: Call,
        facts: AttachmentFacts,
        reply: Reply,
    ) -> None:
        self.fwd = fwd
        self.request = request
        self.call = call
        self.facts = facts
        self.reply = reply
        self.scope: CallScope = fwd.observer.call_started(call, "dubbo")
        self.address = ""
        self.upstream: UpstreamConnection | None = None
        self.upstream_id = 0
        self.slow: SlowPath | None = None

    def begin(self) -> None:
        try:
            candidate, frame = self._decide(_NO_EXCLUSIONS)
            conn = self.fwd.pool.ready(candidate.address)
            if conn is None:
                self.slow = lambda: self._slow(candidate.address, frame)
                return
            self._send(conn, candidate.address, frame)
        except LanewayError as exc:
            self._fail(exc)

    def abandon(self) -> None:
        """The consumer went away: free the upstream slot (or the reservation of a call
        still connecting, whose task is being cancelled); the reply is never sent."""
        if self.upstream is not None:
            self.upstream.abandon(self.upstream_id)
            self.upstream = None
            self.fwd.router.health.finished(self.address, ok=True, now=trio.current_time())
            self.address = ""
        elif self.address:
            self._release()
        else:
            return
        self.scope.finished(int(DubboStatus.CLIENT_ERROR), "the consumer went away")

    def _decide(self, exclude: Collection[str]) -> tuple[Candidate, bytes]:
        fwd = self.fwd
        decision = fwd.router.route(self.call, exclude=exclude)
        self.scope.routed(decision)
        if decision.provider is None:
            fwd.stats.no_route += 1
            raise NoProvider(decision.error or f"no route for {self.call.key}")
        provider = decision.provider
        fwd.router.check_capacity(provider, self.call.key)
        frame = self._outbound_frame(decision)
        # Reserve the slot now, not when the request is sent: calls decided while a
        # connection is still opening must count against the provider's in-flight too.
        self.address = provider.address
        fwd.router.health.started(provider.address)
        return provider, frame

    def _release(self) -> None:
        if self.address:
            self.fwd.router.health.release(self.address)
            self.address = ""

    def _outbound_frame(self, decision: Decision[Candidate]) -> bytes:
        """The original bytes, unless the tag or trace context must be (re)written into
        the attachments."""
        request = self.request
        trace = self.scope.propagation()
        tag = decision.tag
        if not trace:
            if tag is None:
                return request.frame
            # The same map routed with the same tag: the same rewrite (or none).
            rewrites = self.facts.rewrites
            key = (self.fwd.router.table, tag)
            try:
                new_map = rewrites[key]
            except KeyError:
                updates = tag_updates(key[0], tag, self.facts.attachments)
                new_map = request.rewritten_attachments(updates) if updates else None
                if len(rewrites) >= MAX_CACHED_REWRITES_PER_MAP:
                    rewrites.clear()
                rewrites[key] = new_map
            return request.frame if new_map is None else request.with_attachments_map(new_map)
        traced: dict[str, object] = dict(trace)
        if tag is not None:
            traced.update(tag_updates(self.fwd.router.table, tag, request.attachments))
        # A sampled call carries a fresh traceparent: not worth remembering.
        return request.with_attachments(traced, memoise=False)

    async def _slow(self, address: str, frame: bytes) -> None:
        """Open a connection to the chosen provider; on connect failure route again
        without it (nothing reached a provider, so this is safe: TESTS.md R4a)."""
        fwd = self.fwd
        exclude: set[str] = set()
        try:
            for attempt in range(MAX_CONNECT_RETRIES + 1):
                try:
                    conn = await fwd.pool.get(address)
                except UpstreamDied:
                    self._release()  # (the pool counted the connect failure)
                    exclude.add(address)
                    if attempt == MAX_CONNECT_RETRIES:
                        fwd.stats.upstream_died += 1
                        raise
                    fwd.stats.retries += 1
                    candidate, frame = self._decide(exclude)
                    address = candidate.address
                    continue
                self._send(conn, address, frame)
                return
        except LanewayError as exc:
            self._fail(exc)

    def _send(self, conn: UpstreamConnection, address: str, frame: bytes) -> None:
        request = self.request
        if not request.two_way:
            self._release()
            conn.send_oneway(frame, request.dubbo_version)
            self.fwd.stats.oneway += 1
            self.scope.finished(int(DubboStatus.OK))
            self.reply(None, None)
            return
        assert self.call.deadline is not None
        self.upstream = conn
        self.upstream_id = conn.submit(frame, request.dubbo_version, self.call.deadline, self._done)

    def _done(self, response: Response | None, error: LanewayError | None) -> None:
        self.upstream = None
        address, self.address = self.address, ""
        if error is not None:
            stats = self.fwd.stats
            if isinstance(error, UpstreamTimeout):
                stats.timeouts += 1
            elif isinstance(error, UpstreamDied):
                stats.upstream_died += 1
            self.reply(None, error)
            status, message = int(error.dubbo_status), error.message
        else:
            assert response is not None
            self.reply(response.with_request_id(self.request.request_id), None)
            status, message = response.status, None
        # The bookkeeping waits until this batch's answers are written: a sequential
        # consumer gets its answer sooner (bench/RESULTS.md).
        after_sends(lambda: self._account(address, error is None, status, message))

    def _account(self, address: str, ok: bool, status: int, message: str | None) -> None:
        self.fwd.router.health.finished(address, ok=ok, now=trio.current_time())
        self.scope.finished(status, message)

    def _fail(self, error: LanewayError) -> None:
        self._release()  # a reservation that never reached the provider
        self.scope.finished(int(error.dubbo_status), error.message)
        self.reply(None, error)
