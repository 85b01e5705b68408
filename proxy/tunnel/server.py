"""The proxy's side of `laneway tunnel`: the tunnel listener, sessions, and the pool's dialer.

```
TunnelServer.run
├── revocation / expiry watcher     (closes tunnels whose token was revoked or expired)
└── one task per laptop connection  (handshake -> Mux (HTTP/2 client) -> publish ... unpublish)
```

A laptop dials in, says hello with its token and services; the server checks the token
(signature, expiry, revocation, protected envs, service scope) and refuses with a clear
message, or claims the services in **the token's env** (never the one the client names),
publishes one ``Provider(source="tunnel")`` per service at a ``tunnel:<n>`` address, and runs
the tunnel's HTTP/2 until it ends; then it unpublishes them at once. The upstream pools dial
``tunnel:<n>`` through :meth:`TunnelServer.dial`, which opens a CONNECT stream on that
laptop's tunnel: the Dubbo and HTTP/2 upstream connections run over it unchanged.

Audit: every accept, refusal and close is logged on ``laneway.tunnel.audit`` and kept in
``TunnelServer.audit`` (the last ``MAX_AUDIT_ENTRIES``). Tokens and secrets never are: a
token is named by its id (its SHA-256).
"""

from __future__ import annotations

import collections
import logging
import math
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from proxy.codecs.grpc.limits import H2Limits
from proxy.registry.backend import RegistryBackend
from proxy.registry.model import Provider, ServiceKey, split_address
from proxy.tunnel.limiter import AuthLimiter
from proxy.tunnel.mux import REPLACED, Mux
from proxy.tunnel.tokens import (
    TOKEN_ID_SHOWN,
    TokenClaims,
    TokenError,
    load_revoked,
    verify_token,
)
from proxy.tunnel.wire import (
    Announced,
    Hello,
    MessageReader,
    WireError,
    encode_message,
    parse_hello,
    refusal,
    service_authority,
)

log = logging.getLogger("laneway.tunnel")
audit_log = logging.getLogger("laneway.tunnel.audit")

TUNNEL_SCHEME = "tunnel"
"""Provider addresses ``tunnel:<n>``: the pool routes this scheme through the tunnel dialer."""
MAX_TUNNEL_ADDRESSES = 65535
# why: the address's number sits where a port does, so it passes the registry's host:port
# check; numbers are reused only after wrapping around, never while still live.
REVOCATION_POLL_SECONDS = 1.0
# why: TESTS.md T5: revocation closes a live tunnel within 5 s; one stat() a second is free.
MAX_AUDIT_ENTRIES = 1000
# why: recent history for `tunnel ls` and tests; the log keeps the rest.
RECEIVE_SIZE = 16 * 1024
# why: a hello is a few hundred bytes; reads stay small until HTTP/2 takes over.
MAX_HANDSHAKING = 256
# why: dialers that have not said hello yet cost a task each for up to the handshake timeout;
# beyond this many at once the excess is closed on accept (a connection flood, not laptops).
TUNNEL_STREAM_WINDOW = 65_536
# why: Envoy edge per-stream window: bounds what one virtual connection makes us hold.


@dataclass(frozen=True)
class TunnelSettings:
    secret: bytes
    protected_envs: frozenset[str] = frozenset()
    on_conflict: str = "refuse"
    revoked_file: Path | None = None
    heartbeat_interval: float = 10.0
    max_streams: int = 100
    max_buffered_bytes: int = 1 << 20
    auth_per_minute: float = 30.0
    auth_burst: int = 10
    handshake_timeout: float = 5.0
    ssl_context: ssl.SSLContext | None = None

    @property
    def limits(self) -> H2Limits:
        return H2Limits(
            initial_stream_window=min(TUNNEL_STREAM_WINDOW, self.max_buffered_bytes),
            initial_connection_window=self.max_buffered_bytes,
        )


@dataclass(frozen=True)
class AuditEntry:
    at: float
    event: str  # "open", "refused", "closed"
    peer: str
    env: str
    detail: str
    token_id: str = ""


@dataclass
class TunnelStats:
    accepted: int = 0
    refused: int = 0
    rate_limited: int = 0
    tls_failures: int = 0
    conflicts: int = 0
    replaced: int = 0
    evicted: int = 0  # ended by missed heartbeats
    revoked: int = 0  # closed because the token was revoked or expired
    protocol_errors: int = 0
    handshake_overflow: int = 0  # dialers closed on accept: too many handshakes at once


