"""The fast gRPC upstream of ``bench/e2e_grpc.py``: one grpcio server per env in one process.

``demo.Greeter/Hello`` answers every request with a fixed 64-byte message that starts with
the env's name (so the client can check which env a call reached); ``demo.Greeter/Served``
answers with the number of ``Hello`` calls this env has served (h2load cannot tell a gRPC
error from a success: the benchmark compares this count with what h2load reports).
Messages are raw bytes (no protobuf), so the upstream spends as little as grpcio allows.

    python -m bench.grpc_upstream --env main=127.0.0.1:0 --env feature-1=127.0.0.1:0

prints ``upstream ready: main=127.0.0.1:PORT feature-1=127.0.0.1:PORT`` once every server
listens, and stops on SIGTERM / SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Sequence

import grpc
from grpc import aio

SERVICE = "demo.Greeter"
MESSAGE_SIZE = 64


def message_for(env: str) -> bytes:
    """The 64-byte answer of ``env``: its name, padded."""
    return (env.encode() + b":" + b"x" * MESSAGE_SIZE)[:MESSAGE_SIZE]


class Env:
    """The handlers of one env's server; ``served`` counts ``Hello`` calls."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.answer = message_for(name)
        self.served = 0

    async def hello(self, request: bytes, context: aio.ServicerContext[bytes, bytes]) -> bytes:
        self.served += 1
        return self.answer

    async def count(self, request: bytes, context: aio.ServicerContext[bytes, bytes]) -> bytes:
        return b"%d" % self.served


async def serve(envs: Sequence[tuple[str, str]]) -> None:
    servers: list[aio.Server] = []
    bound: list[str] = []
    for name, listen in envs:
        env = Env(name)
        server = aio.server(options=[("grpc.so_reuseport", 0)])
        handlers = {
            "Hello": grpc.unary_unary_rpc_method_handler(env.hello),
            "Served": grpc.unary_unary_rpc_method_handler(env.count),
        }
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
        port = server.add_insecure_port(listen)
        host = listen.rpartition(":")[0]
        await server.start()
        servers.append(server)
        bound.append(f"{name}={host}:{port}")
    print("upstream ready: " + " ".join(bound), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    for server in servers:
        await server.stop(grace=None)


def parse_env(text: str) -> tuple[str, str]:
    name, sep, listen = text.partition("=")
    if not sep or not name or not listen.startswith("127.0.0.1:"):
        raise argparse.ArgumentTypeError(f"want NAME=127.0.0.1:PORT, got {text!r}")
    return name, listen


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Fast gRPC upstream for bench/e2e_grpc.py")
    p.add_argument("--env", type=parse_env, action="append", required=True)
    args = p.parse_args(argv)
    asyncio.run(serve(args.env))
    return 0


if __name__ == "__main__":
    sys.exit(main())
