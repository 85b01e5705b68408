"""A minimal, fast Dubbo 2 provider for the end-to-end benchmark (``bench/e2e_dubbo.py``).

Answers every two-way request with one fixed, pre-encoded OK response (``sayHello``'s
answer) under the request's id, and every two-way heartbeat with a heartbeat response. It
never decodes a body: the benchmark wants the provider's cost small and constant, so that
what is measured through a proxy is the proxy.

trio with raw non-blocking sockets (``wait_readable``, read everything available, answer
every complete frame of one read with one ``send``): no ``SocketStream``, no codec, no task
per call. Faster than ``proxy.demo.DemoProvider`` (which decodes arguments and encodes a
response per call); the benchmark measures it directly as the baseline.

Run: ``.venv/bin/python -m bench.dubbo_provider --listen 127.0.0.1:0``; prints
``provider ready: HOST:PORT`` once listening. SIGTERM/SIGINT stop it.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import struct
import sys

import trio

from proxy.codecs.dubbo import (
    FLAG_EVENT,
    FLAG_REQUEST,
    FLAG_TWO_WAY,
    HEADER_LENGTH,
    encode_heartbeat_response,
    encode_value_response,
)

RECEIVE_SIZE = 256 * 1024
# why: pipelined load delivers many frames per read; one large read drains them all.
BACKLOG = 128
YIELD_EVERY = 16
# why: a connection only yields when a read would block; one that always has data gets a
# forced checkpoint this often so other connections still run.

REPLY_VALUE = "Hello, world! (served by main)"
RESPONSE = encode_value_response(0, REPLY_VALUE, attachments={"served-by": "main"})
HEARTBEAT = encode_heartbeat_response(0)
_BODY_LENGTH = struct.Struct(">I")


def answers(buf: bytearray) -> tuple[list[bytes], int]:
    """The answers to every complete frame in ``buf`` and how many bytes they used."""
    out: list[bytes] = []
    pos = 0
    end_of_data = len(buf)
    response_head, response_tail = RESPONSE[:4], RESPONSE[12:]
    heartbeat_head, heartbeat_tail = HEARTBEAT[:4], HEARTBEAT[12:]
    while end_of_data - pos >= HEADER_LENGTH:
        (body_length,) = _BODY_LENGTH.unpack_from(buf, pos + 12)
        end = pos + HEADER_LENGTH + body_length
        if end > end_of_data:
            break
        flags = buf[pos + 2]
        if flags & FLAG_REQUEST and flags & FLAG_TWO_WAY:
            request_id = bytes(buf[pos + 4 : pos + 12])
            if flags & FLAG_EVENT:
                out += (heartbeat_head, request_id, heartbeat_tail)
            else:
                out += (response_head, request_id, response_tail)
        pos = end
    return out, pos


async def send_all(sock: socket.socket, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            sent = sock.send(view)
        except BlockingIOError:
            await trio.lowlevel.wait_writable(sock)
            continue
        view = view[sent:]


async def serve_connection(sock: socket.socket) -> None:
    buf = bytearray()
    reads_without_wait = 0
    try:
        while True:
            try:
                data = sock.recv(RECEIVE_SIZE)
            except BlockingIOError:
                reads_without_wait = 0
                await trio.lowlevel.wait_readable(sock)
                continue
            if not data:
                return
            buf += data
            out, used = answers(buf)
            del buf[:used]
            if out:
                await send_all(sock, b"".join(out))
            reads_without_wait += 1
            if reads_without_wait >= YIELD_EVERY:  # a busy consumer must not starve others
                reads_without_wait = 0
                await trio.lowlevel.checkpoint()
    except OSError:
        return  # the consumer went away
    finally:
        sock.close()


async def serve(listen: str) -> None:
    host, _, port = listen.rpartition(":")
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, int(port)))
    listener.listen(BACKLOG)
    listener.setblocking(False)
    bound_host, bound_port = listener.getsockname()[:2]
    print(f"provider ready: {bound_host}:{bound_port}", flush=True)
    async with trio.open_nursery() as nursery:
        while True:
            try:
                conn, _ = listener.accept()
            except BlockingIOError:
                await trio.lowlevel.wait_readable(listener)
                continue
            conn.setblocking(False)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            nursery.start_soon(serve_connection, conn)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--listen", default="127.0.0.1:0")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: stop quietly
        trio.run(serve, args.listen)
    return 0


if __name__ == "__main__":
    sys.exit(main())
