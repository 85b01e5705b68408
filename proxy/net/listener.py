"""Accepting TCP connections for a front end (Dubbo, gRPC): bind, accept, cap, drain.

``Listener.run`` binds, reports the bound ``host:port`` through ``task_status``, and
serves each accepted connection with ``serve`` in a handler nursery that it owns.
``stop_accepting`` (a drain) closes the listening socket at once — new connections are
refused by the kernel — while the handlers keep serving until cancelled from above.
"""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable
from typing import Protocol

import trio

from proxy.net.rawsock import RawSocketStream, accept, listen_tcp
from proxy.registry.model import join_address


class AcceptCounters(Protocol):
    accepted: int
    refused_connections: int


class Listener:
    def __init__(
        self,
        serve: Callable[[RawSocketStream], Awaitable[None]],
        *,
        max_connections: int,
        counters: AcceptCounters,
    ) -> None:
        self._serve = serve
        self._max_connections = max_connections
        self._counters = counters
        self._accepting = trio.CancelScope()
        self.active = 0

    def stop_accepting(self) -> None:
        self._accepting.cancel()

    async def run(
        self, listen: str, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED
    ) -> None:
        host, _, port_text = listen.rpartition(":")
        sock = listen_tcp(host, int(port_text))
        bound = sock.getsockname()
        try:
            async with trio.open_nursery() as handlers:
                task_status.started(join_address(bound[0], bound[1]))
                with self._accepting:
                    await self._accept_loop(sock, handlers)
                _close(sock)  # drain: refuse new connections at once
        finally:
            _close(sock)

    async def _accept_loop(self, sock: socket.socket, handlers: trio.Nursery) -> None:
        while True:
            stream = await accept(sock)
            if self.active >= self._max_connections:
                self._counters.refused_connections += 1
                stream.close()
                continue
            self._counters.accepted += 1
            self.active += 1  # counted here: a burst of accepts runs before any handler
            handlers.start_soon(self._serve_counted, stream)

    async def _serve_counted(self, stream: RawSocketStream) -> None:
        try:
            await self._serve(stream)
        finally:
            self.active -= 1


def _close(sock: socket.socket) -> None:
    """Close a listening socket synchronously (safe inside a cancelled scope)."""
    if sock.fileno() != -1:
        trio.lowlevel.notify_closing(sock)
        sock.close()
