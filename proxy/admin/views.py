"""The admin API's documents: pure functions of a running ``Proxy`` to JSON-ready dicts.

No I/O here (the HTTP shell is ``proxy.admin.server``): each view reads the proxy's live
objects -- config, route table, registry, host health, the data path's ``stats`` -- at the
moment it is asked, so tests can call them without a socket.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING

import trio

from proxy.call import Call
from proxy.forward import DUBBO_PROTOCOLS
from proxy.grpc_forward import GRPC_PROTOCOLS
from proxy.registry.model import InvalidRegistration, Provider, ServiceKey
from proxy.router import Candidate
from proxy.serve import static_lanes
from routing import Decision

if TYPE_CHECKING:
    from proxy.serve import Proxy

ALL_PROTOCOLS = (*DUBBO_PROTOCOLS, *GRPC_PROTOCOLS)
PROTOCOLS_BY_NAME: Mapping[str, tuple[str, ...]] = {
    "dubbo": DUBBO_PROTOCOLS,
    "grpc": GRPC_PROTOCOLS,
    "any": ALL_PROTOCOLS,
}
MAX_EXPLAIN_HEADERS = 32
# why: explain takes a handful of carriers; more is a mistake or abuse of the admin port.


class BadQuery(ValueError):
    """The request's query is unusable; the message says why (answered 400)."""


SECRET_WORDS = ("secret", "token", "password")
# Config keys whose values never leave the process (the hash still covers them).
REDACTED = "<redacted>"


def redact(doc: object) -> object:
    """``doc`` with the value of every key naming a secret replaced (when set)."""
    if isinstance(doc, dict):
        return {
            k: REDACTED
            if v is not None and any(w in str(k).lower() for w in SECRET_WORDS)
            else redact(v)
            for k, v in doc.items()
        }
    if isinstance(doc, list):
        return [redact(v) for v in doc]
    return doc


