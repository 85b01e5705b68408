"""The protocol-neutral call: what routing, balancing and telemetry read of one request.

A ``Call`` is built once per request by the protocol front end (Dubbo attachments or gRPC
metadata) and satisfies ``routing.CallLike``: ``meta(name)`` is a dict lookup on
lower-cased names, the only per-call cost routing adds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from proxy.registry.model import ServiceKey


@dataclass(frozen=True, slots=True)
class Call:
    """One inbound request. ``deadline`` is a ``trio.current_time()`` value (or None)."""

    key: ServiceKey
    method: str
    protocols: tuple[str, ...]
    """Registry protocols that may serve it: ("dubbo",) or ("grpc", "tri")."""
    metadata: Mapping[str, str] = field(default_factory=dict)
    deadline: float | None = None

    # routing.CallLike --------------------------------------------------------------------
    @property
    def service(self) -> str:
        return self.key.interface

    @property
    def version(self) -> str:
        return self.key.version

    @property
    def group(self) -> str:
        return self.key.group

    def meta(self, name: str) -> str | None:
        return self.metadata.get(name)


def lower_metadata(pairs: Iterable[tuple[str, object]]) -> dict[str, str]:
    """String-valued entries with lower-cased names; the first value of a name wins.

    Non-string attachment values (Dubbo lets a consumer attach any object) are not routing
    input: they are skipped here and still forwarded untouched in the original bytes.
    """
    out: dict[str, str] = {}
    for name, value in pairs:
        if isinstance(value, str):
            out.setdefault(name.lower(), value)
    return out
