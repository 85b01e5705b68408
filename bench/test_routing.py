"""decide() micro-benchmarks (pytest-benchmark): `make bench`. Figures go to bench/RESULTS.md.

The contract (issue 3, DESIGN.md §2.5): decide() is O(1) in the number of envs, services
and rules of *other* services. Each size pair is measured side by side; the p50 ratio of
the big table to the small one must stay <= 1.2.

The call measured is the common hard case: tagged with a project env that does not run
the service (so two lanes are tried: the env, then main), with a rule of its own service
that does not match, on a table with glob rules too (10% of the other-service rules).
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from routing import CallView, Endpoint, RoutesError, RouteTable, loads

SERVICE = "com.acme.UserService"
# The p50 ratio bound the issue sets for big vs small tables.
MAX_P50_RATIO = 1.2
# Interleaved rounds x calls per round for the ratio measurement: enough for a stable median.
ROUNDS, CALLS = 400, 200


def build(envs: int, other_rules: int) -> RouteTable:
    lines = ["environments:"]
    lines += [f"  env-{i}: {{}}" for i in range(envs)]
    lines.append("rules:")
    lines.append(
        "  - {name: own, match: {service: com.acme.UserService, headers: "
        "{x-user-id: {regex: '^9\\d{3}$'}}}, route: {env: env-0}}"
    )
    for i in range(other_rules):
        service = f"com.other{i}.*" if i % 10 == 0 else f"com.other.Service{i}"
        lines.append(f"  - {{name: r{i}, match: {{service: '{service}'}}, route: {{env: main}}}}")
    return loads("\n".join(lines) + "\n", "bench.yaml")


def providers(envs: int) -> dict[str, list[Endpoint]]:
    """The service runs in main and in every other project env but env-1."""
    view = {"main": [Endpoint("10.0.0.1:20880", "main"), Endpoint("10.0.0.2:20880", "main")]}
    for i in range(0, envs, 2):
        view[f"env-{i}"] = [Endpoint(f"10.1.{i // 250}.{i % 250}:20880", f"env-{i}")]
    return view


CALL = CallView.of(SERVICE, "getUser", metadata={"x-env": "env-1", "x-user-id": "42"})

SIZES = {
    "envs-10": (10, 10),
    "envs-10000": (10_000, 10),
    "rules-10": (10, 10),
    "rules-1000": (10, 1_000),
}


def _decider(envs: int, rules: int) -> Callable[[], object]:
    table, view, rng = build(envs, rules), providers(envs), random.Random(1)

    def run() -> object:
        d = table.decide(CALL, view, rng=rng)
        assert d.lane == "main"
        return d

    return run


@pytest.mark.parametrize("size", list(SIZES))
def test_decide(benchmark: BenchmarkFixture, size: str) -> None:
    benchmark.group = "routing decide " + size.split("-")[0]
    benchmark(_decider(*SIZES[size]))


def _p50_ratio(small: Callable[[], object], big: Callable[[], object]) -> tuple[float, float]:
    """Median per-call ns of each, measured in interleaved rounds (drift hits both)."""
    a: list[float] = []
    b: list[float] = []
    for _ in range(ROUNDS):
        for fn, out in ((small, a), (big, b)):
            start = time.perf_counter_ns()
            for _ in range(CALLS):
                fn()
            out.append((time.perf_counter_ns() - start) / CALLS)
    return statistics.median(a), statistics.median(b)


@pytest.mark.parametrize(
    ("small", "big"), [("envs-10", "envs-10000"), ("rules-10", "rules-1000")], ids=str
)
def test_p50_ratio(benchmark: BenchmarkFixture, small: str, big: str) -> None:
    """decide() stays O(1): p50(big) / p50(small) <= MAX_P50_RATIO."""
    fast, slow = _decider(*SIZES[small]), _decider(*SIZES[big])
    p50_small, p50_big = _p50_ratio(fast, slow)
    ratio = p50_big / p50_small
    benchmark.group = "routing p50 ratio"
    benchmark.extra_info.update(p50_small_ns=p50_small, p50_big_ns=p50_big, ratio=ratio)
    benchmark(slow)
    print(f"\n{small}: p50 {p50_small:.0f} ns  {big}: p50 {p50_big:.0f} ns  ratio {ratio:.3f}")
    assert ratio <= MAX_P50_RATIO


@pytest.mark.parametrize("size", ["envs-10000", "rules-1000"])
def test_load(benchmark: BenchmarkFixture, size: str) -> None:
    """Compile cost per reload (not on the call path)."""
    envs, rules = SIZES[size]
    benchmark.group = "routing load"
    benchmark(build, envs, rules)


def _bomb() -> str:
    lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    lines += [
        f"{name}: &{name} [{', '.join(['*' + prev] * 10)}]"
        for prev, name in zip("abcdefgh", "bcdefghi", strict=True)
    ]
    return "\n".join(lines) + "\n"


R9_INPUTS = {
    "alias-bomb": _bomb(),
    "flow-nesting-1MiB": "main: " + "[" * (1024 * 1024 - 7),
    "python-tag": "main: !!python/object/apply:os.system ['true']\n",
}


@pytest.mark.parametrize("name", list(R9_INPUTS))
def test_refuse_r9(benchmark: BenchmarkFixture, name: str) -> None:
    """R9 yaml-safety: hostile inputs are refused fast (TESTS.md: parse <= 100 ms)."""
    text = R9_INPUTS[name]
    benchmark.group = "routing R9 refusal"

    def refuse() -> None:
        try:
            loads(text, "r9.yaml")
        except RoutesError:
            return
        raise AssertionError(f"{name} was accepted")

    benchmark(refuse)
