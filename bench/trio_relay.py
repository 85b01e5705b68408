"""A bare trio TCP byte relay: the benchmark's yardstick for "what trio itself costs".

Per accepted connection it opens one connection to ``--upstream`` and copies bytes both
ways; it knows nothing about Dubbo and cannot route. Two modes:

- ``stream`` (default): ``trio.SocketStream`` ``receive_some`` / ``send_all``, the way
  laneway's data path does I/O today.
- ``raw``: non-blocking stdlib sockets inside trio (``wait_readable``, read everything
  available, ``send`` directly; wait only when the kernel says EAGAIN), DESIGN.md §8's
  suggested shape.

Run: ``.venv/bin/python -m bench.trio_relay --listen 127.0.0.1:0 --upstream HOST:PORT
[--mode raw]``; prints ``relay ready: HOST:PORT``. SIGTERM/SIGINT stop it.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import sys

import trio

RECEIVE_SIZE = 256 * 1024
# why: one read should drain whatever a pipelined peer has sent.
BACKLOG = 128
YIELD_EVERY = 16
# why: raw mode only yields when a read would block; a peer that always has data gets a
# forced checkpoint this often so the other direction and other connections still run.


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port)


# -- stream mode -----------------------------------------------------------------------------


async def _pump_stream(source: trio.SocketStream, sink: trio.SocketStream) -> None:
    try:
        while True:
            data = await source.receive_some(RECEIVE_SIZE)
            if not data:
                return
            await sink.send_all(data)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        return


async def _relay_stream(downstream: trio.SocketStream, upstream_address: str) -> None:
    host, port = _split(upstream_address)
    try:
        upstream = await trio.open_tcp_stream(host, port)
    except OSError:
        await downstream.aclose()
        return
    async with downstream, upstream, trio.open_nursery() as nursery:

        async def one_way(source: trio.SocketStream, sink: trio.SocketStream) -> None:
            await _pump_stream(source, sink)
            nursery.cancel_scope.cancel()  # either side closing ends the pair

        nursery.start_soon(one_way, downstream, upstream)
        nursery.start_soon(one_way, upstream, downstream)


async def serve_stream(listen: str, upstream: str) -> None:
    host, port = _split(listen)
    listeners = await trio.open_tcp_listeners(port, host=host)
    bound = listeners[0].socket.getsockname()
    print(f"relay ready: {bound[0]}:{bound[1]}", flush=True)

    async def handler(stream: trio.SocketStream) -> None:
        await _relay_stream(stream, upstream)

    await trio.serve_listeners(handler, listeners)


# -- raw mode --------------------------------------------------------------------------------


async def _pump_raw(source: socket.socket, sink: socket.socket) -> None:
    reads_without_wait = 0
    try:
        while True:
            try:
                data = source.recv(RECEIVE_SIZE)
            except BlockingIOError:
                reads_without_wait = 0
                await trio.lowlevel.wait_readable(source)
                continue
            if not data:
                return
            view = memoryview(data)
            while view:
                try:
                    sent = sink.send(view)
                except BlockingIOError:
                    await trio.lowlevel.wait_writable(sink)
                    continue
                view = view[sent:]
            reads_without_wait += 1
            if reads_without_wait >= YIELD_EVERY:  # a busy peer must not starve the others
                reads_without_wait = 0
                await trio.lowlevel.checkpoint()
    except OSError:
        return


async def _relay_raw(downstream: socket.socket, upstream_address: str) -> None:
    upstream = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        upstream.connect(_split(upstream_address))  # loopback: completes at once
        upstream.setblocking(False)
        async with trio.open_nursery() as nursery:

            async def one_way(source: socket.socket, sink: socket.socket) -> None:
                await _pump_raw(source, sink)
                nursery.cancel_scope.cancel()

            nursery.start_soon(one_way, downstream, upstream)
            nursery.start_soon(one_way, upstream, downstream)
    except OSError:
        return
    finally:
        upstream.close()
        downstream.close()


async def serve_raw(listen: str, upstream: str) -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(_split(listen))
    listener.listen(BACKLOG)
    listener.setblocking(False)
    bound = listener.getsockname()
    print(f"relay ready: {bound[0]}:{bound[1]}", flush=True)
    async with trio.open_nursery() as nursery:
        while True:
            try:
                conn, _ = listener.accept()
            except BlockingIOError:
                await trio.lowlevel.wait_readable(listener)
                continue
            conn.setblocking(False)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            nursery.start_soon(_relay_raw, conn, upstream)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--listen", default="127.0.0.1:0")
    parser.add_argument("--upstream", required=True, help="HOST:PORT to relay to")
    parser.add_argument("--mode", choices=("stream", "raw"), default="stream")
    args = parser.parse_args(argv)
    serve = serve_raw if args.mode == "raw" else serve_stream
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: stop quietly
        trio.run(serve, args.listen, args.upstream)
    return 0


if __name__ == "__main__":
    sys.exit(main())
