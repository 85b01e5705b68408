"""The laptop's side of `laneway tunnel`: dial out, authenticate, serve the proxy's streams.

```
TunnelClient.run                    (reconnects with capped, jittered exponential backoff)
└── one session: handshake -> Mux (HTTP/2 server, heartbeating)
    └── one task per CONNECT stream -> TCP to the local provider, piped both ways
```

The laptop is never dialled: it opens the connection, so NATs and firewalls are no
obstacle. Refusals the user must act on (bad, expired or revoked token, a protected env,
a conflicting tunnel) end ``run`` with :class:`TunnelRefused`; network trouble and rate
limiting are retried.
"""

from __future__ import annotations

import random
import signal
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import trio

from proxy.codecs.grpc.events import Headers
from proxy.codecs.grpc.limits import H2Limits
from proxy.registry.model import split_address
from proxy.tunnel.mux import REPLACED, Mux, VirtualStream
from proxy.tunnel.wire import (
    Announced,
    Hello,
    MessageReader,
    WireError,
    encode_message,
    parse_service_authority,
)

RECEIVE_SIZE = 64 * 1024
# why: one read drains what the local provider wrote; the stream window bounds the rest.
CONNECT_TIMEOUT = 5.0
# why: Envoy's connect timeout, for both the proxy and the local provider.
HANDSHAKE_TIMEOUT = 10.0
# why: the proxy answers a hello in milliseconds; this only bounds a stuck server.
BACKOFF_INITIAL = 0.5
# why: a proxy restart is back within a second; retry soon after the first failure.
BACKOFF_MAX = 30.0
# why: a long outage costs one attempt every 30 s, not a reconnect storm.
STABLE_SESSION_SECONDS = 10.0
# why: a tunnel that lived this long was healthy: the next reconnect starts fast again.
LAPTOP_STREAM_WINDOW = 1 << 20
# why: what the proxy may send down one virtual connection before the laptop acknowledges:
# a large gRPC message crosses a tunnel at link speed instead of 64 KiB per round trip (the
# memory is the laptop's own, and it reads as fast as its local provider takes the bytes).
LAPTOP_CONNECTION_WINDOW = 8 << 20
# why: a few virtual connections at full stream window each.
MAX_ERROR_DETAIL = 200
# why: the `laneway-error` header only has to name the local failure, in one short line.
CLIENT_LIMITS = H2Limits(
    initial_stream_window=LAPTOP_STREAM_WINDOW, initial_connection_window=LAPTOP_CONNECTION_WINDOW
)
"""The laptop's HTTP/2 server limits: laneway's defaults (TESTS.md §8) but the windows."""


