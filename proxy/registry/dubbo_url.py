"""Foreign names for registry entries: Apache Dubbo provider URLs and Nacos service names.

A Dubbo 2 provider registers in ZooKeeper as a child of ``/dubbo/{interface}/providers``
whose *name* is its URL, URL-encoded the way ``java.net.URLEncoder`` does it::

    dubbo://10.0.0.7:20880/com.foo.Bar?application=shop&dubbo.tag=feature-login
        &group=g&interface=com.foo.Bar&methods=get,put&side=provider&version=1.0.0&weight=100

Parameters map onto ``ServiceKey`` / ``Provider`` as the table in docs/registry.md says;
parameters laneway has no field for are kept in ``Provider.metadata`` so a URL survives a
round trip. Every parse failure raises ``MalformedUrl`` (the ZooKeeper backend skips and
counts those nodes).
"""

from __future__ import annotations

import os
import time
from urllib.parse import quote, unquote_plus, urlsplit

from proxy.registry.model import (
    DEFAULT_WEIGHT,
    PROTOCOLS,
    InvalidRegistration,
    Provider,
    ServiceKey,
    metadata_of,
    normalize_env,
)

MAX_URL_LENGTH = 16 * 1024
# why: real Dubbo URLs with hundreds of methods stay under 8 KiB; bigger is poison (Z4).

MAX_URL_PARAMS = 256
# why: Dubbo URLs carry ~20 parameters; cap the parse so a hostile node costs O(1).

TAG_PARAM = "dubbo.tag"
"""The URL parameter Apache Dubbo's tag router reads: laneway's env."""

# Parameters that become Provider / ServiceKey fields rather than metadata.
_MAPPED = frozenset(
    {"interface", "version", "group", TAG_PARAM, "weight", "methods", "application", "side"}
)

# Parameters a Java Dubbo 2.7 provider writes; added (if absent) when laneway publishes so
# real Dubbo consumers accept the node.
_JAVA_DEFAULTS = {
    "anyhost": "false",
    "deprecated": "false",
    "dubbo": "2.0.2",
    "dynamic": "true",
    "generic": "false",
    "release": "laneway",
}


class MalformedUrl(ValueError):
    """A registry entry laneway cannot read as a provider (skipped and counted)."""


def java_url_encode(text: str) -> str:
    """Encode like ``java.net.URLEncoder.encode(text, "UTF-8")``: space -> ``+``, keeps ``.-*_``."""
    # quote() always keeps "~"; Java encodes it.
    return quote(text, safe=" .-*_").replace(" ", "+").replace("~", "%7E")


def java_url_decode(text: str) -> str:
    """Decode like ``java.net.URLDecoder.decode(text, "UTF-8")`` (``+`` is a space)."""
    return unquote_plus(text, errors="strict")


def parse_provider_url(text: str, *, source: str = "zookeeper") -> tuple[ServiceKey, Provider]:
    """Parse a Dubbo provider URL (encoded as a ZooKeeper node name, or plain).

    Raises ``MalformedUrl`` for anything that is not a usable provider: oversize, unknown
    scheme, port 0, missing interface, a consumer URL, a bad weight or env.
    """
    if len(text) > MAX_URL_LENGTH:
        raise MalformedUrl(f"URL longer than {MAX_URL_LENGTH} bytes")
    try:
        url = java_url_decode(text) if "://" not in text else text
        parts = urlsplit(url)
        if parts.scheme not in PROTOCOLS:
            raise MalformedUrl(f"unsupported scheme {parts.scheme!r}")
        params = _parse_query(parts.query)
        host, port = parts.hostname, parts.port
    except (ValueError, UnicodeDecodeError) as e:  # urlsplit/parse_qsl/port and decoding
        if isinstance(e, MalformedUrl):
            raise
        raise MalformedUrl(f"unreadable URL: {e}") from e
    if not host or not port:
        raise MalformedUrl("URL has no host or port (or port 0)")
    if params.get("side", "provider") != "provider":
        raise MalformedUrl(f"not a provider URL (side={params['side']})")
    interface = params.get("interface") or parts.path.lstrip("/")
    weight_text = params.get("weight", "")
    if weight_text and not weight_text.isdigit():
        raise MalformedUrl(f"invalid weight {weight_text!r}")
    methods = tuple(m for m in params.get("methods", "").split(",") if m)
    try:
        key = ServiceKey.of(interface, params.get("version"), params.get("group"))
        provider = Provider(
            address=f"[{host}]:{port}" if ":" in host else f"{host}:{port}",
            protocol=parts.scheme,
            env=normalize_env(params.get(TAG_PARAM)),
            weight=int(weight_text) if weight_text else DEFAULT_WEIGHT,
            methods=methods,
            application=params.get("application", ""),
            source=source,
            metadata=metadata_of((k, v) for k, v in params.items() if k not in _MAPPED),
        )
    except InvalidRegistration as e:
        raise MalformedUrl(str(e)) from e
    return key, provider