@dataclass(eq=False)
class Session:
    id: int
    env: str
    client: str
    peer: str
    since: float  # wall clock, for people
    claims: TokenClaims
    services: tuple[Announced, ...]
    addresses: tuple[str, ...]
    mux: Mux
    providers: list[tuple[ServiceKey, Provider]] = field(default_factory=list)

    def describe(self) -> str:
        return f"tunnel #{self.id} (client {self.client or '?'} from {self.peer})"

    def as_json(self) -> dict[str, Any]:
        return {
            "session": self.id,
            "env": self.env,
            "client": self.client,
            "peer": self.peer,
            "since": self.since,
            "expires_at": self.claims.expires_at,
            "token_id": self.claims.token_id[:TOKEN_ID_SHOWN],
            "open_streams": self.mux.open_streams,
            "services": [
                {"service": str(s.key), "protocol": s.protocol, "address": a}
                for s, a in zip(self.services, self.addresses, strict=True)
            ],
        }


class Refused(Exception):
    """A hello is refused; ``message`` goes back to the laptop (and to the audit log)."""

    def __init__(self, message: str, *, retry: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.retry = retry


class TunnelServer:
    """Accepts tunnels; ``await nursery.start(server.run, "host:port")`` reports the bound
    address. ``dial`` is the upstream pools' dialer for ``tunnel:`` addresses."""

    def __init__(
        self,
        settings: TunnelSettings,
        registry: RegistryBackend,
        *,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.stats = TunnelStats()
        self.audit: collections.deque[AuditEntry] = collections.deque(maxlen=MAX_AUDIT_ENTRIES)
        self.endpoints: dict[str, str | None] = {}
        """The proxy's consumer-facing addresses, for the laptop's banner."""
        self._wall = wall_clock
        self._limiter = AuthLimiter(settings.auth_per_minute, settings.auth_burst)
        self._revoked: frozenset[str] = frozenset()
        self._revoked_mtime: float | None = None
        self._sessions: dict[int, Session] = {}
        self._claims: dict[tuple[str, ServiceKey], Session] = {}
        self._slots: dict[str, tuple[Session, int]] = {}
        self._next_session = 1
        self._next_address = 1
        self._handshaking = 0

    # --- the pools' dialer ----------------------------------------------------------------

    async def dial(self, address: str) -> trio.abc.Stream:
        """A byte stream to the local provider behind ``tunnel:<n>``. Raises OSError when
        that tunnel is gone, full, or its laptop cannot reach the provider."""
        slot = self._slots.get(address)
        if slot is None:
            raise OSError(f"no live tunnel behind {address}")
        session, index = slot
        headers = [(b":method", b"CONNECT"), (b":authority", service_authority(index))]
        return await session.mux.open(headers)

    def sessions(self) -> list[dict[str, Any]]:
        """Live tunnels, JSON-ready (for `laneway tunnel ls` and the admin API)."""
        return [s.as_json() for s in sorted(self._sessions.values(), key=lambda s: s.id)]

    # --- lifecycle ------------------------------------------------------------------------

    async def run(self, listen: str, *, task_status: trio.TaskStatus[str]) -> None:
        host, port = listen.rsplit(":", 1)
        listeners = await trio.open_tcp_listeners(int(port), host=host.strip("[]"))
        sockname = listeners[0].socket.getsockname()
        bound = f"{sockname[0]}:{sockname[1]}"
        self._load_revoked()
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._watch_tokens)
                task_status.started(bound)
                await trio.serve_listeners(self._serve, listeners, handler_nursery=nursery)
        finally:
            for listener in listeners:
                listener.socket.close()

    async def _watch_tokens(self) -> None:
        while True:
            await trio.sleep(REVOCATION_POLL_SECONDS)
            self._load_revoked()
            now = self._wall()
            for session in list(self._sessions.values()):
                why = None
                if session.claims.token_id in self._revoked:
                    why = "its token was revoked"
                elif now >= session.claims.expires_at:
                    why = "its token expired"
                if why is not None and not session.mux.closed:
                    self.stats.revoked += 1
                    session.mux.close(why)

    def _load_revoked(self) -> None:
        path = self.settings.revoked_file
        if path is None:
            return
        try:
            mtime = path.stat().st_mtime
            if mtime == self._revoked_mtime:
                return
            self._revoked = load_revoked(path.read_text())
            self._revoked_mtime = mtime
        except OSError as exc:
            log.warning("cannot read the tunnel revocation list %s: %s", path, exc.strerror)

    # --- one laptop -----------------------------------------------------------------------

    async def _serve(self, raw: trio.SocketStream) -> None:
        """One laptop connection, start to end: the per-connection error boundary."""
        peer_host = "?"
        stream: trio.abc.Stream = raw
        try:
            peer_host = str(raw.socket.getpeername()[0])
            if self.settings.ssl_context is not None:
                stream = trio.SSLStream(raw, self.settings.ssl_context, server_side=True)
            await self._session(stream, peer_host)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            if isinstance(exc.__cause__, ssl.SSLError) or isinstance(exc, ssl.SSLError):
                self.stats.tls_failures += 1
                self._audit("refused", peer_host, "", f"TLS handshake failed: {exc.__cause__}")
        finally:
            await trio.aclose_forcefully(stream)

    async def _session(self, stream: trio.abc.Stream, peer: str) -> None:
        if self._handshaking >= MAX_HANDSHAKING:
            self.stats.handshake_overflow += 1
            return  # closed at once by _serve
        reader = MessageReader()
        hello: Hello | None = None
        self._handshaking += 1
        try:
            with trio.move_on_after(self.settings.handshake_timeout):
                try:
                    hello = await self._read_hello(stream, reader)
                except WireError as exc:
                    self.stats.protocol_errors += 1
                    await self._refuse(stream, peer, "", f"bad hello: {exc}")
                    return
        finally:
            self._handshaking -= 1
        if hello is None:
            return  # silent dialer or closed early: nothing to answer
        try:
            claims = self._authenticate(hello, peer)
            if hello.op == "list":
                await stream.send_all(encode_message({"ok": True, "tunnels": self.sessions()}))
                return
            session = self._claim(hello, claims, stream, peer, reader.leftover())
        except Refused as exc:
            await self._refuse(stream, peer, hello.env or "", exc.message, retry=exc.retry)
            return
        try:
            await self._run_session(session, stream)
        finally:
            with trio.CancelScope(shield=True):
                await self._release(session)

    async def _read_hello(self, stream: trio.abc.Stream, reader: MessageReader) -> Hello | None:
        while True:
            message = reader.next()
            if message is not None:
                return parse_hello(message)
            data = await stream.receive_some(RECEIVE_SIZE)
            if not data:
                return None
            reader.feed(bytes(data))

    def _authenticate(self, hello: Hello, peer: str) -> TokenClaims:
        now = self._wall()
        if not self._limiter.allow(peer, trio.current_time()):
            self.stats.rate_limited += 1
            wait = self._limiter.retry_after(peer)
            raise Refused(
                f"too many authentication attempts; retry in {math.ceil(wait)} s", retry=True
            )
        s = self.settings
        try:
            claims = verify_token(
                s.secret, hello.token, now, revoked=self._revoked, protected_envs=s.protected_envs
            )
        except TokenError as exc:
            raise Refused(f"token refused: {exc}") from exc
        if hello.env is not None and hello.env != claims.env:
            raise Refused(
                f"this token is for env {claims.env!r}; a tunnel cannot claim env {hello.env!r}"
            )
        outside = [str(a.key) for a in hello.services if not claims.allows(a.key.interface)]
        if outside:
            scope = ", ".join(claims.services)
            raise Refused(f"token for env {claims.env!r} only covers {scope}; not {outside}")
        return claims

    def _claim(
        self, hello: Hello, claims: TokenClaims, stream: trio.abc.Stream, peer: str, rest: bytes
    ) -> Session:
        """Check conflicts and take the services (no await: atomic among handshakes)."""
        env = claims.env
        holders = {
            self._claims[(env, a.key)] for a in hello.services if (env, a.key) in self._claims
        }
        holders = {h for h in holders if not h.mux.closed}
        if holders:
            first = min(holders, key=lambda h: h.id)
            taken = [str(a.key) for a in hello.services if self._claims.get((env, a.key)) is first]
            if self.settings.on_conflict != "replace":
                self.stats.conflicts += 1
                since = time.strftime("%H:%M:%S", time.localtime(first.since))
                raise Refused(
                    f"{', '.join(taken)} in env {env!r} is already tunnelled by "
                    f"{first.describe()} since {since}; stop it or set tunnel.on_conflict: replace"
                )
            for holder in holders:
                self.stats.replaced += 1
                holder.mux.close(f"replaced by a newer tunnel from {peer}", goaway=REPLACED)
        s = self.settings
        mux = Mux(
            stream,
            client_side=True,
            limits=s.limits,
            heartbeat_interval=s.heartbeat_interval,
            max_streams=s.max_streams,
            initial=rest,
        )
        addresses = tuple(self._allocate_address() for _ in hello.services)
        session = Session(
            self._next_session,
            env,
            hello.client,
            peer,
            self._wall(),
            claims,
            hello.services,
            addresses,
            mux,
        )
        self._next_session += 1
        self._sessions[session.id] = session
        for index, (announced, address) in enumerate(zip(hello.services, addresses, strict=True)):
            self._claims[(env, announced.key)] = session
            self._slots[address] = (session, index)
        return session

    def _allocate_address(self) -> str:
        for _ in range(MAX_TUNNEL_ADDRESSES):
            n = self._next_address
            self._next_address = n % MAX_TUNNEL_ADDRESSES + 1
            address = f"{TUNNEL_SCHEME}:{n}"
            if address not in self._slots:
                split_address(address)
                return address
        raise Refused("every tunnel address is in use", retry=True)

    async def _run_session(self, session: Session, stream: trio.abc.Stream) -> None:
        """Publish, welcome, then serve the tunnel's HTTP/2 until it ends. Published before
        the Welcome, so once the laptop prints its banner the env routes to it (a call
        arriving meanwhile waits in ``Mux.open`` for the HTTP/2 that starts right after)."""
        for announced, address in zip(session.services, session.addresses, strict=True):
            provider = Provider(
                address=address,
                protocol=announced.protocol,
                env=session.env,
                application=session.client,
                source="tunnel",
                metadata=(("tunnel.session", str(session.id)),),
            )
            await self.registry.publish(announced.key, provider)
            session.providers.append((announced.key, provider))
        welcome = {
            "ok": True,
            "env": session.env,
            "session": session.id,
            "heartbeat": self.settings.heartbeat_interval,
            "expires_at": session.claims.expires_at,
            "endpoints": self.endpoints,
            "services": [
                {**a.as_json(), "address": addr}
                for a, addr in zip(session.services, session.addresses, strict=True)
            ],
        }
        await stream.send_all(encode_message(welcome))
        self.stats.accepted += 1
        services = ", ".join(str(a.key) for a in session.services)
        self._audit(
            "open",
            session.peer,
            session.env,
            f"{session.describe()}: {services}",
            session.claims.token_id,
        )
        await session.mux.run()

    async def _release(self, session: Session) -> None:
        """The tunnel ended: unpublish first (the next call must not pick it), then forget."""
        if not session.mux.closed:
            session.mux.close("the tunnel's session ended")  # fail dials still waiting
        for key, provider in session.providers:
            await self.registry.unpublish(key, provider)
        session.providers.clear()
        self._sessions.pop(session.id, None)
        for (env, key), holder in list(self._claims.items()):
            if holder is session:
                del self._claims[(env, key)]
        for address in session.addresses:
            if self._slots.get(address, (None, 0))[0] is session:
                del self._slots[address]
        reason = session.mux.reason or "closed"
        if reason.startswith("missed"):
            self.stats.evicted += 1
        elif "protocol" in reason:
            self.stats.protocol_errors += 1
        self._audit(
            "closed",
            session.peer,
            session.env,
            f"{session.describe()}: {reason}",
            session.claims.token_id,
        )

    async def _refuse(
        self, stream: trio.abc.Stream, peer: str, env: str, message: str, *, retry: bool = False
    ) -> None:
        self.stats.refused += 1
        self._audit("refused", peer, env, message)
        with trio.move_on_after(self.settings.handshake_timeout):
            await stream.send_all(encode_message(refusal(message, retry=retry)))

    def _audit(self, event: str, peer: str, env: str, detail: str, token_id: str = "") -> None:
        entry = AuditEntry(self._wall(), event, peer, env, detail, token_id[:TOKEN_ID_SHOWN])
        self.audit.append(entry)
        level = logging.WARNING if event == "refused" else logging.INFO
        audit_log.log(
            level,
            "tunnel %s: peer=%s env=%s token=%s %s",
            event,
            peer,
            env or "-",
            entry.token_id or "-",
            detail,
        )
