"""Forwarding one Dubbo request: route it, re-inject its tag, send it upstream, map errors.

Protocol glue between the Dubbo codec's ``Request``, the router and the upstream pool. The
only awaits are the pool's connect and the upstream call; everything else is pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import trio

from proxy.call import Call, lower_metadata
from proxy.codecs.dubbo import Request, Response
from proxy.errors import DubboStatus, LanewayError, NoProvider, UpstreamDied, UpstreamTimeout
from proxy.net.dubbo_upstream import UpstreamConnection
from proxy.net.pool import UpstreamPool
from proxy.observe import NO_OBSERVER, CallObserver, CallScope
from proxy.registry.model import ServiceKey
from proxy.router import Candidate, Router
from routing import Decision, RouteTable, baggage_member

DUBBO_PROTOCOLS = ("dubbo",)
MAX_CONNECT_RETRIES = 2
# why: gRFC A6 / Envoy: retry only what never reached a provider, and at most twice.


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
            members = [
                m
                for m in current.split(",")
                if m.strip() and m.split("=", 1)[0].strip() != carriers.baggage
            ]
            members.append(f"{carriers.baggage}={tag}")
            updates["baggage"] = ",".join(members)
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

    def make_call(self, request: Request) -> Call:
        attachments = request.attachments
        key = ServiceKey.of(request.path, request.version, request.group)
        timeout = call_timeout(attachments, self._route_timeout, self._max_timeout)
        return Call(
            key,
            request.method,
            DUBBO_PROTOCOLS,
            lower_metadata(attachments.items()),
            trio.current_time() + timeout,
        )

    async def forward(self, request: Request) -> bytes | None:
        """Forward ``request``; return the response frame under the consumer's request id
        (None for a one-way request). Raises a LanewayError carrying the status to answer."""
        self.stats.calls += 1
        call = self.make_call(request)
        scope = self.observer.call_started(call, "dubbo")
        try:
            response = await self._forward(request, call, scope)
        except LanewayError as exc:
            scope.finished(int(exc.dubbo_status), exc.message)
            raise
        if response is None:
            scope.finished(int(DubboStatus.OK))
            return None
        scope.finished(response.status)
        return response.with_request_id(request.request_id)

    async def _forward(self, request: Request, call: Call, scope: CallScope) -> Response | None:
        exclude: set[str] = set()
        for attempt in range(MAX_CONNECT_RETRIES + 1):
            decision = self.router.route(call, exclude=exclude)
            scope.routed(decision)
            candidate = self._chosen(decision, call)
            frame = self._outbound_frame(request, decision, scope)
            try:
                conn = await self.pool.get(candidate.address)
            except UpstreamDied:
                # Nothing reached the provider: safe to retry elsewhere (TESTS.md R4a).
                exclude.add(candidate.address)
                if attempt == MAX_CONNECT_RETRIES:
                    self.stats.upstream_died += 1
                    raise
                self.stats.retries += 1
                continue
            break
        if not request.two_way:
            conn.send_oneway(frame, request.dubbo_version)
            self.stats.oneway += 1
            return None
        health = self.router.health
        address = candidate.address
        health.started(address)
        ok = False
        try:
            assert call.deadline is not None
            response = await conn.call(frame, request.dubbo_version, call.deadline)
            ok = True
        except UpstreamDied:
            self.stats.upstream_died += 1
            raise
        except UpstreamTimeout:
            self.stats.timeouts += 1
            raise
        finally:
            health.finished(address, ok=ok, now=trio.current_time())
        return response

    def _chosen(self, decision: Decision[Candidate], call: Call) -> Candidate:
        if decision.provider is None:
            self.stats.no_route += 1
            raise NoProvider(decision.error or f"no route for {call.key}")
        return decision.provider

    def _outbound_frame(
        self, request: Request, decision: Decision[Candidate], scope: CallScope
    ) -> bytes:
        """The frame to send: the original bytes, unless the tag or trace context must be
        (re)written into the attachments."""
        updates: dict[str, object] = dict(scope.propagation())
        if decision.tag is not None:
            updates.update(tag_updates(self.router.table, decision.tag, request.attachments))
        return request.with_attachments(updates) if updates else request.frame
