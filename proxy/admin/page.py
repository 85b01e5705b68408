"""The admin status page (``GET /``): one self-contained HTML document, no scripts.

Its heart is the env x service matrix: for every service the proxy knows and every env
(main first, then the routes file's envs and any env a provider registered in), the lane a
plain call tagged with that env would be served by *right now* -- routed through the live
router, so health, ejections, strict envs and expiry all show. A cell is green when the env
serves the call itself, grey when it falls back (to the lane it names), red when the call
has no route. Below: the last reload, live tunnels, upstream hosts and the registry.
"""

from __future__ import annotations

import html
import time
from typing import TYPE_CHECKING

import trio

from proxy import __version__
from proxy.admin.views import ALL_PROTOCOLS, known_services
from proxy.call import Call
from proxy.registry.model import ServiceKey
from routing import RouteTable

if TYPE_CHECKING:
    from proxy.serve import Proxy

MAX_MATRIX_ROWS = 500
# why: each cell is a live routing decision (~3-30 us) computed on the trio loop; 500 rows
# x a few envs stays within tens of milliseconds, and /registry lists everything anyway.

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#1b1f24;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:16px;margin:24px 0 8px}
.sub{color:#57606a}table{border-collapse:collapse}
th,td{border:1px solid #d0d7de;padding:4px 10px;text-align:left}
th{background:#f6f8fa}td.own{background:#d3f5dc}td.fallback{background:#eaeef2;color:#57606a}
td.none{background:#ffd7d5;color:#82071e}.ok{color:#116329}.bad{color:#82071e}
code{font:12px ui-monospace,monospace}
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def tag_metadata(table: RouteTable, env: str) -> dict[str, str]:
    """Metadata that asks for ``env`` through the table's first configured carrier (empty
    for main: untagged traffic is what main serves)."""
    if env == table.main:
        return {}
    tag = table.config.tag
    if tag.header:
        return {tag.header.lower(): env}
    if tag.attachment:
        return {tag.attachment.lower(): env}
    if tag.baggage:
        return {"baggage": f"{tag.baggage}={env}"}
    return {}


def envs(proxy: Proxy, services: list[ServiceKey]) -> list[str]:
    """main, then declared envs, then envs only seen in providers (each once, sorted)."""
    table = proxy.tables.current
    seen = set(table.config.environments)
    for key in services:
        seen.update(proxy.lookup(key))
    seen.discard(table.main)
    return [table.main, *sorted(seen)]


def matrix_cell(proxy: Proxy, key: ServiceKey, env: str) -> tuple[str, str, str]:
    """(css class, text, tooltip) for the call ``key`` tagged ``env``."""
    table = proxy.tables.current
    decision = proxy.router.route(Call(key, "", ALL_PROTOCOLS, tag_metadata(table, env)))
    tried = ", ".join(f"{a.env}: {a.outcome.value}" for a in decision.lanes_tried)
    if decision.provider is None or decision.lane is None:
        return "none", "no route", decision.error or tried
    tip = f"{decision.provider.address} ({tried})"
    if decision.lane == env:
        return "own", decision.lane, tip
    return "fallback", f"→ {decision.lane}", tip


def _matrix(proxy: Proxy) -> str:
    services = known_services(proxy)
    if not services:
        return "<p>No services known yet: no provider has registered.</p>"
    note = ""
    if len(services) > MAX_MATRIX_ROWS:
        note = f"<p>Showing {MAX_MATRIX_ROWS} of {len(services)} services (see /registry).</p>"
        services = services[:MAX_MATRIX_ROWS]
    columns = envs(proxy, services)
    head = "".join(f"<th>{_e(env)}</th>" for env in columns)
    rows = []
    for key in services:
        cells = []
        for env in columns:
            css, text, tip = matrix_cell(proxy, key, env)
            cells.append(
                f'<td class="{css}" data-env="{_e(env)}" title="{_e(tip)}">{_e(text)}</td>'
            )
        name = key.interface if key.version == "0.0.0" else f"{key.interface}:{key.version}"
        rows.append(
            f'<tr data-service="{_e(key.interface)}"><th>{_e(name)}</th>{"".join(cells)}</tr>'
        )
    return note + (
        f'<table id="matrix"><tr><th>service \\ env</th>{head}</tr>{"".join(rows)}</table>'
        '<p class="sub">green: the env serves it; grey: falls back to the lane shown; '
        "red: no route.</p>"
    )


def _reload(proxy: Proxy) -> str:
    last = proxy.telemetry.state.last_reload
    table = proxy.tables.current
    parts = [f"<p>Route table <code>{_e(table.version)}</code>"]
    path = proxy.config.routes_path
    parts.append(f" from <code>{_e(path)}</code>" if path else " (default routes)")
    parts.append(f"; {proxy.tables.reloads} reload(s), {proxy.tables.reload_failures} failed.</p>")
    if last is not None:
        when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(last.at))
        css, word = ("ok", "succeeded") if last.ok else ("bad", "FAILED")
        parts.append(
            f'<p id="last-reload">Last (re)load <span class="{css}">{word}</span> at {when}'
        )
        if last.error:
            parts.append(f"<pre>{_e(last.error)}</pre>")
        parts.append("</p>")
    return "".join(parts)


def _tunnels(proxy: Proxy) -> str:
    if proxy.tunnel is None:
        return '<p id="tunnels">No live tunnels (the tunnel listener is off).</p>'
    sessions = proxy.tunnel.sessions()
    if not sessions:
        return '<p id="tunnels">No live tunnels.</p>'
    rows = []
    for s in sessions:
        since = time.strftime("%H:%M:%S UTC", time.gmtime(float(s["since"])))
        services = ", ".join(str(x["service"]) for x in s["services"])
        rows.append(
            f"<tr><td>{_e(s['env'])}</td><td>{_e(s['client'])}</td><td>{_e(s['peer'])}</td>"
            f"<td>{since}</td><td>{_e(s['open_streams'])}</td><td>{_e(services)}</td></tr>"
        )
    return (
        '<table id="tunnels"><tr><th>env</th><th>client</th><th>from</th><th>since</th>'
        f"<th>open streams</th><th>services</th></tr>{''.join(rows)}</table>"
    )


def _hosts(proxy: Proxy) -> str:
    hosts = proxy.health.snapshot(trio.current_time())
    if not hosts:
        return "<p>No upstream contacted yet.</p>"
    rows = "".join(
        f"<tr><td><code>{_e(addr)}</code></td><td>{_e(h['in_flight'])}</td>"
        f"<td>{'yes' if h['ejected'] else 'no'}</td><td>{'yes' if h['readonly'] else 'no'}</td>"
        f"<td>{_e(h['ejections'])}</td></tr>"
        for addr, h in hosts.items()
    )
    return (
        "<table><tr><th>provider</th><th>in flight</th><th>ejected</th><th>readonly</th>"
        f"<th>ejections</th></tr>{rows}</table>"
    )


def _registry(proxy: Proxy) -> str:
    state = proxy.telemetry.state
    age = "never"
    if state.registry_updated_at is not None:
        age = f"{time.time() - state.registry_updated_at:.1f} s ago"
    stale = proxy.registry.is_stale()
    flag = '<span class="bad">stale (frozen)</span>' if stale else '<span class="ok">live</span>'
    return (
        f"<p>{_e(proxy.config.registry.kind)} registry, {flag}; "
        f"{len(proxy.registry.services())} service(s); last change {age}.</p>"
    )


def render(proxy: Proxy) -> str:
    """The whole status page."""
    state = proxy.telemetry.state
    uptime = time.time() - state.started_at
    status = (
        '<span class="bad">draining</span>' if proxy.draining else '<span class="ok">ready</span>'
    )
    links = " · ".join(
        f'<a href="{p}">{p}</a>' for p in ("/metrics", "/config_dump", "/upstreams", "/registry")
    )
    return (
        "<!doctype html><html><head><meta charset=utf-8><title>laneway status</title>"
        f"<style>{_CSS}</style></head><body>"
        f"<h1>laneway {_e(__version__)}</h1>"
        f'<p class="sub" id="state">{status}, up {uptime:.0f} s · {links}</p>'
        f"<h2>Which lane serves each service</h2>{_matrix(proxy)}"
        f"<h2>Routes</h2>{_reload(proxy)}"
        '<form method="post" action="/reload"><button>Reload routes</button></form>'
        f"<h2>Tunnels</h2>{_tunnels(proxy)}"
        f"<h2>Upstreams</h2>{_hosts(proxy)}"
        f"<h2>Registry</h2>{_registry(proxy)}"
        "</body></html>"
    )
