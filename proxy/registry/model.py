"""The HSF-like registry model: service keys, providers, lanes (DESIGN.md §1, §5).

Everything here is a frozen, hashable value. The registry hands routing a plain
``Mapping[env, tuple[Provider, ...]]`` per service (``Lanes``) and knows nothing about
routing decisions. Translation to and from foreign names (Dubbo URLs, Nacos service names)
lives in ``proxy.registry.dubbo_url``; the normalisation rules live here, once.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

MAIN_ENV = "main"
"""The baseline lane: a provider that carries no tag is in it."""

DEFAULT_VERSION = "0.0.0"
"""HSF's version for a Dubbo service published without one (``""`` / null)."""

DEFAULT_GROUP = "HSF"
"""HSF's default group; Dubbo's empty group maps to it."""

DEFAULT_WEIGHT = 100
"""Apache Dubbo's default provider weight."""

MAX_WEIGHT = 1_000_000
# why: weights are relative; anything larger is a typo that would starve every other host.

PROTOCOLS = frozenset({"dubbo", "tri", "grpc"})
"""Provider protocols laneway can forward to."""

# why: env names travel in headers, attachments and ZooKeeper paths; keep them to a
# conservative token so every carrier can hold them unescaped.
_ENV_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
MAX_ENV_LENGTH = 63  # why: fits a DNS label, the strictest place an env name ends up
_BAD_INTERFACE = re.compile(r"[/:?&= \t\r\n]").search
MAX_CACHED_KEYS = 4_096
# why: ServiceKey.of runs once per proxied call with the same few (interface, version,
# group) triples; remembering them saves ~2 us a call. Callers choose the names, so the
# memo is bounded (a full memo is simply cleared).
_keys: dict[tuple[str, str | None, str | None], ServiceKey] = {}


class InvalidRegistration(ValueError):
    """A service key or provider that the registry refuses (bad env, address, weight...)."""


def normalize_version(version: str | None) -> str:
    """Dubbo's unversioned ``""``/``None`` is HSF's ``0.0.0``; other versions are kept."""
    return version if version else DEFAULT_VERSION


def normalize_group(group: str | None) -> str:
    """Dubbo's empty group is HSF's default group ``HSF``; other groups are kept."""
    return group if group else DEFAULT_GROUP


def normalize_env(env: str | None) -> str:
    """An untagged provider (``None``/``""``) is in ``main``. Raises on an invalid name."""
    if not env:
        return MAIN_ENV
    if not _ENV_RE.match(env):
        raise InvalidRegistration(f"invalid env name {env!r}")
    return env


@dataclass(frozen=True, slots=True, order=True)
class ServiceKey:
    """A service as HSF names it. Always stored normalised (see ``ServiceKey.of``)."""

    interface: str
    version: str = DEFAULT_VERSION
    group: str = DEFAULT_GROUP

    @classmethod
    def of(cls, interface: str, version: str | None = None, group: str | None = None) -> ServiceKey:
        """Build a normalised key. Raises ``InvalidRegistration`` on an empty interface."""
        asked = (interface, version, group)
        key = _keys.get(asked)
        if key is not None and cls is ServiceKey:
            return key
        if not interface or _BAD_INTERFACE(interface):
            raise InvalidRegistration(f"invalid interface name {interface!r}")
        key = cls(interface, normalize_version(version), normalize_group(group))
        if cls is ServiceKey:
            if len(_keys) >= MAX_CACHED_KEYS:
                _keys.clear()
            _keys[asked] = key
        return key

    @classmethod
    def parse(cls, text: str) -> ServiceKey:
        """Parse ``interface[:version[:group]]`` (the CLI's and the HSF unique name's form)."""
        parts = text.split(":")
        if len(parts) > 3:
            raise InvalidRegistration(f"invalid service {text!r}: use interface[:version[:group]]")
        parts += [""] * (3 - len(parts))
        return cls.of(parts[0], parts[1], parts[2])

    @property
    def unique_name(self) -> str:
        """HSF's unique service name, ``interface:version``."""
        return f"{self.interface}:{self.version}"

    @property
    def dubbo_version(self) -> str:
        """The version as Dubbo writes it (``""`` for unversioned ``0.0.0``)."""
        return "" if self.version == DEFAULT_VERSION else self.version

    @property
    def dubbo_group(self) -> str:
        """The group as Dubbo writes it (``""`` for HSF's default group)."""
        return "" if self.group == DEFAULT_GROUP else self.group

    def __str__(self) -> str:
        return f"{self.interface}:{self.version}:{self.group}"