class TunnelRefused(Exception):
    """The proxy refused the tunnel; ``message`` is its reason, ``retry`` whether to try later."""

    def __init__(self, message: str, *, retry: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.retry = retry


@dataclass(frozen=True)
class LocalService:
    announced: Announced
    target: str
    """host:port of the local provider."""


@dataclass(frozen=True)
class Connected:
    """What the proxy said when it accepted the tunnel."""

    server: str
    env: str
    session: int
    heartbeat: float
    expires_at: int
    endpoints: dict[str, str | None]
    addresses: tuple[str, ...]


def banner(info: Connected, services: Sequence[LocalService]) -> list[str]:
    """The lines printed on connect: env, services, the header to send, an example call."""
    env = info.env
    lines = [f"laneway tunnel up: env {env} (session #{info.session} on {info.server})"]
    for local in services:
        a = local.announced
        lines.append(f"  {a.key} ({a.protocol}) -> {local.target}")
    lines.append(f"  calls tagged with env {env} reach this laptop; untagged calls never do.")
    lines.append(f"  send the header   x-env: {env}   (Dubbo: attachment dubbo.tag={env})")
    dubbo = info.endpoints.get("dubbo")
    grpc = info.endpoints.get("grpc")
    for local in services:
        a = local.announced
        if a.protocol == "dubbo" and dubbo:
            version = f" --version {a.key.version}" if a.key.version != "0.0.0" else ""
            lines.append(
                f"  try: laneway call dubbo://{dubbo}/{a.key.interface} METHOD '[]'"
                f"{version} --tag {env}"
            )
            break
        if a.protocol == "grpc" and grpc:
            lines.append(
                f"  try: grpcurl -plaintext -H 'x-env: {env}' {grpc} {a.key.interface}/METHOD"
            )
            break
    lines.append("  Ctrl-C leaves; the proxy forgets these services at once.")
    return lines


class TunnelClient:
    def __init__(
        self,
        server: str,
        token: str,
        services: Sequence[LocalService],
        *,
        client_name: str = "",
        env: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        out: Callable[[str], None] = print,
        backoff_initial: float = BACKOFF_INITIAL,
        backoff_max: float = BACKOFF_MAX,
        rng: random.Random | None = None,
    ) -> None:
        split_address(server)
        self.server = server
        self.services = tuple(services)
        self.connected: Connected | None = None
        self.sessions = 0
        self.local_connects = 0
        self.mux: Mux | None = None
        self._hello = Hello("open", token, client_name, env, tuple(s.announced for s in services))
        self._ssl = ssl_context
        self._out = out
        self._backoff = (backoff_initial, backoff_max)
        self._rng = rng if rng is not None else random.Random()

    async def run(
        self, *, task_status: trio.TaskStatus[Connected] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Keep the tunnel up until cancelled. ``started(info)`` on the first connect.
        Raises TunnelRefused when the proxy refuses for a reason retrying cannot fix."""
        started = False
        delay = self._backoff[0]

        def on_connected(info: Connected) -> None:
            nonlocal started
            for line in banner(info, self.services):
                self._out(line)
            if not started:
                started = True
                task_status.started(info)

        while True:
            began = trio.current_time()
            why: str
            try:
                why = await self.run_once(on_connected)
            except TunnelRefused as exc:
                if not exc.retry:
                    raise
                why = exc.message
            except (OSError, trio.BrokenResourceError, trio.TooSlowError) as exc:
                why = str(exc) or type(exc).__name__
            if self.mux is not None and self.mux.goaway_code == REPLACED:
                raise TunnelRefused("a newer tunnel for the same services replaced this one")
            if trio.current_time() - began >= STABLE_SESSION_SECONDS:
                delay = self._backoff[0]
            pause = delay * (0.5 + self._rng.random() / 2)
            self._out(f"laneway tunnel: {why}; reconnecting in {pause:.1f} s")
            await trio.sleep(pause)
            delay = min(self._backoff[1], delay * 2)

    async def run_once(self, on_connected: Callable[[Connected], None]) -> str:
        """One session: returns why it ended (the proxy left, heartbeats stopped...)."""
        self.mux = None
        stream = await dial(self.server, self._ssl)
        try:
            reply, leftover = await handshake(stream, self._hello)
            info = Connected(
                self.server,
                str(reply["env"]),
                int(reply["session"]),
                float(reply["heartbeat"]),
                int(reply.get("expires_at", 0)),
                dict(reply.get("endpoints") or {}),
                tuple(str(s.get("address", "")) for s in reply.get("services", [])),
            )
            mux = Mux(
                stream,
                client_side=False,
                limits=CLIENT_LIMITS,
                heartbeat_interval=info.heartbeat,
                on_request=self._serve_stream,
                initial=leftover,
            )
            self.mux = mux
            self.connected = info
            self.sessions += 1
            async with trio.open_nursery() as nursery:
                await nursery.start(mux.run)
                on_connected(info)
            return mux.reason or "tunnel closed"
        finally:
            self.connected = None
            await trio.aclose_forcefully(stream)

    async def _serve_stream(self, stream: VirtualStream, headers: Headers) -> None:
        """One virtual connection from the proxy: pipe it to the local provider."""
        fields = dict(headers)
        if fields.get(b":method") != b"CONNECT":
            stream.respond([(b":status", b"405")], end_stream=True)
            return
        index = parse_service_authority(fields.get(b":authority", b""), len(self.services))
        if index is None:
            stream.respond([(b":status", b"404")], end_stream=True)
            return
        host, port = split_address(self.services[index].target)
        try:
            with trio.fail_after(CONNECT_TIMEOUT):
                local = await trio.open_tcp_stream(host, port)
        except (OSError, trio.TooSlowError) as exc:
            detail = f"laptop cannot reach {host}:{port}: {exc}".encode("ascii", "replace")
            stream.respond(
                [(b":status", b"502"), (b"laneway-error", detail[:MAX_ERROR_DETAIL])],
                end_stream=True,
            )
            return
        self.local_connects += 1
        stream.respond([(b":status", b"200")])
        async with local:
            await pipe_both_ways(stream, local)


async def run_until_signalled(client: TunnelClient) -> TunnelRefused | None:
    """`laneway tunnel`: run ``client`` until SIGINT/SIGTERM (Ctrl-C) or a final refusal,
    which is returned. Leaving closes the connection: the proxy unpublishes at once."""
    refused: TunnelRefused | None = None
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:

            async def tunnel() -> None:
                nonlocal refused
                try:
                    await client.run()
                except TunnelRefused as exc:
                    refused = exc
                nursery.cancel_scope.cancel()

            nursery.start_soon(tunnel)
            async for _signum in signals:
                break
            nursery.cancel_scope.cancel()
    return refused


async def dial(server: str, ssl_context: ssl.SSLContext | None) -> trio.abc.Stream:
    """A connection to the proxy's tunnel listener (TLS when ``ssl_context``)."""
    host, port = split_address(server)
    with trio.fail_after(CONNECT_TIMEOUT):
        tcp = await trio.open_tcp_stream(host, port)
    if ssl_context is None:
        return tcp
    return trio.SSLStream(tcp, ssl_context, server_hostname=host)


async def handshake(stream: trio.abc.Stream, hello: Hello) -> tuple[dict[str, Any], bytes]:
    """Send ``hello``; return the proxy's accepting answer and the bytes read past it.
    Raises TunnelRefused with the proxy's reason."""
    reader = MessageReader()
    with trio.fail_after(HANDSHAKE_TIMEOUT):
        await stream.send_all(encode_message(hello.as_json()))
        while True:
            try:
                reply = reader.next()
            except WireError as exc:
                raise trio.BrokenResourceError(f"bad answer from the proxy: {exc}") from exc
            if reply is not None:
                break
            data = await stream.receive_some(RECEIVE_SIZE)
            if not data:
                raise trio.BrokenResourceError("the proxy closed the connection")
            reader.feed(bytes(data))
    if not reply.get("ok"):
        raise TunnelRefused(str(reply.get("error", "refused")), retry=bool(reply.get("retry")))
    return reply, reader.leftover()


async def list_tunnels(
    server: str, token: str, ssl_context: ssl.SSLContext | None = None
) -> list[dict[str, Any]]:
    """The proxy's live tunnels (any valid token may ask). Raises TunnelRefused / OSError."""
    stream = await dial(server, ssl_context)
    try:
        reply, _ = await handshake(stream, Hello("list", token))
    finally:
        await trio.aclose_forcefully(stream)
    tunnels = reply.get("tunnels", [])
    return [t for t in tunnels if isinstance(t, dict)]


async def _copy(src: trio.abc.Stream, dst: trio.abc.HalfCloseableStream) -> None:
    while True:
        data = await src.receive_some(RECEIVE_SIZE)
        if not data:
            await dst.send_eof()
            return
        await dst.send_all(data)


async def pipe_both_ways(a: trio.abc.HalfCloseableStream, b: trio.abc.HalfCloseableStream) -> None:
    """Copy a->b and b->a until both ends finished; a break on either side ends both."""

    async def one(src: trio.abc.HalfCloseableStream, dst: trio.abc.HalfCloseableStream) -> None:
        try:
            await _copy(src, dst)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            nursery.cancel_scope.cancel()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(one, a, b)
        nursery.start_soon(one, b, a)
