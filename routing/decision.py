"""``Decision``: the immutable record of one routing choice.

Spans, logs, the admin API and ``laneway explain`` show it as it is (``to_dict``). It says
which env the call asked for and through which carrier, which rule fired, the lanes tried
in order with why each was skipped, the lane used, and the provider chosen -- or the error,
whose message names the service, the env and the lanes tried.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Generic, NamedTuple, TypeVar

from routing.model import Carrier
from routing.views import ProviderLike

P = TypeVar("P", bound=ProviderLike)


class Outcome(enum.StrEnum):
    """What happened in one lane."""

    USED = "used"
    NO_PROVIDER = "no_provider"  # the lane runs no provider of the service
    UNHEALTHY = "unhealthy"  # it does, but every one is ejected, unhealthy or weight 0
    EXPIRED = "expired"  # the env is past its `expires`: treated as absent


class ErrorKind(enum.StrEnum):
    """Why a call has no route. The proxy maps every kind to NoProvider (DESIGN.md §6)."""

    NO_PROVIDER = "no_provider"  # every lane of the chain, main included, is absent
    STRICT = "strict"  # the chain stopped at a strict env without a provider
    INVALID_TAG = "invalid_tag"  # `invalid_tag: reject` and the tag is not an env name
    UNDECLARED_ENV = "undeclared_env"  # `undeclared_env: reject` and the tag names no env


@dataclass(frozen=True, slots=True)
class TagSource:
    """The carrier a tag was read from, e.g. ``header x-env``."""

    carrier: Carrier
    name: str

    def __str__(self) -> str:
        return f"{self.carrier} {self.name}"


class LaneAttempt(NamedTuple):
    env: str
    outcome: Outcome


class Decision(NamedTuple, Generic[P]):
    """One routing choice. Exactly one of ``provider`` / ``error`` is set.

    A named tuple rather than a frozen dataclass: it is built on every call, and a tuple is
    built several times faster (bench/RESULTS.md) while being just as immutable.

    - ``tag``: the valid env the call asked for (None: untagged). This is what the proxy
      writes into every carrier on the outbound call (DESIGN.md §2.4).
    - ``invalid_tag``: the raw value (truncated) when a carrier held a non-env-name value.
    - ``env``: the lane aimed for: the rule's env, else the tag, else main.
    - ``fallback``: why ``lane`` is not ``env`` (the outcome of the first lane), or None.
    """

    service: str
    method: str
    tag: str | None
    carrier: TagSource | None
    invalid_tag: str | None
    rule: str | None
    env: str
    lanes_tried: tuple[LaneAttempt, ...]
    lane: str | None
    fallback: Outcome | None
    provider: P | None
    error: str | None
    error_kind: ErrorKind | None
    table_version: str

    @property
    def ok(self) -> bool:
        return self.provider is not None

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready view; the provider appears as its address, env and weight."""
        p = self.provider
        return {
            "service": self.service,
            "method": self.method,
            "tag": self.tag,
            "carrier": str(self.carrier) if self.carrier else None,
            "invalid_tag": self.invalid_tag,
            "rule": self.rule,
            "env": self.env,
            "lanes_tried": [{"env": a.env, "outcome": a.outcome.value} for a in self.lanes_tried],
            "lane": self.lane,
            "fallback": self.fallback.value if self.fallback else None,
            "provider": (
                None if p is None else {"address": p.address, "env": p.env, "weight": p.weight}
            ),
            "error": self.error,
            "error_kind": self.error_kind.value if self.error_kind else None,
            "table_version": self.table_version,
        }