Metadata = tuple[tuple[str, str], ...]
"""Extra provider parameters as sorted (name, value) pairs: hashable, ordered."""


def metadata_of(items: Mapping[str, str] | Iterable[tuple[str, str]]) -> Metadata:
    """Freeze a mapping (or pairs) into ``Metadata``."""
    pairs = items.items() if isinstance(items, Mapping) else items
    return tuple(sorted((str(k), str(v)) for k, v in pairs))


@dataclass(frozen=True, slots=True)
class Provider:
    """One endpoint of a service in one env.

    ``source`` says where the registry learnt it: ``static``, ``registry`` (the embedded
    gRPC API), ``zookeeper`` or ``tunnel``. Two providers with the same ``identity``
    (protocol, address) are the same endpoint; a newer registration replaces an older one.
    """

    address: str
    protocol: str = "dubbo"
    env: str = MAIN_ENV
    weight: int = DEFAULT_WEIGHT
    methods: tuple[str, ...] = ()
    application: str = ""
    source: str = "static"
    metadata: Metadata = field(default=())

    def __post_init__(self) -> None:
        split_address(self.address)
        if self.protocol not in PROTOCOLS:
            raise InvalidRegistration(f"unsupported protocol {self.protocol!r}")
        if normalize_env(self.env) != self.env:
            raise InvalidRegistration(f"env must be normalised, got {self.env!r}")
        if not 0 <= self.weight <= MAX_WEIGHT:
            raise InvalidRegistration(f"weight {self.weight} outside 0..{MAX_WEIGHT}")

    @property
    def identity(self) -> tuple[str, str]:
        """(protocol, address): what makes two registrations the same endpoint."""
        return (self.protocol, self.address)

    @property
    def host(self) -> str:
        return split_address(self.address)[0]

    @property
    def port(self) -> int:
        return split_address(self.address)[1]

    def meta(self, name: str, default: str = "") -> str:
        """The metadata value named ``name``, else ``default``."""
        for k, v in self.metadata:
            if k == name:
                return v
        return default


def split_address(address: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` -> (host, port). Raises on port 0 or garbage."""
    host, sep, port_text = address.rpartition(":")
    if not sep or not host or not port_text.isdigit():
        raise InvalidRegistration(f"invalid address {address!r}: want host:port")
    if host.startswith("["):
        if not host.endswith("]"):
            raise InvalidRegistration(f"invalid address {address!r}")
        host = host[1:-1]
    elif ":" in host:
        raise InvalidRegistration(f"invalid address {address!r}: bracket IPv6 hosts")
    port = int(port_text)
    if not 0 < port < 65536:
        raise InvalidRegistration(f"invalid port in {address!r}")
    if any(c in host for c in "/?#@ \t\r\n"):
        raise InvalidRegistration(f"invalid host in {address!r}")
    return host, port


def join_address(host: str, port: int) -> str:
    """(host, port) -> ``host:port``, bracketing IPv6 literals."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


Lanes = Mapping[str, tuple[Provider, ...]]
"""A service's providers grouped by env: what ``snapshot(key)`` returns."""

EMPTY_LANES: Lanes = MappingProxyType({})


def group_by_env(providers: Iterable[Provider]) -> Lanes:
    """Group providers into read-only lanes, each sorted by address for stable output."""
    lanes: dict[str, list[Provider]] = {}
    for p in providers:
        lanes.setdefault(p.env, []).append(p)
    return MappingProxyType(
        {env: tuple(sorted(ps, key=lambda p: p.identity)) for env, ps in sorted(lanes.items())}
    )
