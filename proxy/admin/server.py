"""The admin HTTP listener: h11 (sans-IO HTTP/1.1) on trio streams, and its routes.

```
GET  /             status page (HTML)          GET /upstreams   hosts, pools, counters
GET  /ready        200, or 503 while draining  GET /registry    services and providers
GET  /metrics      Prometheus text             GET /explain?service=..&method=..&h=x-env:e
GET  /config_dump  effective config + hashes   GET /tunnels     live tunnel sessions
POST /reload       re-read the routes file     POST /drain      begin a graceful drain
```

Reads answer GET and HEAD; mutations answer POST only (405 otherwise), so a link or an
image tag on some page cannot reload or drain a proxy. It listens on 127.0.0.1 unless
configured otherwise. Every connection is bounded in bytes and time.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

import h11
import trio

from proxy.admin import page, views
from proxy.net.listener import Listener
from proxy.telemetry.prometheus import CONTENT_TYPE as PROMETHEUS_TYPE

if TYPE_CHECKING:
    from proxy.serve import Proxy

log = logging.getLogger("laneway.admin")

MAX_REQUEST_BYTES = 64 * 1024
# why: an admin request is a line and a few headers; POST bodies are ignored.
REQUEST_TIMEOUT_S = 10.0
# why: a client that has not sent a whole request in 10 s is stuck or hostile (slowloris).
MAX_ADMIN_CONNECTIONS = 64
# why: the admin port serves people and a scraper; more connections at once is abuse.
RECEIVE_SIZE = 16 * 1024

JSON_TYPE = "application/json"
HTML_TYPE = "text/html; charset=utf-8"
READ_METHODS = frozenset({b"GET", b"HEAD"})
WRITE_METHODS = frozenset({b"POST"})


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    content_type: str = JSON_TYPE
    headers: tuple[tuple[str, str], ...] = ()


def json_reply(status: int, doc: object) -> Reply:
    return Reply(status, (json.dumps(doc, indent=2) + "\n").encode())


class AdminApp:
    """Routes one request to its view. Synchronous: every view reads in-memory state."""

    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy
        self._reads = {
            "/": self._status_page,
            "/ready": self._ready,
            "/metrics": self._metrics,
            "/config_dump": lambda _q: json_reply(200, views.config_dump(self.proxy)),
            "/upstreams": lambda _q: json_reply(200, views.upstreams(self.proxy)),
            "/registry": lambda _q: json_reply(200, views.registry(self.proxy)),
            "/tunnels": lambda _q: json_reply(200, views.tunnels(self.proxy)),
            "/explain": self._explain,
        }
        self._writes = {"/reload": self._reload, "/drain": self._drain}

    def handle(self, method: bytes, target: bytes) -> Reply:
        parts = urlsplit(target.decode("latin-1"))
        query = parse_qs(parts.query, keep_blank_values=True)
        path = parts.path
        if path in self._reads:
            if method not in READ_METHODS:
                return self._not_allowed("GET, HEAD")
            return self._reads[path](query)
        if path in self._writes:
            if method not in WRITE_METHODS:
                return self._not_allowed("POST")
            return self._writes[path]()
        return json_reply(404, {"error": f"no such page: {path}"})

    @staticmethod
    def _not_allowed(allow: str) -> Reply:
        reply = json_reply(405, {"error": f"method not allowed; use {allow}"})
        return Reply(reply.status, reply.body, reply.content_type, (("allow", allow),))

    def _status_page(self, _query: Mapping[str, Sequence[str]]) -> Reply:
        return Reply(200, page.render(self.proxy).encode(), HTML_TYPE)

    def _ready(self, _query: Mapping[str, Sequence[str]]) -> Reply:
        ok, doc = views.ready(self.proxy)
        return json_reply(200 if ok else 503, doc)

    def _metrics(self, _query: Mapping[str, Sequence[str]]) -> Reply:
        text = self.proxy.telemetry.metrics_text()
        if not self.proxy.config.telemetry.metrics:
            text = "# metrics are off (telemetry.metrics: false)\n"
        return Reply(200, text.encode(), PROMETHEUS_TYPE)

    def _explain(self, query: Mapping[str, Sequence[str]]) -> Reply:
        try:
            return json_reply(200, views.explain(self.proxy, query))
        except views.BadQuery as exc:
            return json_reply(400, {"error": str(exc)})

    def _reload(self) -> Reply:
        ok = self.proxy.reload()
        doc = {"ok": ok, **(views.last_reload(self.proxy) or {})}
        return json_reply(200 if ok else 422, doc)

    def _drain(self) -> Reply:
        log.info("drain requested through the admin API")
        self.proxy.shutdown()
        return json_reply(202, {"draining": True})


async def _read_request(conn: h11.Connection, stream: trio.abc.Stream) -> h11.Request | None:
    """The next whole request (its body read and dropped), or None when the peer is done."""
    request: h11.Request | None = None
    body = 0
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            data = await stream.receive_some(RECEIVE_SIZE)
            conn.receive_data(bytes(data))  # b"" tells h11 the peer closed
            continue
        if isinstance(event, h11.Request):
            request = event
        elif isinstance(event, h11.Data):
            body += len(event.data)
            if body > MAX_REQUEST_BYTES:
                raise h11.RemoteProtocolError("request body too large", error_status_hint=413)
        elif isinstance(event, h11.EndOfMessage):
            return request
        elif isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
            return None


async def _send(conn: h11.Connection, stream: trio.abc.Stream, reply: Reply, head: bool) -> None:
    headers = [
        ("content-type", reply.content_type),
        ("content-length", str(len(reply.body))),
        ("cache-control", "no-store"),
        *reply.headers,
    ]
    out = conn.send(h11.Response(status_code=reply.status, headers=headers)) or b""
    if not head:
        out += conn.send(h11.Data(data=reply.body)) or b""
    out += conn.send(h11.EndOfMessage()) or b""
    await stream.send_all(out)


async def serve_connection(app: AdminApp, stream: trio.abc.Stream) -> None:
    """Serve requests on one connection (keep-alive) until the peer or a limit ends it."""
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_REQUEST_BYTES)
    try:
        while True:
            request = None
            with trio.move_on_after(REQUEST_TIMEOUT_S):
                request = await _read_request(conn, stream)
            if request is None:
                return
            reply = app.handle(request.method, request.target)
            await _send(conn, stream, reply, head=request.method == b"HEAD")
            if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                return
            conn.start_next_cycle()
    except h11.RemoteProtocolError as exc:
        if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            reply = json_reply(exc.error_status_hint, {"error": str(exc)})
            # A best-effort 4xx: the peer may already be gone, or h11 may refuse a reply now.
            with contextlib.suppress(
                trio.BrokenResourceError, trio.ClosedResourceError, h11.LocalProtocolError
            ):
                await _send(conn, stream, reply, head=False)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        return  # the peer went away mid-reply: nothing to tell it
    finally:
        await trio.aclose_forcefully(stream)


@dataclass
class AdminListenerStats:
    accepted: int = 0
    refused_connections: int = 0  # past MAX_ADMIN_CONNECTIONS: closed rather than queued


async def serve_admin(
    proxy: Proxy, listen: str, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED
) -> None:
    """Listen on ``listen`` (``host:port``; port 0 picks one) and serve the admin API until
    cancelled. Reports the bound ``host:port`` once it accepts."""
    app = AdminApp(proxy)
    listener = Listener(
        partial(serve_connection, app),
        max_connections=MAX_ADMIN_CONNECTIONS,
        counters=AdminListenerStats(),
    )
    await listener.run(listen, task_status=task_status)
