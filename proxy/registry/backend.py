"""The one interface every registry backend offers, and its change stream.

A backend is started with ``await nursery.start(backend.run)`` and calls
``task_status.started(...)`` only after its first full snapshot, so the proxy never routes
on a half-loaded table. After that:

* ``snapshot(key)`` is a synchronous, lock-free read of the service's current lanes
  (``Mapping[env, tuple[Provider, ...]]``); cheap enough for every call.
* ``changes()`` opens a subscription that yields batches of changed ``ServiceKey``s. A
  batch says "re-read these keys": batches coalesce while the consumer is busy, so a slow
  consumer costs memory bounded by the number of services, never a queue of stale lists.
* ``publish`` / ``unpublish`` register a provider through the backend (an ephemeral node in
  ZooKeeper, a local entry in the embedded store).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import trio

from proxy.registry.model import Lanes, Provider, ServiceKey


@dataclass
class RegistryStats:
    """Counters a backend keeps for the admin page and the tests (monotonic)."""

    suspended: int = 0  # connection to the registry suspended (ZooKeeper SUSPENDED)
    lost: int = 0  # session lost (ZooKeeper LOST / expired)
    reconnects: int = 0  # back to CONNECTED after SUSPENDED / LOST
    resyncs: int = 0  # full re-reads of the registry
    malformed_nodes: int = 0  # distinct entries skipped as unreadable (Z4)
    empty_push_protected: int = 0  # empty main pushes refused while providers answered (Z2)
    evicted_publishers: int = 0  # Publish streams evicted for missing heartbeats
    list_failures: int = 0  # registry reads that failed for another reason than a lost link
    overflows: int = 0  # event bridge overflowed; recovered with a full resync
    state_save_failures: int = 0  # state file writes that failed (retried next tick)
    changes: int = 0  # service change notifications delivered

    def as_dict(self) -> dict[str, int]:
        return dict(vars(self))


class RegistryBackend(Protocol):
    """What the proxy needs from a registry. Implementations: embedded, ZooKeeper."""

    stats: RegistryStats

    async def run(self, *, task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED) -> None:
        """Run until cancelled; ``started()`` after the first full snapshot."""

    def snapshot(self, key: ServiceKey) -> Lanes:
        """The service's providers by env (empty mapping when unknown)."""

    def services(self) -> tuple[ServiceKey, ...]:
        """Every service with at least one provider, sorted."""

    def is_stale(self, key: ServiceKey | None = None) -> bool:
        """True while ``key``'s list (or any list, for ``None``) is frozen / not confirmed."""

    def changes(self) -> AbstractAsyncContextManager[ChangeSubscription]:
        """Subscribe to change batches: ``async with backend.changes() as sub``."""

    async def publish(self, key: ServiceKey, provider: Provider) -> None:
        """Register ``provider`` for ``key`` for as long as the backend runs (or unpublish)."""

    async def unpublish(self, key: ServiceKey, provider: Provider) -> None:
        """Remove a provider this backend published; no-op when absent."""


@dataclass(eq=False)
class ChangeSubscription:
    """One consumer's view of the change stream; iterate it for batches of changed keys."""

    _pending: set[ServiceKey] = field(default_factory=set)
    _ready: trio.Event = field(default_factory=trio.Event)

    def _add(self, keys: Iterable[ServiceKey]) -> None:
        self._pending.update(keys)
        if self._pending:
            self._ready.set()

    def __aiter__(self) -> ChangeSubscription:
        return self

    async def __anext__(self) -> frozenset[ServiceKey]:
        await self._ready.wait()
        batch = frozenset(self._pending)
        self._pending.clear()
        self._ready = trio.Event()
        return batch


class ChangeFeed:
    """Fan-out of change notifications to subscribers. Call only from the trio thread."""

    def __init__(self, stats: RegistryStats) -> None:
        self._subs: set[ChangeSubscription] = set()
        self._stats = stats

    def notify(self, keys: Iterable[ServiceKey]) -> None:
        """Record that ``keys`` changed; never blocks (batches coalesce per subscriber)."""
        batch = frozenset(keys)
        if not batch:
            return
        self._stats.changes += 1
        for sub in self._subs:
            sub._add(batch)

    @asynccontextmanager
    async def subscribe(self) -> AsyncIterator[ChangeSubscription]:
        """A subscription that lives for the ``async with`` block."""
        sub = ChangeSubscription()
        self._subs.add(sub)
        try:
            yield sub
        finally:
            self._subs.discard(sub)
