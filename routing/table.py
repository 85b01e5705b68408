"""``RouteTable``: a routes file compiled for the hot path, and ``decide()``.

Built once per load by ``routing.loader`` and never changed afterwards (the proxy swaps
whole tables on reload, so a call is routed by exactly one table ``version``).

``decide(call, providers)`` costs: one dict lookup per configured tag carrier, the rules
of the call's own service (indexed), one dict lookup for the env's precomputed fallback
chain, and one lookup per lane tried in the providers view. It is O(1) in the number of
envs, services and rules of other services (bench/test_routing.py measures it).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from routing.decision import Decision, ErrorKind, LaneAttempt, Outcome, TagSource
from routing.model import WEIGHT_TOTAL, Carrier, RoutesConfig, StaticProvider
from routing.pick import P, Picker, pick_weighted, usable
from routing.problems import Problem
from routing.rules import CompiledRule, RuleIndex, compile_rule, sticky_bucket
from routing.views import CallLike, baggage_member, is_env_name, normalize_tag

# An invalid tag is echoed in decisions and errors; cut it so a hostile header stays small.
MAX_REPORTED_TAG = 80
# The W3C baggage header's name (the configured `baggage` is the member inside it).
BAGGAGE_HEADER = "baggage"


@dataclass(frozen=True, slots=True)
class Step:
    """One lane of a fallback chain."""

    env: str
    strict: bool
    expires_at: float | None  # POSIX seconds; None: never expires


@dataclass(frozen=True, slots=True)
class _CarrierSpec:
    kind: Carrier
    lookup: str  # the metadata name to read (lower case)
    member: str | None  # baggage member, for the baggage carrier
    source: TagSource


def _chains(config: RoutesConfig) -> dict[str, tuple[Step, ...]]:
    """Every declared env's full chain down to main, strict flags included (the loader has
    rejected cycles and fallbacks to undeclared envs)."""
    main = config.main
    envs = config.environments
    out: dict[str, tuple[Step, ...]] = {main: (Step(main, False, None),)}
    for name in envs:
        steps: list[Step] = []
        seen: set[str] = set()
        cur = name
        while cur != main and cur in envs and cur not in seen:
            seen.add(cur)
            env = envs[cur]
            expires = env.expires.timestamp() if isinstance(env.expires, datetime) else None
            steps.append(Step(cur, env.strict, expires))
            cur = env.fallback or main
        steps.append(Step(main, False, None))
        out[name] = tuple(steps)
    return out


class RouteTable:
    """A compiled, immutable routes file. Build it with ``routing.load`` / ``loads``."""

    __slots__ = (
        "_carriers",
        "_chains",
        "_clock",
        "_index",
        "_main_step",
        "_reject_invalid",
        "_reject_undeclared",
        "_rng",
        "config",
        "source",
        "version",
        "warnings",
    )

    def __init__(
        self,
        config: RoutesConfig,
        *,
        version: str,
        source: str = "<routes>",
        warnings: tuple[Problem, ...] = (),
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.version = version
        self.source = source
        self.warnings = warnings
        self._rng = rng if rng is not None else random.Random()
        self._clock = clock
        self._chains = _chains(config)
        self._main_step = self._chains[config.main][0]
        self._index = RuleIndex(tuple(compile_rule(i, r) for i, r in enumerate(config.rules)))
        self._reject_invalid = config.invalid_tag == "reject"
        self._reject_undeclared = config.undeclared_env == "reject"
        carriers: list[_CarrierSpec] = []
        for kind in config.tag.order:
            name = getattr(config.tag, kind)
            assert isinstance(name, str)
            if kind == "baggage":
                carriers.append(_CarrierSpec(kind, BAGGAGE_HEADER, name, TagSource(kind, name)))
            else:
                carriers.append(_CarrierSpec(kind, name.lower(), None, TagSource(kind, name)))
        self._carriers = tuple(carriers)

    @property
    def main(self) -> str:
        return self.config.main

    @property
    def static_providers(self) -> tuple[StaticProvider, ...]:
        return self.config.providers

    def chain(self, env: str) -> tuple[Step, ...]:
        """The lanes a call aimed at ``env`` would try, in order (undeclared: env, main)."""
        found = self._chains.get(env)
        return found if found is not None else (Step(env, False, None), self._main_step)

    def read_tag(self, call: CallLike) -> tuple[str | None, TagSource | None, str | None]:
        """(valid tag, its carrier, invalid raw value) from the first carrier holding one."""
        for spec in self._carriers:
            raw = call.meta(spec.lookup)
            if raw is not None and spec.member is not None:
                raw = baggage_member(raw, spec.member)
            if raw is None or not raw.strip():
                continue
            tag = normalize_tag(raw)
            if is_env_name(tag):
                return tag, spec.source, None
            return None, spec.source, raw[:MAX_REPORTED_TAG]
        return None, None, None

    def match_rule(self, call: CallLike, tagged: bool) -> CompiledRule | None:
        for rule in self._index.for_service(call.service):
            if rule.matches(call, tagged):
                return rule
        return None

    def decide(
        self,
        call: CallLike,
        providers: Mapping[str, Sequence[P]],
        *,
        now: float | None = None,
        rng: random.Random | None = None,
        pick: Picker[P] | None = None,
    ) -> Decision[P]:
        """Route one call. Never raises on any call content: a call without a route gets a
        Decision whose ``error`` says why (naming the service, the env and lanes tried).

        ``providers`` are the providers of the call's service by env. ``now`` (POSIX
        seconds) defaults to the table's clock; ``rng`` to the table's; ``pick`` chooses
        within a lane (default: weighted random over the usable providers).
        """
        tag, source, invalid = self.read_tag(call)
        if invalid is not None and self._reject_invalid:
            return self._fail(
                call, tag, source, invalid, None, self.main, (), ErrorKind.INVALID_TAG,
                f"invalid env tag {invalid!r} in {source} for {call.service}: an env name is "
                "a letter or digit, then letters, digits, '.', '_' or '-' (at most 63)",
            )  # fmt: skip
        rule = self.match_rule(call, tag is not None)
        if rule is not None:
            env = rule.env if rule.env is not None else self._split(rule, call, rng)
        else:
            env = tag if tag is not None else self.main
        chain = self._chains.get(env)
        if chain is None:
            if self._reject_undeclared and rule is None:
                return self._fail(
                    call, tag, source, invalid, None, env, (), ErrorKind.UNDECLARED_ENV,
                    f"env {env!r} is not declared (undeclared_env: reject); "
                    f"no route for {call.service}",
                )  # fmt: skip
            chain = (Step(env, False, None), self._main_step)
        rule_name = rule.name if rule is not None else None
        tried: list[LaneAttempt] = []
        for step in chain:
            if step.expires_at is not None:
                if now is None:
                    now = self._clock()
                if now >= step.expires_at:
                    tried.append(LaneAttempt(step.env, Outcome.EXPIRED))
                    continue  # expired counts as absent, strict or not: its calls fall back
            lane = providers.get(step.env, ())
            candidates = usable(lane) if lane else lane
            if candidates:
                chosen = (
                    pick(candidates)
                    if pick is not None
                    else pick_weighted(candidates, rng if rng is not None else self._rng)
                )
                tried.append(LaneAttempt(step.env, Outcome.USED))
                # Positional on the hot path (keywords cost ~0.3 us more); the order is
                # Decision's field order: see _fail for the same call with keywords.
                return Decision(
                    call.service, call.method, tag, source, invalid, rule_name, env,
                    tuple(tried), step.env, tried[0].outcome if len(tried) > 1 else None,
                    chosen, None, None, self.version,
                )  # fmt: skip
            tried.append(LaneAttempt(step.env, Outcome.UNHEALTHY if lane else Outcome.NO_PROVIDER))
            if step.strict:
                return self._fail(
                    call, tag, source, invalid, rule_name, env, tuple(tried), ErrorKind.STRICT,
                    f"env {step.env!r} runs no healthy provider of {call.service} and is strict "
                    f"(env asked: {env}; lanes tried: {_lanes(tried)})",
                )  # fmt: skip
        return self._fail(
            call, tag, source, invalid, rule_name, env, tuple(tried), ErrorKind.NO_PROVIDER,
            f"no healthy provider of {call.service} in env {env!r} or its fallbacks "
            f"(lanes tried: {_lanes(tried)})",
        )  # fmt: skip

    def _split(self, rule: CompiledRule, call: CallLike, rng: random.Random | None) -> str:
        if rule.sticky_on is not None:
            value = call.meta(rule.sticky_on)
            if value is not None:
                return rule.bucket_env(sticky_bucket(value))
        r = rng if rng is not None else self._rng
        return rule.bucket_env(r.randrange(WEIGHT_TOTAL))

    def _fail(
        self,
        call: CallLike,
        tag: str | None,
        source: TagSource | None,
        invalid: str | None,
        rule: str | None,
        env: str,
        tried: tuple[LaneAttempt, ...],
        kind: ErrorKind,
        message: str,
    ) -> Decision[P]:
        return Decision(
            service=call.service,
            method=call.method,
            tag=tag,
            carrier=source,
            invalid_tag=invalid,
            rule=rule,
            env=env,
            lanes_tried=tried,
            lane=None,
            fallback=tried[0].outcome if tried else None,
            provider=None,
            error=message,
            error_kind=kind,
            table_version=self.version,
        )


def _lanes(tried: list[LaneAttempt]) -> str:
    return ", ".join(f"{a.env} ({a.outcome.value})" for a in tried) or "none"
