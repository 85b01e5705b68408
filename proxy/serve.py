"""`laneway serve`: the proxy's nursery tree.

```
serve
├── registry backend            (embedded gRPC registry, or ZooKeeper)
├── upstream pools              (Dubbo and HTTP/2: one multiplexed connection per provider)
├── Dubbo frontend              (listener + one task tree per consumer connection)
├── gRPC frontend               (listener + per connection: reader, writer, a relay per stream)
├── routes watcher              (watchfiles + SIGHUP -> atomic table swap)
├── tunnel listener             (laptops joining project envs: `laneway tunnel`)
├── admin HTTP listener         (status page, /metrics, explain, reload, drain)
└── telemetry                   (registry change clock; flushes spans on the way out)
```

Every child is started with ``nursery.start`` and reports ready; ``serve`` reports the
bound addresses only when all are. Shutdown (``Proxy.shutdown`` / SIGTERM / SIGINT) drains:
stop accepting, READONLY to consumers, in-flight calls get the drain timeout, then cancel.
"""

from __future__ import annotations

import logging
import signal
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import trio

from proxy.config import ConfigError, LanewayConfig, ZooKeeperRegistryConfig
from proxy.forward import DubboForwarder
from proxy.grpc_forward import GrpcForwarder
from proxy.health import HostHealth
from proxy.local_services import LocalServices
from proxy.net.dubbo_downstream import DubboFrontend, FrontendLimits
from proxy.net.dubbo_upstream import UpstreamConnection
from proxy.net.grpc_downstream import GrpcFrontend, GrpcFrontendLimits, server_tls_context
from proxy.net.h2_upstream import H2Upstream
from proxy.net.pool import UpstreamPool
from proxy.observe import CallObserver
from proxy.registry.backend import RegistryBackend
from proxy.registry.embedded import EmbeddedRegistry
from proxy.registry.model import Lanes, Provider, ServiceKey
from proxy.router import Router, TableRef
from proxy.telemetry import Telemetry
from proxy.tunnel.server import TUNNEL_SCHEME, TunnelServer
from proxy.tunnel.settings import settings_from_config
from routing import RoutesError, RouteTable, load, loads

log = logging.getLogger("laneway")

REGISTRY_SERVICE = "laneway.registry.v1.Registry"
RELOAD_DEBOUNCE_MS = 200
# why: editors write a file in several steps; one reload per burst of changes.
WATCH_WAKE_MS = 250
# why: watchfiles' watcher thread cannot be interrupted; it checks for cancellation this
# often, which bounds how long a shutdown waits for it.


@dataclass(frozen=True)
class Bound:
    """Where the running proxy listens (ports resolved when 0 was asked)."""

    dubbo: str | None
    registry: str | None
    grpc: str | None = None
    admin: str | None = None
    tunnel: str | None = None


def static_lanes(table: RouteTable) -> dict[ServiceKey, Lanes]:
    """The routes file's static providers, as registry lanes by service."""
    out: dict[ServiceKey, dict[str, list[Provider]]] = {}
    for sp in table.static_providers:
        if not sp.healthy:
            continue
        key = ServiceKey.of(sp.service, sp.version, sp.group)
        env = sp.env or table.main
        provider = Provider(
            address=sp.address,
            protocol=sp.protocol,
            env=env,
            weight=sp.weight,
            methods=sp.methods,
            application=sp.application or "",
            source="static",
        )
        out.setdefault(key, {}).setdefault(env, []).append(provider)
    return {k: {e: tuple(ps) for e, ps in lanes.items()} for k, lanes in out.items()}


class Lookup:
    """Registry lanes merged with the routes file's static providers (static first)."""

    def __init__(self, registry: RegistryBackend) -> None:
        self._registry = registry
        self._static: dict[ServiceKey, Lanes] = {}
        # key -> (live lanes, merged lanes): the same object back while the registry's
        # view is unchanged, so callers can cache by identity (Router.candidates). Only
        # keys of the routes file are merged, so the routes file bounds this.
        self._merged: dict[ServiceKey, tuple[Lanes, Lanes]] = {}

    def set_table(self, table: RouteTable) -> None:
        self._static = static_lanes(table)
        self._merged = {}

    def __call__(self, key: ServiceKey) -> Lanes:
        live = self._registry.snapshot(key)
        static = self._static.get(key)
        if not static:
            return live
        known = self._merged.get(key)
        if known is not None and known[0] is live:
            return known[1]
        merged = dict(live)
        for env, providers in static.items():
            merged[env] = providers + tuple(live.get(env, ()))
        self._merged[key] = (live, merged)
        return merged


