"""Routing semantics of ``RouteTable.decide`` (DESIGN.md §2), table-driven.

Untagged -> main only; tagged -> env with a healthy provider, else its fallback chain,
else main; strict envs never fall back; undeclared envs allow/reject; expired envs count
as absent; invalid tags main/reject; carriers read in order.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest

from routing import CallView, Endpoint, ErrorKind, Outcome, RouteTable, loads
from tests.unit.routing.helpers import SVC, call, lanes

NOW = datetime(2026, 11, 28, tzinfo=UTC)

ROUTES = """
main: main
environments:
  feature-login: {}
  release: {strict: true}
  hotfix: {fallback: release}
  chain-a: {fallback: chain-b}
  chain-b: {}
  old: {expires: 2020-01-01T00:00:00Z}
  old-strict: {strict: true, expires: 2020-01-01T00:00:00Z}
  later: {expires: 2099-01-01T00:00:00Z}
"""


def table(extra: str = "") -> RouteTable:
    return loads(ROUTES + extra, "routes.yaml", now=NOW)


@dataclass(frozen=True)
class Case:
    name: str
    meta: dict[str, str]
    envs: tuple[str, ...]
    lane: str | None
    tried: tuple[tuple[str, Outcome], ...]
    unhealthy: tuple[str, ...] = ()
    error: ErrorKind | None = None
    tag: str | None = None
    invalid: str | None = field(default=None)


U, N, E, H = Outcome.USED, Outcome.NO_PROVIDER, Outcome.EXPIRED, Outcome.UNHEALTHY
ALL = ("main", "feature-login", "release", "hotfix", "chain-a", "chain-b", "old", "later")

CASES = [
    Case("untagged goes to main", {}, ALL, "main", (("main", U),)),
    Case("untagged never leaves main", {}, ("feature-login",), None, (("main", N),),
         error=ErrorKind.NO_PROVIDER),
    Case("tagged env present", {"x-env": "feature-login"}, ALL, "feature-login",
         (("feature-login", U),), tag="feature-login"),
    Case("tagged env absent falls back to main", {"x-env": "feature-login"}, ("main",), "main",
         (("feature-login", N), ("main", U)), tag="feature-login"),
    Case("unhealthy lane counts as absent", {"x-env": "feature-login"},
         ("main", "feature-login"), "main", (("feature-login", H), ("main", U)),
         unhealthy=("feature-login",), tag="feature-login"),
    Case("strict env absent is an error", {"x-env": "release"}, ("main",), None,
         (("release", N),), error=ErrorKind.STRICT, tag="release"),
    Case("strict env present", {"x-env": "release"}, ALL, "release", (("release", U),),
         tag="release"),
    Case("chain reaches strict env", {"x-env": "hotfix"}, ("main", "release"), "release",
         (("hotfix", N), ("release", U)), tag="hotfix"),
    Case("strict stops the chain", {"x-env": "hotfix"}, ("main",), None,
         (("hotfix", N), ("release", N)), error=ErrorKind.STRICT, tag="hotfix"),
    Case("chain of two then main", {"x-env": "chain-a"}, ("main",), "main",
         (("chain-a", N), ("chain-b", N), ("main", U)), tag="chain-a"),
    Case("chain second hop", {"x-env": "chain-a"}, ("main", "chain-b"), "chain-b",
         (("chain-a", N), ("chain-b", U)), tag="chain-a"),
    Case("undeclared env present", {"x-env": "adhoc-1"}, ("main", "adhoc-1"), "adhoc-1",
         (("adhoc-1", U),), tag="adhoc-1"),
    Case("undeclared env falls back", {"x-env": "adhoc-1"}, ("main",), "main",
         (("adhoc-1", N), ("main", U)), tag="adhoc-1"),
    Case("expired env is absent", {"x-env": "old"}, ("main", "old"), "main",
         (("old", E), ("main", U)), tag="old"),
    Case("expired strict env falls back", {"x-env": "old-strict"}, ("main", "old-strict"),
         "main", (("old-strict", E), ("main", U)), tag="old-strict"),
    Case("not yet expired env", {"x-env": "later"}, ALL, "later", (("later", U),),
         tag="later"),
    Case("invalid tag treated as untagged", {"x-env": "Bad_Tag!"}, ALL, "main",
         (("main", U),), invalid="Bad_Tag!"),
    Case("tag too long is invalid", {"x-env": "a" * 64}, ALL, "main", (("main", U),),
         invalid="a" * 64),
    Case("tag is trimmed", {"x-env": " feature-login\t"}, ALL, "feature-login",
         (("feature-login", U),), tag="feature-login"),
    Case("tag is case-sensitive", {"x-env": "Feature-Login"}, ALL, "main",
         (("Feature-Login", N), ("main", U)), tag="Feature-Login"),
    Case("empty tag is untagged", {"x-env": "  "}, ALL, "main", (("main", U),)),
    Case("tag main", {"x-env": "main"}, ALL, "main", (("main", U),), tag="main"),
    Case("header wins over attachment", {"x-env": "feature-login", "dubbo.tag": "later"},
         ALL, "feature-login", (("feature-login", U),), tag="feature-login"),
    Case("attachment carrier", {"dubbo.tag": "later"}, ALL, "later", (("later", U),),
         tag="later"),
    Case("baggage carrier", {"baggage": "user=1,env=feature-login;p=1"}, ALL,
         "feature-login", (("feature-login", U),), tag="feature-login"),
    Case("baggage without the member is untagged", {"baggage": "user=1"}, ALL, "main",
         (("main", U),)),
    Case("main unhealthy is an error", {}, ("main",), None, (("main", H),),
         unhealthy=("main",), error=ErrorKind.NO_PROVIDER),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_semantics(case: Case) -> None:
    d = table().decide(
        CallView.of(SVC, "getUser", metadata=case.meta),
        lanes(*case.envs, unhealthy=case.unhealthy),
        now=NOW.timestamp(),
    )
    assert d.lane == case.lane
    assert tuple((a.env, a.outcome) for a in d.lanes_tried) == case.tried
    assert d.error_kind == case.error
    assert d.tag == case.tag
    assert d.invalid_tag == case.invalid
    assert d.ok == (case.error is None)
    if d.ok:
        assert d.provider is not None and d.provider.env == case.lane
        assert d.fallback == (case.tried[0][1] if len(case.tried) > 1 else None)
    else:
        assert d.provider is None and d.error is not None


def test_error_names_service_env_and_lanes() -> None:
    d = table().decide(call(x_env="hotfix"), lanes("main"), now=NOW.timestamp())
    assert d.error is not None
    for part in (SVC, "hotfix", "release", "lanes tried"):
        assert part in d.error


def test_carrier_is_recorded() -> None:
    d = table().decide(call(x_env="feature-login"), lanes("main"), now=NOW.timestamp())
    assert str(d.carrier) == "header x-env"
    d = table().decide(call(baggage="env=later"), lanes("main"), now=NOW.timestamp())
    assert str(d.carrier) == "baggage env"


def test_expiry_is_per_call_clock() -> None:
    """An env that expires while the table is live starts falling back at that instant."""
    t = table()
    later = datetime(2099, 1, 1, tzinfo=UTC).timestamp()
    view = lanes("main", "later")
    assert t.decide(call(x_env="later"), view, now=later - 1).lane == "later"
    assert t.decide(call(x_env="later"), view, now=later).lane == "main"


def test_invalid_tag_reject() -> None:
    t = table("invalid_tag: reject\n")
    d = t.decide(call(x_env="NOT valid"), lanes(*ALL), now=NOW.timestamp())
    assert d.error_kind is ErrorKind.INVALID_TAG and d.lanes_tried == ()
    assert d.error is not None and SVC in d.error and "NOT valid" in d.error
    assert t.decide(call(x_env="feature-login"), lanes(*ALL)).lane == "feature-login"


def test_undeclared_env_reject() -> None:
    t = table("undeclared_env: reject\n")
    d = t.decide(call(x_env="adhoc-1"), lanes("main", "adhoc-1"), now=NOW.timestamp())
    assert d.error_kind is ErrorKind.UNDECLARED_ENV
    assert d.error is not None and "adhoc-1" in d.error and SVC in d.error
    ok = t.decide(call(x_env="feature-login"), lanes("main"), now=NOW.timestamp())
    assert ok.lane == "main" and ok.fallback is Outcome.NO_PROVIDER


def test_tag_config_restricts_carriers() -> None:
    """Only the carriers written under `tag:` are read, in the order written."""
    t = table("tag: {baggage: lane, attachment: dubbo.tag}\n")
    view = lanes(*ALL)
    assert t.decide(call(x_env="feature-login"), view).lane == "main"
    both = call(baggage="lane=later", **{"dubbo.tag": "feature-login"})
    d = t.decide(both, view, now=NOW.timestamp())
    assert d.lane == "later" and str(d.carrier) == "baggage lane"


def test_weight_zero_provider_is_not_usable() -> None:
    view = {"main": [Endpoint("10.0.0.1:1", "main", 0, True)]}
    d = table().decide(call(), view)
    assert d.lanes_tried[0].outcome is Outcome.UNHEALTHY and not d.ok


def test_pick_is_weighted_and_seedable() -> None:
    view = {"main": [Endpoint("a:1", "main", 90), Endpoint("b:1", "main", 10)]}
    view["main"].append(Endpoint("c:1", "main", 0))
    t = table()
    rng = random.Random(7)
    picks = [t.decide(call(), view, rng=rng).provider for _ in range(2000)]
    addresses = [p.address for p in picks if p is not None]
    counts = {a: addresses.count(a) for a in ("a:1", "b:1", "c:1")}
    assert counts["c:1"] == 0
    assert 1650 < counts["a:1"] < 1950
    again = [t.decide(call(), view, rng=random.Random(7)).provider for _ in range(1)]
    assert again[0] == picks[0]


def test_custom_picker() -> None:
    view = {"main": [Endpoint("a:1", "main"), Endpoint("b:1", "main")]}
    d = table().decide(call(), view, pick=lambda ps: ps[-1])
    assert d.provider is not None and d.provider.address == "b:1"


def test_decision_is_immutable_and_serialisable() -> None:
    d = table().decide(call(x_env="feature-login"), lanes("main"))
    with pytest.raises(AttributeError):
        d.lane = "x"  # type: ignore[misc]
    out = d.to_dict()
    assert out["lanes_tried"] == [
        {"env": "feature-login", "outcome": "no_provider"},
        {"env": "main", "outcome": "used"},
    ]
    assert out["table_version"] == d.table_version and len(d.table_version) == 12