def config_hash(doc: object) -> str:
    """A stable hash of a JSON document (keys sorted), ``sha256:<hex>``."""
    canonical = json.dumps(doc, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def last_reload(proxy: Proxy) -> dict[str, object] | None:
    result = proxy.telemetry.state.last_reload
    return None if result is None else asdict(result)


def config_dump(proxy: Proxy) -> dict[str, object]:
    """The effective laneway.yaml (every default filled in, secrets redacted), the live
    routes, their hashes and the last reload's result."""
    config = proxy.config.model_dump(mode="json")
    table = proxy.tables.current
    routes = table.config.model_dump(mode="json")
    return {
        "config": redact(config),
        "hash": config_hash(config),
        "routes": {
            "path": None if proxy.config.routes_path is None else str(proxy.config.routes_path),
            "table_version": table.version,
            "config": routes,
            "hash": config_hash(routes),
            "reloads": proxy.tables.reloads,
            "reload_failures": proxy.tables.reload_failures,
            "last_error": proxy.tables.last_error,
        },
        "last_reload": last_reload(proxy),
    }


def ready(proxy: Proxy) -> tuple[bool, dict[str, object]]:
    """(ready, document): not ready once a drain began."""
    if proxy.draining:
        return False, {"ready": False, "reason": "draining"}
    return True, {"ready": True, "table_version": proxy.tables.current.version}


def upstreams(proxy: Proxy) -> dict[str, object]:
    """Upstream connections, host health and the data path's counters."""
    now = trio.current_time()
    return {
        "dubbo": {
            "connections": [
                {"address": a, "usable": c.usable}
                for a, c in sorted(proxy.pool.connections().items())
            ],
            "pool": asdict(proxy.pool.stats),
            "forwarder": asdict(proxy.forwarder.stats),
            "frontend": asdict(proxy.dubbo.stats),
        },
        "grpc": {
            "connections": [
                {"address": a, "usable": c.usable}
                for a, c in sorted(proxy.grpc_pool.connections().items())
            ],
            "pool": asdict(proxy.grpc_pool.stats),
            "forwarder": asdict(proxy.grpc_forwarder.stats),
            "frontend": asdict(proxy.grpc.stats),
        },
        "hosts": proxy.health.snapshot(now),
        "ejections_total": proxy.health.ejections_total,
        "panics": proxy.router.panics,
        "in_flight": dict(proxy.telemetry.state.in_flight),
    }


def tunnels(proxy: Proxy) -> dict[str, object]:
    """Live tunnel sessions and the tunnel server's counters (empty when it is off)."""
    if proxy.tunnel is None:
        return {"enabled": False, "tunnels": [], "stats": {}}
    return {
        "enabled": True,
        "tunnels": proxy.tunnel.sessions(),
        "stats": asdict(proxy.tunnel.stats),
    }


def known_services(proxy: Proxy) -> list[ServiceKey]:
    """Every service the proxy can route: the registry's and the routes file's static ones."""
    keys = set(proxy.registry.services())
    keys.update(static_lanes(proxy.tables.current))
    return sorted(keys, key=lambda k: (k.interface, k.version, k.group))


def _provider(p: Provider) -> dict[str, object]:
    return {
        "address": p.address,
        "protocol": p.protocol,
        "env": p.env,
        "weight": p.weight,
        "application": p.application,
        "source": p.source,
        "methods": list(p.methods),
    }


def registry(proxy: Proxy) -> dict[str, object]:
    """Every known service with its providers by env, staleness and the backend's counters."""
    state = proxy.telemetry.state
    updated = state.registry_updated_at
    services = []
    for key in known_services(proxy):
        lanes = proxy.lookup(key)
        services.append(
            {
                "interface": key.interface,
                "version": key.version,
                "group": key.group,
                "stale": proxy.registry.is_stale(key),
                "lanes": {env: [_provider(p) for p in ps] for env, ps in sorted(lanes.items())},
            }
        )
    return {
        "backend": proxy.config.registry.kind,
        "stale": proxy.registry.is_stale(),
        "last_update": updated,
        "age_s": None if updated is None else round(time.time() - updated, 3),
        "changes": state.registry_changes,
        "stats": proxy.registry.stats.as_dict(),
        "services": services,
    }


def _one(query: Mapping[str, Sequence[str]], name: str) -> str | None:
    values = query.get(name)
    if not values:
        return None
    if len(values) > 1:
        raise BadQuery(f"{name} given {len(values)} times")
    return values[0]


def parse_headers(values: Iterable[str]) -> list[tuple[str, str]]:
    """``h=NAME:VALUE`` query values -> (lower-case name, value) pairs."""
    out: list[tuple[str, str]] = []
    for item in values:
        name, sep, value = item.partition(":")
        if not sep or not name.strip():
            raise BadQuery(f"h wants NAME:VALUE, got {item!r}")
        out.append((name.strip().lower(), value.strip()))
    if len(out) > MAX_EXPLAIN_HEADERS:
        raise BadQuery(f"at most {MAX_EXPLAIN_HEADERS} h= values")
    return out


def resolve_key(proxy: Proxy, interface: str, version: str | None, group: str | None) -> ServiceKey:
    """The service a query names. Without version/group, the one known service with that
    interface when there is exactly one (as the CLI's "any version"), else the defaults."""
    try:
        if version is None or group is None:
            matches = [
                k
                for k in known_services(proxy)
                if k.interface == interface
                and (version is None or k.version == ServiceKey.of(interface, version).version)
                and (group is None or k.group == ServiceKey.of(interface, None, group).group)
            ]
            if len(matches) == 1:
                return matches[0]
        return ServiceKey.of(interface, version, group)
    except InvalidRegistration as exc:
        raise BadQuery(str(exc)) from exc


def explain_call(
    proxy: Proxy, key: ServiceKey, method: str, headers: Sequence[tuple[str, str]], protocol: str
) -> Decision[Candidate]:
    """Route a would-be call with the proxy's live providers and health (nothing is sent)."""
    metadata: dict[str, str] = {}
    for name, value in headers:
        metadata.setdefault(name, value)
    call = Call(key, method, PROTOCOLS_BY_NAME[protocol], metadata)
    return proxy.router.route(call)


def explain(proxy: Proxy, query: Mapping[str, Sequence[str]]) -> dict[str, object]:
    """``/explain?service=S&method=M&h=x-env:feature-1[&version=&group=&protocol=]``: the
    same JSON decision as ``laneway explain --format json``, from live state."""
    service = _one(query, "service")
    if not service:
        raise BadQuery("service is required")
    protocol = _one(query, "protocol") or "any"
    if protocol not in PROTOCOLS_BY_NAME:
        raise BadQuery(f"protocol must be one of {', '.join(PROTOCOLS_BY_NAME)}")
    key = resolve_key(proxy, service, _one(query, "version"), _one(query, "group"))
    headers = parse_headers(query.get("h", ()))
    decision = explain_call(proxy, key, _one(query, "method") or "", headers, protocol)
    table = proxy.tables.current
    chain: list[str] = []
    for step in table.chain(decision.env):
        chain.append(step.env)
        if step.strict:
            break
    return {
        **decision.to_dict(),
        "chain": chain,
        "version": key.version,
        "group": key.group,
        "ok": decision.ok,
    }