def load_table(path: Path | None) -> RouteTable:
    """The routes file's table, or the default table (main only, x-env / dubbo.tag /
    baggage carriers) when no file is configured. Raises RoutesError."""
    return loads("", "<default routes>") if path is None else load(path)


class Proxy:
    """A running laneway. Build it, then ``await nursery.start(proxy.run)``."""

    def __init__(
        self,
        config: LanewayConfig,
        observer: CallObserver | None = None,
        *,
        telemetry: Telemetry | None = None,
    ) -> None:
        """``telemetry`` defaults to one built from ``config.telemetry``; ``observer``
        defaults to its observer (``NO_OBSERVER`` when telemetry is all off)."""
        self.config = config
        self.telemetry = telemetry if telemetry is not None else Telemetry(config.telemetry)
        self.observer = observer if observer is not None else self.telemetry.observer
        self.health = HostHealth()
        self.registry = self._make_registry()
        self.lookup = Lookup(self.registry)
        table = load_table(config.routes_path)
        self.lookup.set_table(table)
        self.tables = TableRef(table)
        self.router = Router(
            self.tables,
            self.lookup,
            self.health,
            trio.current_time,
            tunnel_max_calls=config.tunnel.max_calls,
        )
        limits = config.limits

        def dubbo_upstream(
            address: str, stream: trio.abc.Stream, on_readonly: Callable[[str], None]
        ) -> UpstreamConnection:
            return UpstreamConnection(
                address,
                stream,
                heartbeat_interval=limits.heartbeat_interval,
                idle_timeout=limits.upstream_idle_timeout,
                on_readonly=on_readonly,
            )

        self.pool = UpstreamPool(
            self.health, dubbo_upstream, connect_timeout=limits.upstream_connect_timeout
        )
        self.forwarder = DubboForwarder(
            self.router,
            self.pool,
            route_timeout=limits.route_timeout,
            max_timeout=limits.max_call_timeout,
            observer=self.observer,
        )
        self.dubbo = DubboFrontend(
            self.forwarder,
            FrontendLimits(
                request_read_timeout=limits.request_read_timeout,
                max_inflight_per_connection=limits.max_inflight_per_connection,
                max_inflight_total=limits.max_inflight_total,
                max_connections=limits.max_connections,
                idle_timeout=limits.consumer_idle_timeout,
            ),
        )
        self.local_services = LocalServices(self.router, draining=lambda: self._shutdown.is_set())
        self.grpc_pool = UpstreamPool(
            self.health,
            lambda address, stream, _on_readonly: H2Upstream(address, stream),
            connect_timeout=limits.upstream_connect_timeout,
        )
        self.grpc_forwarder = GrpcForwarder(
            self.router,
            self.grpc_pool,
            route_timeout=limits.route_timeout,
            max_message_size=limits.max_grpc_message,
            observer=self.observer,
            local=self.local_services,
        )
        self.grpc = GrpcFrontend(
            self.grpc_forwarder,
            GrpcFrontendLimits(
                max_connections=limits.max_connections,
                idle_timeout=limits.grpc_idle_timeout,
                handshake_timeout=limits.request_read_timeout,
                request_headers_timeout=limits.request_read_timeout,
            ),
            tls=self._grpc_tls(),
        )
        self.tunnel: TunnelServer | None = None
        if config.listen.tunnel is not None:
            # Laptops join envs through the tunnel; both pools dial `tunnel:<n>` through it.
            self.tunnel = TunnelServer(settings_from_config(config), self.registry)
            self.pool.add_dialer(TUNNEL_SCHEME, self.tunnel.dial)
            self.grpc_pool.add_dialer(TUNNEL_SCHEME, self.tunnel.dial)
        self._shutdown = trio.Event()
        self.stopped = trio.Event()
        self.telemetry.watch(self)

    def _grpc_tls(self) -> ssl.SSLContext | None:
        tls = self.config.listen.grpc_tls
        if tls is None:
            return None
        cert, key = self.config.resolve(tls.cert), self.config.resolve(tls.key)
        try:
            return server_tls_context(str(cert), str(key))
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"listen.grpc_tls: cannot load {cert} / {key}: {exc}") from exc

    def _make_registry(self) -> RegistryBackend:
        reg = self.config.registry
        if isinstance(reg, ZooKeeperRegistryConfig):
            from proxy.registry.zk import ZkRegistry

            return ZkRegistry(reg.hosts, root=reg.root)
        return EmbeddedRegistry(listen=self.config.listen.registry, state_file=reg.state_file)

    def reload(self) -> bool:
        """Re-read the routes file and swap the table atomically. On any error the old
        table stays live and every problem is logged as file:line:col."""
        path = self.config.routes_path
        try:
            table = load_table(path)
        except RoutesError as exc:
            self.tables.reload_failures += 1
            self.tables.last_error = str(exc)
            self.telemetry.state.note_reload(
                ok=False, version=self.tables.current.version, error=str(exc)
            )
            log.error(
                "routes reload failed, keeping table %s:\n%s", self.tables.current.version, exc
            )
            return False
        self.lookup.set_table(table)
        self.tables.swap(table)
        self.telemetry.state.note_reload(ok=True, version=table.version)
        log.info("routes reloaded: table %s", table.version)
        return True

    def shutdown(self) -> None:
        """Begin a graceful drain (idempotent)."""
        self._shutdown.set()

    @property
    def draining(self) -> bool:
        """True once a drain has begun (the admin API's /ready then answers 503)."""
        return self._shutdown.is_set()

    async def run(self, *, task_status: trio.TaskStatus[Bound] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            await self._run(task_status)
        finally:
            self.stopped.set()

    async def _run(self, task_status: trio.TaskStatus[Bound]) -> None:
        listen = self.config.listen
        async with trio.open_nursery() as nursery:
            reg_address = await nursery.start(self.registry.run)
            await nursery.start(self.pool.run)
            await nursery.start(self.grpc_pool.run)
            dubbo_address: str | None = None
            if listen.dubbo is not None:
                dubbo_address = await nursery.start(self.dubbo.run, listen.dubbo)
            grpc_address: str | None = None
            if listen.grpc is not None:
                grpc_address = await nursery.start(self.grpc.run, listen.grpc)
            if self.config.routes_path is not None and self.config.watch_routes:
                nursery.start_soon(self._watch_routes, self.config.routes_path)
            registry = reg_address if isinstance(reg_address, str) else None
            if registry is not None:
                # The registry API is served on the gRPC listener too (relayed in-process).
                self.local_services.relayed[REGISTRY_SERVICE] = registry
            tunnel_address: str | None = None
            if self.tunnel is not None and listen.tunnel is not None:
                self.tunnel.endpoints = {"dubbo": dubbo_address, "grpc": grpc_address}
                tunnel_address = await nursery.start(self.tunnel.run, listen.tunnel)
            admin_address: str | None = None
            if listen.admin is not None:
                from proxy.admin.server import serve_admin

                admin_address = await nursery.start(serve_admin, self, listen.admin)
            bound = Bound(
                dubbo=dubbo_address,
                registry=registry,
                grpc=grpc_address,
                admin=admin_address,
                tunnel=tunnel_address,
            )
            await nursery.start(self.telemetry.run, self, bound)
            task_status.started(bound)
            await self._shutdown.wait()
            with trio.move_on_after(self.config.limits.drain_timeout):
                async with trio.open_nursery() as drains:
                    drains.start_soon(self.dubbo.drain)
                    drains.start_soon(self.grpc.drain)
            nursery.cancel_scope.cancel()

    async def _watch_routes(self, path: Path) -> None:
        import watchfiles

        async for _changes in watchfiles.awatch(
            path,
            debounce=RELOAD_DEBOUNCE_MS,
            rust_timeout=WATCH_WAKE_MS,
            stop_event=self._shutdown,
        ):
            self.reload()


async def run_until_signalled(
    proxy: Proxy, on_ready: Callable[[Bound], None] | None = None
) -> None:
    """Run ``proxy``; SIGTERM/SIGINT drain it, SIGHUP reloads the routes."""
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
        async with trio.open_nursery() as nursery:
            bound = await nursery.start(proxy.run)
            if on_ready is not None:
                on_ready(bound)

            async def watch_signals() -> None:
                async for signum in signals:
                    if signum == signal.SIGHUP:
                        proxy.reload()
                    else:
                        proxy.shutdown()

            nursery.start_soon(watch_signals)
            await proxy.stopped.wait()  # run() has drained and returned
            nursery.cancel_scope.cancel()


__all__ = ["Bound", "Lookup", "Proxy", "load_table", "run_until_signalled", "static_lanes"]