def _parse_query(query: str) -> dict[str, str]:
    """Split parameters the way Dubbo's ``URL.valueOf`` does: on ``&`` then the first ``=``,
    values taken verbatim (no second decoding); a bare ``name`` means ``name=name``."""
    parts = [p for p in query.split("&") if p]
    if len(parts) > MAX_URL_PARAMS:
        raise MalformedUrl(f"more than {MAX_URL_PARAMS} URL parameters")
    params = {}
    for part in parts:
        name, sep, value = part.partition("=")
        params[name] = value if sep else part
    return params


def provider_url(key: ServiceKey, provider: Provider, *, java_defaults: bool = False) -> str:
    """The plain (not encoded) Dubbo URL of ``provider``, parameters sorted as Java writes them.

    With ``java_defaults`` the URL also carries the parameters a Java provider writes
    (``dubbo``, ``pid``, ``timestamp``...), unless the provider's metadata sets them.
    """
    params: dict[str, str] = {}
    if java_defaults:
        params.update(_JAVA_DEFAULTS)
        params["pid"] = str(os.getpid())
        params["timestamp"] = str(int(time.time() * 1000))
    params.update(provider.metadata)
    params["interface"] = key.interface
    params["side"] = "provider"
    if key.dubbo_version:
        params["version"] = key.dubbo_version
    if key.dubbo_group:
        params["group"] = key.dubbo_group
    if provider.env != "main":
        params[TAG_PARAM] = provider.env
    if provider.weight != DEFAULT_WEIGHT:
        params["weight"] = str(provider.weight)
    if provider.methods:
        params["methods"] = ",".join(provider.methods)
    if provider.application:
        params["application"] = provider.application
    for k, v in params.items():
        if not k or any(c in k for c in "&=") or "&" in v:
            raise InvalidRegistration(f"parameter {k!r}={v!r} cannot be written in a Dubbo URL")
    query = "&".join(f"{k}={v}" for k, v in sorted(params.items()))
    return f"{provider.protocol}://{provider.address}/{key.interface}?{query}"


def provider_node_name(key: ServiceKey, provider: Provider, *, java_defaults: bool = True) -> str:
    """The ZooKeeper child name Java Dubbo would write for this provider (URL-encoded)."""
    return java_url_encode(provider_url(key, provider, java_defaults=java_defaults))


def providers_path(interface: str, root: str = "/dubbo") -> str:
    """``/dubbo/{interface}/providers``: Dubbo 2's interface-level registry layout."""
    return f"{root.rstrip('/')}/{interface}/providers"


def nacos_service_name(key: ServiceKey) -> str:
    """Nacos-style name ``providers:iface:version:group``; unversioned / default group empty."""
    return f"providers:{key.interface}:{key.dubbo_version}:{key.dubbo_group}"


def parse_nacos_service_name(name: str) -> ServiceKey:
    """Parse ``providers:iface:version:group`` (empty parts kept, ``providers:X::``)."""
    parts = name.split(":")
    if len(parts) != 4 or parts[0] != "providers":
        raise MalformedUrl(f"not a Nacos provider service name: {name!r}")
    try:
        return ServiceKey.of(parts[1], parts[2], parts[3])
    except InvalidRegistration as e:
        raise MalformedUrl(str(e)) from e
