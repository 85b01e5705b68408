"""Upstream connection pool: one multiplexed connection per provider address.

The pool's nursery (``run``) owns every upstream connection's tasks. ``get(address)``
returns a live connection, opening one if needed; concurrent callers for the same address
share one connect attempt. Which provider to use is the router's pure decision; the pool
only does I/O. One pool per protocol: the ``factory`` wraps a connected socket in that
protocol's multiplexed connection (Dubbo, HTTP/2).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, NoReturn, Protocol, TypeVar

import trio

from proxy.errors import UpstreamDied
from proxy.health import HostHealth
from proxy.net.rawsock import connect_tcp
from proxy.registry.model import split_address


class PooledConnection(Protocol):
    """What the pool needs of a protocol's upstream connection."""

    @property
    def usable(self) -> bool:
        """True while new calls may be sent on it."""

    async def run(self, *, task_status: trio.TaskStatus[None] = ...) -> None:
        """Serve the connection until it closes; started() once it can take calls."""

    def close(self) -> None:
        """Stop it; calls in flight fail with UpstreamDied."""


C = TypeVar("C", bound=PooledConnection)
# factory(address, connected stream, on_readonly) -> connection
Factory = Callable[[str, trio.abc.Stream, Callable[[str], None]], C]


class Dialer(Protocol):
    """Opens a byte stream to a provider address. Raises OSError when it cannot."""

    async def __call__(self, address: str) -> trio.abc.Stream: ...


async def dial_tcp(address: str) -> trio.abc.Stream:
    """The default dialer: a TCP connection to ``host:port`` (lean raw-socket stream)."""
    host, port = split_address(address)
    return await connect_tcp(host, port)


@dataclass
class PoolStats:
    connects: int = 0
    connect_failures: int = 0


class UpstreamPool(Generic[C]):
    def __init__(
        self,
        health: HostHealth,
        factory: Factory[C],
        *,
        connect_timeout: float,
        dialers: dict[str, Dialer] | None = None,
    ) -> None:
        self._health = health
        self._factory = factory
        # Address scheme -> dialer ("tunnel:..." addresses reach a laptop through its
        # tunnel); plain host:port addresses use TCP.
        self._dialers = dict(dialers or {})
        self._connect_timeout = connect_timeout
        self._conns: dict[str, C] = {}
        self._connecting: dict[str, trio.Event] = {}
        self._nursery: trio.Nursery | None = None
        self.stats = PoolStats()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Own the upstream connections until cancelled."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            await trio.sleep_forever()

    def connections(self) -> dict[str, C]:
        return dict(self._conns)

    def ready(self, address: str) -> C | None:
        """A usable connection to ``address`` if one is open now (no await: the fast path)."""
        conn = self._conns.get(address)
        return conn if conn is not None and conn.usable else None

    async def get(self, address: str) -> C:
        """A usable connection to ``address``. Raises UpstreamDied when it cannot connect
        within the connect timeout (the host's failure is counted for ejection)."""
        while True:
            conn = self._conns.get(address)
            if conn is not None and conn.usable:
                return conn
            pending = self._connecting.get(address)
            if pending is None:
                break
            await pending.wait()
            if address not in self._conns:
                raise UpstreamDied(f"cannot connect to provider {address}")
        done = self._connecting[address] = trio.Event()
        try:
            return await self._connect(address)
        finally:
            del self._connecting[address]
            done.set()

    async def _connect(self, address: str) -> C:
        assert self._nursery is not None, "UpstreamPool.run() is not running"
        scheme, sep, _rest = address.partition(":")
        dial = self._dialers.get(scheme, dial_tcp) if sep else dial_tcp
        self.stats.connects += 1
        stream: trio.abc.Stream | None = None
        with trio.move_on_after(self._connect_timeout):
            try:
                stream = await dial(address)
            except OSError as exc:
                return self._connect_failed(address, f"cannot connect to provider {address}: {exc}")
        if stream is None:
            timeout = self._connect_timeout
            return self._connect_failed(
                address, f"connecting to provider {address} timed out after {timeout}s"
            )
        old = self._conns.get(address)
        if old is not None:
            old.close()  # readonly or dead: its in-flight calls end on their own terms
        self._health.set_readonly(address, False)
        conn = self._factory(address, stream, self._on_readonly)
        self._conns[address] = conn
        await self._nursery.start(self._run_conn, address, conn)
        return conn

    def _connect_failed(self, address: str, message: str) -> NoReturn:
        self.stats.connect_failures += 1
        self._health.connect_failed(address, trio.current_time())
        self._conns.pop(address, None)
        raise UpstreamDied(message)

    def _on_readonly(self, address: str) -> None:
        self._health.set_readonly(address, True)

    async def _run_conn(self, address: str, conn: C, *, task_status: trio.TaskStatus[None]) -> None:
        try:
            await conn.run(task_status=task_status)
        finally:
            if self._conns.get(address) is conn:
                del self._conns[address]

    def add_dialer(self, scheme: str, dialer: Dialer) -> None:
        """Route addresses ``scheme:...`` through ``dialer`` (e.g. the tunnel server)."""
        self._dialers[scheme] = dialer
