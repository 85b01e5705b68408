"""The embedded registry backend: an in-process store served over gRPC.

The bridge between grpcio's threads and trio (docs/registry.md, "Threading"):

* The ``ProviderStore`` is the single source of truth and is thread-safe (one lock for
  writers, lock-free reads of immutable per-service lanes). grpcio's worker threads write
  to it directly; the proxy reads ``snapshot(key)`` on the trio thread without locking.
* Change notifications flow one way: the store calls our listener on whichever grpcio
  thread made the change; the listener only calls ``TrioToken.run_sync_soon`` (thread-safe,
  never blocks, FIFO) to run ``ChangeFeed.notify`` on the trio thread. No grpcio thread
  ever waits for trio, so a busy or stopping trio loop cannot deadlock the server.
* Lease eviction, the stale grace of restored entries and the state file are driven by
  this backend's own trio task; the grpcio server lives exactly as long as that task.
"""

from __future__ import annotations

import contextlib
import logging
import math
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import grpc
import trio

from proxy.registry.backend import ChangeFeed, ChangeSubscription, RegistryStats
from proxy.registry.grpc_service import HEARTBEAT_INTERVAL, RegistryServicer, start_server
from proxy.registry.model import Lanes, Provider, ServiceKey
from proxy.registry.state_file import load_state, save_state
from proxy.registry.store import ProviderStore, PublisherSession

log = logging.getLogger("laneway.registry")

HOUSEKEEPING_TICKS_PER_HEARTBEAT = 4
# why: eviction then happens within lease + heartbeat/4; finer ticks only burn CPU.

MAX_HOUSEKEEPING_INTERVAL = 1.0
# why: also the state file's write debounce; a restart loses at most ~1 s of changes.

RESTORE_GRACE_LEASES = 2
# why: publishers reconnect within their backoff; after two leases a restored entry nobody
# confirmed is a provider that did not come back.

SERVER_STOP_GRACE = 1.0
# why: lets in-flight List calls finish; streams are cut (their publishers will reconnect).


class EmbeddedRegistry:
    """The default registry backend. ``run`` it with ``nursery.start``; it reports the bound
    gRPC address (or ``None`` when ``listen`` is ``None``, for in-process use only)."""

    def __init__(
        self,
        *,
        listen: str | None = "127.0.0.1:0",
        state_file: Path | None = None,
        heartbeat_interval: float = HEARTBEAT_INTERVAL,
        store: ProviderStore | None = None,
    ) -> None:
        self.stats = RegistryStats()
        self.store = store if store is not None else ProviderStore()
        self.servicer = RegistryServicer(self.store, heartbeat_interval=heartbeat_interval)
        self.listen = listen
        self.state_file = state_file
        self.address: str | None = None
        self._feed = ChangeFeed(self.stats)
        self._local: PublisherSession | None = None
        self._tick = min(
            MAX_HOUSEKEEPING_INTERVAL, heartbeat_interval / HOUSEKEEPING_TICKS_PER_HEARTBEAT
        )

    # ---- RegistryBackend ---------------------------------------------------------------

    def snapshot(self, key: ServiceKey) -> Lanes:
        return self.store.snapshot(key)

    def services(self) -> tuple[ServiceKey, ...]:
        return self.store.services()

    def is_stale(self, key: ServiceKey | None = None) -> bool:
        return self.store.is_stale(key)

    def changes(self) -> AbstractAsyncContextManager[ChangeSubscription]:
        return self._feed.subscribe()

    async def publish(self, key: ServiceKey, provider: Provider) -> None:
        """Register a provider owned by this backend (lives until unpublished or stopped)."""
        if self._local is None:
            self._local = self.store.open_session("local", math.inf)
        self.store.register(self._local, key, provider)

    async def unpublish(self, key: ServiceKey, provider: Provider) -> None:
        if self._local is not None:
            self.store.unregister(self._local, key, provider)

    # ---- lifecycle ---------------------------------------------------------------------

    async def run(
        self, *, task_status: trio.TaskStatus[str | None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Serve until cancelled. ``started(address)`` once the state file is loaded and the
        gRPC server listens. Raises ``OSError`` if it cannot listen, ``StateFileError`` if
        the state file is unusable."""
        token = trio.lowlevel.current_trio_token()

        def on_change(keys: frozenset[ServiceKey]) -> None:
            # Runs on a grpcio thread (or ours): hand over, never wait.
            with contextlib.suppress(trio.RunFinishedError):  # trio gone: nobody to tell
                token.run_sync_soon(self._feed.notify, keys)

        self.store.add_listener(on_change)
        server: grpc.Server | None = None
        try:
            if self.state_file is not None:
                entries = await trio.to_thread.run_sync(load_state, self.state_file)
                if entries:
                    grace = self.servicer.lease * RESTORE_GRACE_LEASES
                    self.store.restore(entries, grace)
                self.store.dirty = False
            if self.listen is not None:
                server, self.address = await trio.to_thread.run_sync(
                    start_server, self.servicer, self.listen
                )
            task_status.started(self.address)
            while True:
                await trio.sleep(self._tick)
                await self._housekeeping()
        finally:
            with trio.CancelScope(shield=True):
                # Save first: stopping the server ends every Publish stream, and the file
                # must keep the last list, not the empty one that shutdown leaves.
                if self.state_file is not None and self.store.dirty:
                    await self._save()
                if server is not None:
                    stopping = server.stop(SERVER_STOP_GRACE)
                    await trio.to_thread.run_sync(stopping.wait)
                if self._local is not None:
                    self.store.close_session(self._local)
                    self._local = None
                self.store.remove_listener(on_change)

    async def _housekeeping(self) -> None:
        evicted = self.store.evict_expired()
        self.stats.evicted_publishers += len(evicted)
        self.store.expire_restored()
        if self.state_file is not None and self.store.dirty:
            await self._save()

    async def _save(self) -> None:
        path = self.state_file
        assert path is not None
        self.store.dirty = False
        store = self.store
        # Collecting 52k entries takes tens of ms: do it in the worker thread too (the
        # store's reads are lock-free and its lanes immutable), keeping the trio loop free.
        try:
            await trio.to_thread.run_sync(lambda: save_state(path, store.entries()))
        except OSError as e:
            # The state file is a convenience: a full disk must not take routing down.
            self.store.dirty = True  # retried on the next tick
            self.stats.state_save_failures += 1
            log.warning("registry state file %s not written: %s", path, e)
