"""Rules compiled once per load: typed matchers and an index by service.

Exact service names sit in a dict; glob rules (and rules with no service) in a short list
consulted after it. The rules relevant to one service name are merged in file order and
memoised per name, so matching a call costs O(rules of *its* service), independent of how
many rules other services have.
"""

from __future__ import annotations

import fnmatch
import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from routing.model import WEIGHT_TOTAL, HeaderMatch, Match, Rule
from routing.views import CallLike

# Memoised per-service rule lists: bounded so a stream of made-up service names cannot grow
# memory without limit (past it, lists are computed per call, still correct).
MAX_MEMO_SERVICES = 65_536

_GLOB_CHARS = frozenset("*?[")

NameTest = str | re.Pattern[str] | None
HeaderTest = Callable[[str | None], bool]


def is_glob(pattern: str) -> bool:
    return any(c in _GLOB_CHARS for c in pattern)


def _name_test(pattern: str | None) -> NameTest:
    if pattern is None or not is_glob(pattern):
        return pattern
    return re.compile(fnmatch.translate(pattern))


def _name_ok(test: NameTest, value: str) -> bool:
    if test is None:
        return True
    if isinstance(test, str):
        return test == value
    return test.match(value) is not None


def _header_test(m: HeaderMatch) -> HeaderTest:
    if m.exact is not None:
        exact = m.exact
        return lambda v: v == exact
    if m.prefix is not None:
        prefix = m.prefix
        return lambda v: v is not None and v.startswith(prefix)
    if m.regex is not None:
        search = re.compile(m.regex).search
        return lambda v: v is not None and search(v) is not None
    if m.present:
        return lambda v: v is not None
    return lambda v: v is None


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """A rule ready to match. ``weights`` holds cumulative upper bounds (env, bound)."""

    index: int
    name: str
    service: NameTest
    method: NameTest
    version: str | None
    group: str | None
    headers: tuple[tuple[str, HeaderTest], ...]
    untagged: bool | None
    env: str | None
    weights: tuple[tuple[str, int], ...]
    sticky_on: str | None

    def matches(self, call: CallLike, tagged: bool) -> bool:
        """True when every condition holds (the service was matched by the index)."""
        if self.untagged is not None and self.untagged == tagged:
            return False
        if self.method is not None and not _name_ok(self.method, call.method):
            return False
        if self.version is not None and self.version != call.version:
            return False
        if self.group is not None and self.group != call.group:
            return False
        return all(test(call.meta(name)) for name, test in self.headers)

    def bucket_env(self, bucket: int) -> str:
        """The env of a weighted split for ``bucket`` in ``0 .. WEIGHT_TOTAL - 1``."""
        for env, bound in self.weights:
            if bucket < bound:
                return env
        return self.weights[-1][0]


def sticky_bucket(value: str) -> int:
    """A bucket in ``0 .. WEIGHT_TOTAL - 1`` stable across processes and restarts (crc32,
    not Python's per-process salted ``hash``)."""
    return zlib.crc32(value.encode("utf-8", errors="surrogatepass")) % WEIGHT_TOTAL


def compile_rule(index: int, rule: Rule) -> CompiledRule:
    m = rule.match
    cumulative: list[tuple[str, int]] = []
    total = 0
    for env, weight in (rule.route.weights or {}).items():
        if weight > 0:
            total += weight
            cumulative.append((env, total))
    return CompiledRule(
        index=index,
        name=rule.name,
        service=_name_test(m.service),
        method=_name_test(m.method),
        version=m.version,
        group=m.group,
        headers=tuple((k.lower(), _header_test(v)) for k, v in m.headers.items()),
        untagged=m.untagged,
        env=rule.route.env,
        weights=tuple(cumulative),
        sticky_on=rule.route.sticky_on.lower() if rule.route.sticky_on else None,
    )


class RuleIndex:
    """Rules by service. Immutable after construction except for its private memo."""

    __slots__ = ("_exact", "_globs", "_memo")

    def __init__(self, rules: tuple[CompiledRule, ...]) -> None:
        exact: dict[str, list[CompiledRule]] = {}
        globs: list[CompiledRule] = []
        for r in rules:
            if isinstance(r.service, str):
                exact.setdefault(r.service, []).append(r)
            else:
                globs.append(r)
        self._exact = {k: tuple(v) for k, v in exact.items()}
        self._globs = tuple(globs)
        self._memo: dict[str, tuple[CompiledRule, ...]] = {}

    def for_service(self, service: str) -> tuple[CompiledRule, ...]:
        """The rules that can match ``service``, in file order."""
        if not self._globs:
            return self._exact.get(service, ())
        found = self._memo.get(service)
        if found is not None:
            return found
        globs = (g for g in self._globs if _name_ok(g.service, service))
        merged = [*self._exact.get(service, ()), *globs]
        merged.sort(key=lambda r: r.index)
        result = tuple(merged)
        if len(self._memo) < MAX_MEMO_SERVICES:
            self._memo[service] = result
        return result


def _covers(general: str | None, specific: str | None) -> bool:
    """Every name ``specific`` admits is admitted by ``general`` (conservatively)."""
    if general is None or general == specific:
        return True
    if specific is None or is_glob(specific):
        return False
    return is_glob(general) and fnmatch.fnmatchcase(specific, general)


def shadows(earlier: Match, later: Match) -> bool:
    """True when every call ``later`` matches is matched by ``earlier`` first.

    Conservative: a True answer is certain; some real shadowing is not detected.
    """
    if not (_covers(earlier.service, later.service) and _covers(earlier.method, later.method)):
        return False
    for field in ("version", "group", "untagged"):
        mine = getattr(earlier, field)
        if mine is not None and mine != getattr(later, field):
            return False
    later_headers = {k.lower(): v for k, v in later.headers.items()}
    return all(later_headers.get(k.lower()) == v for k, v in earlier.headers.items())
