"""Live tunnels on the admin API: a real laptop (tunnel client + local provider) joins env
``alice``; /tunnels, /metrics and the status page show it, and stop showing it after."""

from __future__ import annotations

import http.client
import json

import trio

from proxy.admin.server import serve_admin
from proxy.demo import GREETER
from proxy.registry.model import split_address
from tests.integration.admin.test_status_page import Cells
from tests.integration.tunnel.stack import ENV, running_tunnel_stack, until

HTTP_TIMEOUT_S = 10.0
# why: every admin answer is computed from memory; 10 s means the server is stuck.


async def get(admin: str, path: str) -> tuple[int, bytes]:
    host, port = split_address(admin)

    def fetch() -> tuple[int, bytes]:
        conn = http.client.HTTPConnection(host, port, timeout=HTTP_TIMEOUT_S)
        try:
            conn.request("GET", path)
            reply = conn.getresponse()
            return reply.status, reply.read()
        finally:
            conn.close()

    return await trio.to_thread.run_sync(fetch)


def gauge(text: str, name: str) -> float:
    (line,) = [ln for ln in text.splitlines() if ln.startswith(name + " ")]
    return float(line.rsplit(" ", 1)[1])


async def test_a_live_tunnel_shows_on_the_admin_api_and_page() -> None:
    async with running_tunnel_stack() as stack:
        admin = await stack.nursery.start(serve_admin, stack.proxy, "127.0.0.1:0")
        status, body = await get(admin, "/tunnels")
        assert status == 200 and json.loads(body)["tunnels"] == []
        laptop = await stack.laptop()
        _status, body = await get(admin, "/tunnels")
        doc = json.loads(body)
        assert doc["enabled"] is True
        (session,) = doc["tunnels"]
        assert session["env"] == ENV and session["client"] == "test-laptop"
        assert doc["stats"]["accepted"] == 1
        _status, metrics = await get(admin, "/metrics")
        assert gauge(metrics.decode(), "laneway_tunnels") == 1
        _status, html = await get(admin, "/")
        page = Cells()
        page.feed(html.decode())
        assert page.cells[(GREETER, ENV)] == ("own", ENV)  # the laptop serves alice
        assert "test-laptop" in " ".join(page.text)
        laptop.leave()
        await until(lambda: not stack.tunnel.sessions())
        _status, metrics = await get(admin, "/metrics")
        assert gauge(metrics.decode(), "laneway_tunnels") == 0
        _status, html = await get(admin, "/")
        page = Cells()
        page.feed(html.decode())
        assert (GREETER, ENV) not in page.cells  # an undeclared env lives only while served
