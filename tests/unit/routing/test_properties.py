"""Properties of decide() (hypothesis): it never raises on any call content, and untagged
traffic reaches a project env only through a rule that names that env (DESIGN.md §2.1)."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from routing import CallView, Endpoint, RouteTable, loads

ROUTES = """
environments:
  feature-login: {}
  canary: {fallback: beta}
  beta: {}
  release: {strict: true}
  hotfix: {fallback: release}
rules:
  - name: testers
    match: {service: com.acme.UserService, headers: {x-user-id: {regex: '^9\\d{3}$'}}}
    route: {env: canary}
  - name: split
    match: {service: 'com.acme.Order*', untagged: true}
    route: {weights: {hotfix: 10, main: 90}, sticky_on: x-user-id}
  - name: debug
    match: {headers: {x-debug: {present: true}}, untagged: false}
    route: {env: beta}
"""
TABLE: RouteTable = loads(ROUTES, "routes.yaml")
ENVS = ("main", "feature-login", "canary", "beta", "release", "hotfix", "adhoc")
CARRIERS = ("x-env", "dubbo.tag", "baggage")

names = st.sampled_from(["x-env", "dubbo.tag", "baggage", "x-user-id", "x-debug"]) | st.text(
    max_size=20
)
values = (
    st.sampled_from([*ENVS, "", " ", "Feature-Login", "env=canary", "9123"])
    | st.text(max_size=80)
    | st.from_regex(r"env=[a-z-]{1,10}(;p=1)?(,k=v)?", fullmatch=True)
)
services = st.sampled_from(
    ["com.acme.UserService", "com.acme.OrderService", "org.x.Y", ""]
) | st.text(max_size=30)
provider_views = st.dictionaries(
    st.sampled_from(ENVS),
    st.lists(
        st.builds(
            Endpoint,
            address=st.just("127.0.0.1:1"),
            weight=st.integers(0, 200),
            healthy=st.booleans(),
        ),
        max_size=3,
    ),
)


@settings(max_examples=200, deadline=None)
@given(
    service=services,
    method=st.text(max_size=20),
    meta=st.dictionaries(names, values, max_size=6),
    view=provider_views,
    seed=st.integers(0, 2**32),
)
def test_decide_never_raises(
    service: str, method: str, meta: dict[str, str], view: dict[str, list[Endpoint]], seed: int
) -> None:
    d = TABLE.decide(CallView.of(service, method, metadata=meta), view, rng=random.Random(seed))
    assert d.ok == (d.error is None)
    assert d.lane is None or d.lane == d.lanes_tried[-1].env
    d.to_dict()


@settings(max_examples=200, deadline=None)
@given(
    service=services,
    meta=st.dictionaries(names.filter(lambda n: n.lower() not in CARRIERS), values, max_size=4),
    invalid=st.sampled_from(["", "Bad Tag", "x" * 70, "env=NOPE!", "a/b", "-x"]),
    carrier=st.sampled_from(CARRIERS),
    view=provider_views,
    seed=st.integers(0, 2**32),
)
def test_untagged_reaches_project_env_only_through_a_rule_naming_it(
    service: str,
    meta: dict[str, str],
    invalid: str,
    carrier: str,
    view: dict[str, list[Endpoint]],
    seed: int,
) -> None:
    meta = {**meta, carrier: invalid}  # absent, empty or invalid: untagged in every case
    d = TABLE.decide(CallView.of(service, "m", metadata=meta), view, rng=random.Random(seed))
    assert d.tag is None
    if d.lane is None or d.lane == "main":
        return
    assert d.rule is not None, d
    rule = next(r for r in TABLE.config.rules if r.name == d.rule)
    named = [rule.route.env] if rule.route.env else list(rule.route.weights or {})
    assert any(d.lane in [s.env for s in TABLE.chain(env)] for env in named), d


@settings(max_examples=100, deadline=None)
@given(tag=st.sampled_from(ENVS), view=provider_views)
def test_tagged_without_rule_stays_in_its_chain(tag: str, view: dict[str, list[Endpoint]]) -> None:
    d = TABLE.decide(CallView.of("org.x.Y", "m", metadata={"x-env": tag}), view)
    assert d.rule is None and d.tag == tag
    assert [a.env for a in d.lanes_tried] == [s.env for s in TABLE.chain(tag)][: len(d.lanes_tried)]
