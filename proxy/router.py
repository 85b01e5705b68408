"""Call -> Decision: routing.decide() over the registry's lanes and live host health. No I/O.

The router names the provider; ``proxy.net`` asks the pool for a connection and moves the
bytes. Within a lane it balances by *least in-flight relative to weight* among two
weighted-random candidates (power of two choices): cheap, and it steers away from a slow
host without a global scan.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass

from proxy.call import Call
from proxy.errors import Overloaded
from proxy.health import HostHealth
from proxy.registry.model import Lanes, Provider, ServiceKey
from routing import Decision, RouteTable, pick_weighted

TUNNEL_SOURCE = "tunnel"
DEFAULT_TUNNEL_MAX_CALLS = 100
# why: TESTS.md §8's per-tunnel cap; laneway.yaml's tunnel.max_calls overrides it.
MAX_CACHED_CANDIDATES = 16_384
# why: one entry per (service, protocols) that has providers; the registry bounds that
# (13k services in bench/), and a full cache is simply cleared.


@dataclass(frozen=True, slots=True)
class Candidate:
    """A registry provider as routing sees it (``routing.ProviderLike``) at this instant."""

    address: str
    env: str
    weight: int
    healthy: bool
    provider: Provider


class TableRef:
    """The live route table. ``swap`` replaces it whole; a call reads it exactly once
    (``current``), so every call is routed by exactly one table version (DESIGN.md §2.7)."""

    def __init__(self, table: RouteTable) -> None:
        self.current = table
        self.reloads = 0
        self.reload_failures = 0
        self.last_error: str | None = None

    def swap(self, table: RouteTable) -> None:
        self.current = table
        self.reloads += 1
        self.last_error = None


class Router:
    def __init__(
        self,
        table: TableRef,
        lanes_of: Callable[[ServiceKey], Lanes],
        health: HostHealth,
        clock: Callable[[], float],
        rng: random.Random | None = None,
        *,
        tunnel_max_calls: int = DEFAULT_TUNNEL_MAX_CALLS,
    ) -> None:
        self._table = table
        self._lanes_of = lanes_of
        self.health = health
        self._clock = clock
        self._rng = rng if rng is not None else random.Random()
        self.panics = 0
        self.tunnel_max_calls = tunnel_max_calls
        # (key, protocols) -> (lanes, health epoch, candidates): rebuilding the candidates
        # cost ~6 us per call; they change only with the lanes object (the registry and
        # Lookup replace it on change) or the hosts' health (HostHealth.epoch).
        self._cache: dict[
            tuple[ServiceKey, tuple[str, ...]],
            tuple[Lanes, int, dict[str, tuple[Candidate, ...]]],
        ] = {}

    @property
    def table(self) -> RouteTable:
        return self._table.current

    def lanes_of(self, key: ServiceKey) -> Lanes:
        """Every provider of ``key`` the proxy knows, by env (registry + static)."""
        return self._lanes_of(key)

    def candidates(
        self,
        key: ServiceKey,
        protocols: tuple[str, ...],
        exclude: Collection[str] = (),
        *,
        panic: bool = False,
    ) -> dict[str, tuple[Candidate, ...]]:
        """The service's providers speaking one of ``protocols``, by env, with health;
        addresses in ``exclude`` (already failed for this call) count as unhealthy. In
        ``panic`` mode outlier ejection is ignored (READONLY hosts stay out). The result
        may be shared with other calls: read it, never change it."""
        now = self._clock()
        lanes = self._lanes_of(key)
        health = self.health
        cacheable = not exclude and not panic and health.stable(now)
        if cacheable:
            cached = self._cache.get((key, protocols))
            if cached is not None and cached[0] is lanes and cached[1] == health.epoch:
                return cached[2]
        usable = health.usable_in_panic if panic else health.usable
        out: dict[str, tuple[Candidate, ...]] = {}
        for env, providers in lanes.items():
            lane = tuple(
                Candidate(
                    p.address,
                    p.env,
                    p.weight,
                    usable(p.address, now) and p.address not in exclude,
                    p,
                )
                for p in providers
                if p.protocol in protocols
            )
            if lane:
                out[env] = lane
        if cacheable and out:
            if len(self._cache) >= MAX_CACHED_CANDIDATES:
                self._cache.clear()
            self._cache[(key, protocols)] = (lanes, health.epoch, out)
        return out

    def route(self, call: Call, exclude: Collection[str] = ()) -> Decision[Candidate]:
        """Decide where ``call`` goes. Never raises: an unroutable call gets a Decision
        whose ``error`` names the service, the env asked for and the lanes tried."""
        table = self._table.current
        providers: Mapping[str, Sequence[Candidate]] = self.candidates(
            call.key, call.protocols, exclude
        )
        decision = table.decide(call, providers, pick=self._pick)
        if decision.ok or not any(not c.healthy for lane in providers.values() for c in lane):
            return decision
        # Panic (Envoy's panic threshold, TESTS.md R7): every lane the call may use has only
        # ejected hosts. Failing the call would turn an outlier guess into a hard outage, so
        # route as if nobody were ejected.
        self.panics += 1
        providers = self.candidates(call.key, call.protocols, exclude, panic=True)
        return table.decide(call, providers, pick=self._pick)

    def check_capacity(self, candidate: Candidate, service: object) -> None:
        """Raise Overloaded when ``candidate`` is a tunnelled provider already at its cap of
        calls in flight (a laptop is one slow process; TESTS.md T7)."""
        if candidate.provider.source != TUNNEL_SOURCE:
            return
        if self.health.in_flight(candidate.address) >= self.tunnel_max_calls:
            raise Overloaded(
                f"the tunnel serving {service} in env {candidate.env!r} has "
                f"{self.tunnel_max_calls} calls in flight already"
            )

    def _pick(self, usable: Sequence[Candidate]) -> Candidate:
        if len(usable) == 1:
            return usable[0]
        a = pick_weighted(usable, self._rng)
        b = pick_weighted(usable, self._rng)
        load = self.health.in_flight
        return a if load(a.address) * b.weight <= load(b.address) * a.weight else b
