"""The inputs of ``RouteTable.decide``: a view of one call and the providers of its service.

routing never imports ``proxy``: the proxy's objects satisfy these small protocols (or are
converted to the frozen dataclasses here, which satisfy them too).

- ``CallLike``: service interface, version, group, method, and ``meta(name)``, a lookup
  of the call's headers / gRPC metadata / Dubbo attachments by *lower-case* name. It is
  called a handful of times per call (tag carriers, rule conditions), so the proxy should
  make it a dict lookup: ``CallView`` does exactly that over a dict with lower-cased keys.
- ``ProviderLike``: one provider endpoint with ``address``, ``env``, ``weight`` and
  ``healthy`` (false when ejected or failing health checks).
- A providers view is ``Mapping[env, Sequence[ProviderLike]]``: the providers *of the
  call's service*, grouped by env (lane). Looking a lane up is one dict access.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import unquote

# W3C Baggage §3.3.1: a platform must accept at least 8192 bytes / 64 members; we read no more.
MAX_BAGGAGE_BYTES = 8192
MAX_BAGGAGE_MEMBERS = 64
# Env tags are DNS-label-like: they travel in headers, attachments, ZooKeeper paths,
# metric labels and log fields, so they stay a short conservative token.
MAX_TAG_LEN = 63

# The same rule as the registry's env names (proxy/registry/model.py): a lane is keyed by
# the exact env string a provider registered, so a tag must be able to name any of them.
_ENV_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")


def is_env_name(value: str) -> bool:
    """True when ``value`` is a valid env name: a letter or digit, then letters, digits,
    ``.``, ``_`` or ``-``; at most 63 characters. Case-sensitive, as Dubbo tags are."""
    return len(value) <= MAX_TAG_LEN and _ENV_NAME.fullmatch(value) is not None


def normalize_tag(raw: str) -> str:
    """Surrounding blanks are not part of a tag (case is: lanes are keyed exactly)."""
    return raw.strip()


class CallLike(Protocol):
    """What routing reads of a call. ``meta`` takes a lower-case name; None when absent."""

    @property
    def service(self) -> str: ...

    @property
    def version(self) -> str: ...

    @property
    def group(self) -> str: ...

    @property
    def method(self) -> str: ...

    def meta(self, name: str) -> str | None: ...


class ProviderLike(Protocol):
    """What routing reads of a provider."""

    @property
    def address(self) -> str: ...

    @property
    def env(self) -> str: ...

    @property
    def weight(self) -> int: ...

    @property
    def healthy(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class CallView:
    """A ready-made ``CallLike``: ``metadata`` keys must already be lower case.

    Build one with ``CallView.of(...)`` when the keys may be mixed case (Dubbo attachments).
    """

    service: str
    method: str = ""
    version: str = "0.0.0"
    group: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)

    def meta(self, name: str) -> str | None:
        return self.metadata.get(name)

    @classmethod
    def of(
        cls,
        service: str,
        method: str = "",
        *,
        version: str = "0.0.0",
        group: str = "",
        metadata: Iterable[tuple[str, str]] | Mapping[str, str] = (),
    ) -> CallView:
        """Build a view, lower-casing metadata names (the first value of a name wins)."""
        pairs = metadata.items() if isinstance(metadata, Mapping) else metadata
        lowered: dict[str, str] = {}
        for name, value in pairs:
            lowered.setdefault(name.lower(), value)
        return cls(service, method, version, group, lowered)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A ready-made ``ProviderLike`` (static providers, tests, ``laneway explain``)."""

    address: str
    env: str = "main"
    weight: int = 100
    healthy: bool = True
    protocol: str = "dubbo"


def baggage_member(header: str, key: str) -> str | None:
    """The value of member ``key`` in a W3C ``baggage`` header, percent-decoded; else None.

    Only the first ``MAX_BAGGAGE_BYTES`` / ``MAX_BAGGAGE_MEMBERS`` are read; a malformed
    member is skipped (baggage is advisory: it must never fail a call).
    """
    if len(header) > MAX_BAGGAGE_BYTES:
        header = header[:MAX_BAGGAGE_BYTES]
    for n, member in enumerate(header.split(",")):
        if n >= MAX_BAGGAGE_MEMBERS:
            break
        pair = member.split(";", 1)[0]
        name, sep, value = pair.partition("=")
        if sep and name.strip() == key:
            return unquote(value.strip(), errors="replace")
    return None


def with_baggage_member(header: str, key: str, value: str) -> str:
    """``header`` (a W3C ``baggage`` value) with member ``key`` set to ``value``: other
    members kept in order, any previous ``key`` member dropped, the new one appended."""
    members = [
        member
        for member in header.split(",")
        if member.strip() and member.split("=", 1)[0].strip() != key
    ]
    members.append(f"{key}={value}")
    return ",".join(members)
