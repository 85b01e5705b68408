"""The routes file schema (pydantic). Shape and types only; cross-field meaning is checked
by ``routing.semantics`` and compiled by ``routing.table``.

Every model forbids unknown keys, and scalar fields are strict (``5`` is not a string,
``"yes"`` is not a boolean): a routes file is edited by people, and a silently coerced
value is a routing surprise in production. See docs/routes.md for the schema with examples.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    field_validator,
    model_validator,
)

Carrier = Literal["header", "attachment", "baggage"]
CARRIERS: tuple[Carrier, ...] = ("header", "attachment", "baggage")

# Weights are percentages: a split must add up to exactly this.
WEIGHT_TOTAL = 100
# Weights are relative (Dubbo's default 100); larger is a typo. Same cap as the registry's.
MAX_PROVIDER_WEIGHT = 1_000_000


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TagConfig(_Model):
    """Where the env tag is read. Only the carriers written are read, in the order written
    (or as ``order`` says); the default reads all three: header, attachment, baggage."""

    header: StrictStr | None = None
    attachment: StrictStr | None = None
    baggage: StrictStr | None = None
    order: tuple[Carrier, ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _order_from_keys(cls, data: object) -> object:
        if isinstance(data, dict) and "order" not in data:
            return {**data, "order": [k for k in data if k in CARRIERS and data[k] is not None]}
        return data

    @model_validator(mode="after")
    def _order_names_set_carriers(self) -> TagConfig:
        for carrier in self.order:
            if getattr(self, carrier) is None:
                raise ValueError(f"order names {carrier!r} but no {carrier} name is set")
        if len(set(self.order)) != len(self.order):
            raise ValueError("order lists a carrier twice")
        return self


DEFAULT_TAG = TagConfig(
    header="x-env", attachment="dubbo.tag", baggage="env", order=("header", "attachment", "baggage")
)


def _as_utc(value: object) -> object:
    """YAML gives a date, a naive datetime (meaning UTC) or an aware one."""
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime.combine(value, time(0, 0), tzinfo=UTC)
    return value


class Environment(_Model):
    """A declared project env. ``fallback`` defaults to main; ``strict`` never falls back;
    after ``expires`` the env counts as absent and its calls fall back."""

    strict: StrictBool = False
    fallback: StrictStr | None = None
    owner: StrictStr | None = None
    description: StrictStr | None = None
    expires: datetime | None = None

    @field_validator("expires", mode="before")
    @classmethod
    def _utc(cls, value: object) -> object:
        return _as_utc(value)


class HeaderMatch(_Model):
    """Exactly one of: ``exact``, ``prefix``, ``regex`` (searched, anchor it yourself),
    ``present: true``, ``absent: true``. A bare string means ``exact``."""

    exact: StrictStr | None = None
    prefix: StrictStr | None = None
    regex: StrictStr | None = None
    present: Literal[True] | None = None
    absent: Literal[True] | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: object) -> object:
        return {"exact": data} if isinstance(data, str) else data

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"bad regex {value!r}: {exc}") from None
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> HeaderMatch:
        kinds = [k for k in ("exact", "prefix", "regex", "present", "absent") if getattr(self, k)]
        if self.exact == "":
            kinds.append("exact")
        if len(kinds) != 1:
            raise ValueError(
                "give exactly one of exact, prefix, regex, present, absent"
                + (f" (got {', '.join(kinds)})" if kinds else "")
            )
        return self

    @property
    def kind(self) -> str:
        for k in ("exact", "prefix", "regex", "present", "absent"):
            if getattr(self, k) is not None:
                return k
        raise AssertionError("validated HeaderMatch has a kind")


class Match(_Model):
    """All given conditions must hold. ``service`` and ``method`` are exact names or globs
    (``com.acme.*``); ``headers`` look at headers, gRPC metadata and Dubbo attachments
    alike (names case-insensitive); ``untagged: true`` matches only calls without a valid
    tag, ``untagged: false`` only tagged calls."""

    service: StrictStr | None = None
    method: StrictStr | None = None
    version: StrictStr | None = None
    group: StrictStr | None = None
    headers: dict[StrictStr, HeaderMatch] = Field(default_factory=dict)
    untagged: StrictBool | None = None


class Route(_Model):
    """Either ``env`` or ``weights`` (percentages summing to 100, optionally ``sticky_on``
    a header whose value's hash picks the bucket)."""

    env: StrictStr | None = None
    weights: dict[StrictStr, StrictInt] | None = None
    sticky_on: StrictStr | None = None

    @field_validator("weights")
    @classmethod
    def _percentages(cls, value: dict[str, int] | None) -> dict[str, int] | None:
        if value is None:
            return None
        if not value:
            raise ValueError("weights must name at least one env")
        if any(w < 0 for w in value.values()):
            raise ValueError("weights must not be negative")
        total = sum(value.values())
        if total != WEIGHT_TOTAL:
            raise ValueError(f"weights sum to {total}, must sum to {WEIGHT_TOTAL}")
        return value

    @model_validator(mode="after")
    def _one_action(self) -> Route:
        if (self.env is None) == (self.weights is None):
            raise ValueError("give exactly one of env, weights")
        if self.sticky_on is not None and self.weights is None:
            raise ValueError("sticky_on needs weights")
        return self


class Rule(_Model):
    name: StrictStr
    match: Match = Field(default_factory=Match)
    route: Route


class StaticProvider(_Model):
    """A provider written in a file; merged with the registry's by the proxy."""

    service: StrictStr
    version: StrictStr = "0.0.0"
    group: StrictStr = ""
    address: StrictStr
    protocol: Literal["dubbo", "tri", "grpc"] = "dubbo"
    env: StrictStr | None = None
    weight: Annotated[StrictInt, Field(ge=0, le=MAX_PROVIDER_WEIGHT)] = 100
    healthy: StrictBool = True
    methods: tuple[StrictStr, ...] = ()
    application: StrictStr | None = None

    @field_validator("address")
    @classmethod
    def _host_port(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"address must be host:port with a port in 1..65535, got {value!r}")
        return value


def _none_is_empty(data: object, keys: tuple[str, ...]) -> object:
    """`environments:` with nothing under it, or `feature-x:` with no body, means empty."""
    if not isinstance(data, dict):
        return data
    out = {k: v for k, v in data.items() if not (k in keys and v is None)}
    envs = out.get("environments")
    if isinstance(envs, dict):
        out["environments"] = {k: ({} if v is None else v) for k, v in envs.items()}
    return out


class RoutesConfig(_Model):
    """The whole routes file."""

    tag: TagConfig = DEFAULT_TAG
    main: StrictStr = "main"
    invalid_tag: Literal["main", "reject"] = "main"
    undeclared_env: Literal["allow", "reject"] = "allow"
    environments: dict[StrictStr, Environment] = Field(default_factory=dict)
    rules: tuple[Rule, ...] = ()
    providers: tuple[StaticProvider, ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _empties(cls, data: object) -> object:
        return _none_is_empty(data, ("environments", "rules", "providers", "tag"))


class ProvidersFile(_Model):
    """A providers file (``laneway explain --providers``): just a ``providers`` list."""

    providers: tuple[StaticProvider, ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _empties(cls, data: object) -> object:
        return _none_is_empty(data, ("providers",))
