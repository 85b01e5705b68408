"""ZooKeeper registry backend in Apache Dubbo 2's interface-level layout.

Reads ``{root}/{interface}/providers/*`` (URL-encoded Dubbo provider URLs, ``dubbo.tag`` is
the env), watches those children and ``{root}`` itself (new interfaces), and publishes
laneway's own providers there as ephemeral nodes in Java Dubbo's format, so a Dubbo fleet
and laneway share one registry.

Threads and trio (docs/registry.md): kazoo owns a connection thread and a callback thread.
They only ever call ``TrioBridge.post`` (non-blocking, FIFO). Every kazoo request is issued
from the trio task with kazoo's ``*_async`` methods (they only enqueue), and their results
come back through the bridge. The trio task owns the table; readers never lock. kazoo's
threads are started in ``run`` and stopped in its ``finally``: they live exactly as long
as the registry task.

Reliability (TESTS.md Z1-Z5):
* SUSPENDED / LOST: the table is frozen as it is and flagged stale (counted); never emptied.
* Back to CONNECTED: everything is listed again with fresh watches (a lost session loses its
  watches and ephemeral nodes; ours are re-created), then the stale flag clears.
* An empty main lane in a push keeps the previous main providers while they accept TCP
  connections (``guard``); project envs follow the push.
* A node that is not a usable provider URL is skipped and counted once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import trio

from proxy.registry.backend import ChangeFeed, ChangeSubscription, RegistryStats
from proxy.registry.dubbo_url import (
    MalformedUrl,
    parse_provider_url,
    provider_node_name,
    providers_path,
)
from proxy.registry.guard import drop_dead, protect_main
from proxy.registry.model import EMPTY_LANES, Lanes, Provider, ServiceKey, group_by_env
from proxy.registry.probe import tcp_alive
from proxy.registry.zk_bridge import TrioBridge

SESSION_TIMEOUT = 60.0
"""Default ZooKeeper session timeout, seconds (TESTS.md §8: ZK session 60 s)."""

CONNECT_TIMEOUT = 15.0
# why: the first connection must succeed for the registry to report ready; fail loudly
# after this instead of hanging the proxy's start.

RECONNECT_MAX_DELAY = 2.0
# why: after an outage, reconnect within ~2 s of ZooKeeper coming back (Z1: re-armed ≤ 5 s).

PROTECT_RECHECK = 1.0
# why: a protected main provider that dies is dropped within ~1 s + probe timeout.

PROBE_CONCURRENCY = 64
# why: an empty push for many services must not open thousands of probe sockets at once.

PARSE_CACHE_MAX = 1_000_000
# why: the cache holds one entry per live node; bound it anyway for a registry under attack.

ProbeFn = Callable[[Provider], Awaitable[bool]]


# ---- events from kazoo's threads (via TrioBridge) ------------------------------------


@dataclass(frozen=True, slots=True)
class _State:
    state: str  # kazoo.protocol.states.KazooState value: CONNECTED / SUSPENDED / LOST


@dataclass(frozen=True, slots=True)
class _Listed:
    interface: str | None  # None: the root (interface list)
    names: tuple[str, ...] | None  # None: the node does not exist (an exists-watch is set)
    epoch: int


@dataclass(frozen=True, slots=True)
class _Failed:
    interface: str | None
    epoch: int


@dataclass(frozen=True, slots=True)
class _Fired:
    interface: str | None  # a watch fired: list this path again


_Event = _State | _Listed | _Failed | _Fired


class ZkRegistry:
    """The ZooKeeper backend. ``run`` it with ``nursery.start``; ready after the first full
    listing of every interface under ``root``."""

    def __init__(
        self,
        hosts: str,
        *,
        root: str = "/dubbo",
        session_timeout: float = SESSION_TIMEOUT,
        connect_timeout: float = CONNECT_TIMEOUT,
        probe: ProbeFn = tcp_alive,
    ) -> None:
        self.hosts = hosts
        self.root = "/" + root.strip("/")
        self.session_timeout = session_timeout
        self.connect_timeout = connect_timeout
        self.stats = RegistryStats()
        self._probe = probe
        self._feed = ChangeFeed(self.stats)
        self._lanes: dict[ServiceKey, Lanes] = {}
        self._by_interface: dict[str, frozenset[ServiceKey]] = {}
        self._parsed: dict[str, tuple[ServiceKey, Provider] | None] = {}
        self._names: dict[str, frozenset[str]] = {}  # last listing per interface
        self._protected: dict[ServiceKey, tuple[Provider, ...]] = {}
        self._protect_wakeup = trio.Event()
        self._published: dict[tuple[ServiceKey, tuple[str, str]], str] = {}
        self._watchers: dict[str | None, Callable[[object], None]] = {}
        self._disconnected = False
        self._pending: set[str | None] = set()  # paths still to be listed in this resync
        self._epoch = 0  # bumped on every resync: results of older listings are ignored
        self._stale = True
        self._client: Any = None  # kazoo.client.KazooClient while running
        self._bridge: TrioBridge[_Event] | None = None

    # ---- RegistryBackend ---------------------------------------------------------------

    def snapshot(self, key: ServiceKey) -> Lanes:
        return self._lanes.get(key, EMPTY_LANES)

    def services(self) -> tuple[ServiceKey, ...]:
        return tuple(sorted(self._lanes))

    def is_stale(self, key: ServiceKey | None = None) -> bool:
        """True while disconnected or re-listing after a reconnect (for any key)."""
        return self._stale

    def changes(self) -> contextlib.AbstractAsyncContextManager[ChangeSubscription]:
        return self._feed.subscribe()

    async def publish(self, key: ServiceKey, provider: Provider) -> None:
        """Create ``provider``'s ephemeral Dubbo URL node (re-created after a lost session).

        Raises ``RegistryUnavailable`` unless ``run`` is running."""
        if self._client is None:
            raise RegistryUnavailable("the ZooKeeper registry is not running")
        slot = (key, provider.identity)
        path = self._published.get(slot)
        if path is None:
            path = f"{providers_path(key.interface, self.root)}/{provider_node_name(key, provider)}"
            self._published[slot] = path
        await trio.to_thread.run_sync(self._create_ephemeral, path)

    async def unpublish(self, key: ServiceKey, provider: Provider) -> None:
        from kazoo.exceptions import NoNodeError

        path = self._published.pop((key, provider.identity), None)
        if path is not None and self._client is not None:
            with contextlib.suppress(NoNodeError):
                await trio.to_thread.run_sync(self._client.delete, path)

    def _create_ephemeral(self, path: str) -> None:  # worker thread
        from kazoo.exceptions import (
            ConnectionLoss,
            KazooException,
            NodeExistsError,
            SessionExpiredError,
        )

        try:
            self._client.create(path, b"", ephemeral=True, makepath=True)
        except NodeExistsError:
            pass  # ours already (same session)
        except (ConnectionLoss, SessionExpiredError):
            pass  # recorded in _published: created again when the connection is back
        except KazooException as e:  # e.g. no permission: the caller must hear about it
            raise RegistryUnavailable(f"cannot publish {path}: {e!r}") from e

    # ---- lifecycle ---------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Connect, list everything, ``started()``, then follow changes until cancelled.

        Raises ``RegistryUnavailable`` if ZooKeeper cannot be reached within
        ``connect_timeout`` at start (later outages are ridden out, stale).
        """
        from kazoo.client import KazooClient
        from kazoo.handlers.threading import KazooTimeoutError

        bridge: TrioBridge[_Event] = TrioBridge()
        self._bridge = bridge
        self._watchers.clear()  # their closures post to the bridge of a previous run
        self._stale, self._disconnected = True, False
        client = KazooClient(
            hosts=self.hosts,
            timeout=self.session_timeout,
            connection_retry={"max_tries": -1, "delay": 0.1, "max_delay": RECONNECT_MAX_DELAY},
        )
        client.add_listener(lambda state: bridge.post(_State(str(state))))
        self._client = client
        try:
            try:
                await trio.to_thread.run_sync(client.start, self.connect_timeout)
            except KazooTimeoutError as e:
                raise RegistryUnavailable(
                    f"ZooKeeper {self.hosts} unreachable for {self.connect_timeout}s"
                ) from e
            self._resync()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._guardian)
                started = False
                async for event in bridge.receive:
                    self._handle(event)
                    if bridge.overflowed:
                        bridge.overflowed = False
                        self.stats.overflows += 1
                        self._resync()
                    # Ready only on a full, connected listing (a drop mid-listing waits
                    # for the reconnect's resync).
                    if not started and not self._pending and not self._stale:
                        started = True
                        task_status.started()
        finally:
            bridge.close()
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(self._stop_client, client)
            self._client = None

    @staticmethod
    def _stop_client(client: Any) -> None:  # worker thread: joins kazoo's threads
        client.stop()
        client.close()

    # ---- event handling (trio thread) --------------------------------------------------

    def _handle(self, event: _Event) -> None:
        if isinstance(event, _State):
            self._on_state(event.state)
        elif isinstance(event, _Fired):
            self._list(event.interface, self._epoch)
        elif isinstance(event, _Listed):
            if event.epoch != self._epoch and event.interface in self._pending:
                return  # superseded by a newer resync's listing of the same path
            if event.interface is None:
                self._on_root(event.names, event.epoch)
            else:
                self._on_providers(event.interface, event.names or ())
            self._done(event.interface)
        elif isinstance(event, _Failed):
            # Connection trouble mid-listing: the reconnect's resync lists it again. Any
            # other failure (e.g. no permission) must not hold up readiness forever.
            self.stats.list_failures += 1
            if event.epoch == self._epoch:
                self._done(event.interface)

    def _on_state(self, state: str) -> None:
        if state == "SUSPENDED":
            self.stats.suspended += 1
            self._stale = self._disconnected = True
        elif state == "LOST":
            self.stats.lost += 1
            self._stale = self._disconnected = True
        elif state == "CONNECTED" and self._disconnected and self._client is not None:
            self._disconnected = False
            self.stats.reconnects += 1
            # Re-create our ephemeral nodes (gone with a lost session; NodeExists otherwise)
            # before re-listing: ZooKeeper answers in order, so the listing includes them.
            for path in self._published.values():
                self._client.create_async(path, b"", ephemeral=True, makepath=True)
            self._resync()

    def _done(self, path: str | None) -> None:
        self._pending.discard(path)
        if not self._pending and self._stale and not self._disconnected:
            self._stale = False

    def _resync(self) -> None:
        """List the root and every known interface again, with fresh watches."""
        self.stats.resyncs += 1
        self._epoch += 1
        self._pending = {None, *self._by_interface}
        for path in list(self._pending):
            self._list(path, self._epoch)

    def _on_root(self, names: tuple[str, ...] | None, epoch: int) -> None:
        for interface in names or ():
            if interface not in self._by_interface and interface not in self._pending:
                self._by_interface[interface] = frozenset()
                self._pending.add(interface)
                self._list(interface, epoch)

    def _on_providers(self, interface: str, names: tuple[str, ...]) -> None:
        listed = frozenset(names)
        for gone in self._names.get(interface, frozenset()) - listed:
            self._parsed.pop(gone, None)  # the parse cache holds live nodes only
        self._names[interface] = listed
        grouped: dict[ServiceKey, list[Provider]] = {}
        for name in names:
            parsed = self._parse(name)
            if parsed is not None:
                grouped.setdefault(parsed[0], []).append(parsed[1])
        keys = set(grouped)
        changed: set[ServiceKey] = set()
        for key in keys | self._by_interface.get(interface, frozenset()):
            old = self._lanes.get(key, EMPTY_LANES)
            new, kept = protect_main(old, group_by_env(grouped.get(key, ())))
            if kept:
                if key not in self._protected:
                    self.stats.empty_push_protected += 1
                self._protected[key] = kept
                self._protect_wakeup.set()
                keys.add(key)
            else:
                self._protected.pop(key, None)
            if new != old:
                changed.add(key)
                if new:
                    self._lanes[key] = new
                else:
                    self._lanes.pop(key, None)
        self._by_interface[interface] = frozenset(keys)
        self._feed.notify(changed)

    def _parse(self, name: str) -> tuple[ServiceKey, Provider] | None:
        if name in self._parsed:
            return self._parsed[name]
        try:
            parsed: tuple[ServiceKey, Provider] | None = parse_provider_url(name)
        except MalformedUrl:
            parsed = None
            self.stats.malformed_nodes += 1
        if len(self._parsed) >= PARSE_CACHE_MAX:
            self._parsed.clear()
        self._parsed[name] = parsed
        return parsed

    # ---- kazoo requests (issued on the trio thread, answered via the bridge) -----------

    def _path(self, interface: str | None) -> str:
        return self.root if interface is None else providers_path(interface, self.root)

    def _list(self, interface: str | None, epoch: int) -> None:
        """Ask for ``interface``'s children (root's when None) with a child watch."""
        bridge, client = self._bridge, self._client
        assert bridge is not None and client is not None
        path = self._path(interface)
        fired = self._watcher(interface)

        def exists_done(result: Any) -> None:  # kazoo callback thread (or ours)
            if result.exception is None and result.value is not None:
                bridge.post(_Fired(interface))  # created meanwhile: list it now

        def listed(result: Any) -> None:  # kazoo callback thread (or ours)
            from kazoo.exceptions import KazooException, NoNodeError

            try:
                names = tuple(result.get_nowait())
            except NoNodeError:
                # Not there (yet): be told when it is created, then list it.
                client.exists_async(path, watch=fired).rawlink(exists_done)
                bridge.post(_Listed(interface, None, epoch))
            except KazooException:
                bridge.post(_Failed(interface, epoch))
            else:
                bridge.post(_Listed(interface, names, epoch))

        client.get_children_async(path, watch=fired).rawlink(listed)

    def _watcher(self, interface: str | None) -> Callable[[object], None]:
        """One watch callable per path, so re-listing never stacks duplicate watches."""
        fired = self._watchers.get(interface)
        if fired is None:
            bridge = self._bridge
            assert bridge is not None

            def fired(_event: object) -> None:  # kazoo thread (or ours): never block
                bridge.post(_Fired(interface))

            self._watchers[interface] = fired
        return fired

    # ---- empty-push protection -----------------------------------------------------------

    async def _guardian(self) -> None:
        """Probe protected main providers; drop those that stopped answering."""
        while True:
            await self._protect_wakeup.wait()
            self._protect_wakeup = trio.Event()
            while self._protected:
                targets = {p for kept in self._protected.values() for p in kept}
                alive: dict[Provider, bool] = {}
                limiter = trio.CapacityLimiter(PROBE_CONCURRENCY)
                async with trio.open_nursery() as nursery:
                    for p in targets:
                        nursery.start_soon(self._probe_into, p, alive, limiter)
                changed = set()
                for key, kept in list(self._protected.items()):
                    dead = [p for p in kept if not alive.get(p, True)]
                    if not dead:
                        continue
                    still = tuple(p for p in kept if p not in dead)
                    self._lanes[key] = drop_dead(self.snapshot(key), dead)
                    if not self._lanes[key]:
                        del self._lanes[key]
                    if still:
                        self._protected[key] = still
                    else:
                        del self._protected[key]
                    changed.add(key)
                self._feed.notify(changed)
                await trio.sleep(PROTECT_RECHECK)

    async def _probe_into(
        self, provider: Provider, out: dict[Provider, bool], limiter: trio.CapacityLimiter
    ) -> None:
        async with limiter:
            out[provider] = await self._probe(provider)


class RegistryUnavailable(RuntimeError):
    """The registry could not be reached when starting."""
