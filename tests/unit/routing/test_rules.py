"""Rules: every match kind, first match wins, env and weighted actions, the service index."""

from __future__ import annotations

import random

import pytest

from routing import RouteTable, loads
from routing.model import WEIGHT_TOTAL
from routing.rules import sticky_bucket
from tests.unit.routing.helpers import SVC, call, lanes

ALL = lanes("main", "canary", "feature-login", "beta")


def rule_table(match: str, route: str = "{env: canary}", more: str = "") -> RouteTable:
    return loads(
        "environments: {canary: {}, beta: {}}\n"
        f"rules:\n  - name: r\n    match: {match}\n    route: {route}\n{more}",
        "routes.yaml",
    )


# (match written in YAML, call metadata/fields that match, ones that do not)
MATCH_CASES = [
    ("{service: com.acme.UserService}", {}, {"service": "com.acme.Other"}),
    ("{service: 'com.acme.*'}", {}, {"service": "org.acme.UserService"}),
    ("{service: '*Service', method: 'get*'}", {}, {"method": "setUser"}),
    ("{method: getUser}", {}, {"method": "getOrder"}),
    ("{version: 1.0.0}", {"version": "1.0.0"}, {"version": "2.0.0"}),
    ("{group: blue}", {"group": "blue"}, {"group": ""}),
    ("{headers: {x-user-id: '42'}}", {"x_user_id": "42"}, {"x_user_id": "420"}),
    ("{headers: {x-user-id: {exact: '42'}}}", {"x_user_id": "42"}, {}),
    ("{headers: {x-user-id: {prefix: '9'}}}", {"x_user_id": "9001"}, {"x_user_id": "19"}),
    ("{headers: {X-User-Id: {regex: '^9\\d{3}$'}}}", {"x_user_id": "9123"}, {"x_user_id": "91234"}),
    ("{headers: {x-debug: {present: true}}}", {"x_debug": ""}, {}),
    ("{headers: {x-debug: {absent: true}}}", {}, {"x_debug": "1"}),
    ("{untagged: true}", {}, {"x_env": "beta"}),
    ("{untagged: false}", {"x_env": "beta"}, {}),
    ("{headers: {a: '1', b: '2'}}", {"a": "1", "b": "2"}, {"a": "1"}),
]


@pytest.mark.parametrize(("match", "hit", "miss"), MATCH_CASES, ids=[c[0] for c in MATCH_CASES])
def test_match_kinds(match: str, hit: dict[str, str], miss: dict[str, str]) -> None:
    t = rule_table(match)
    d = t.decide(call(**hit), ALL)
    assert (d.rule, d.lane) == ("r", "canary")
    d = t.decide(call(**miss), ALL)
    assert d.rule is None and d.lane != "canary"


def test_first_match_wins_in_file_order_across_exact_and_glob() -> None:
    t = loads(
        """
environments: {canary: {}, beta: {}}
rules:
  - {name: glob-first, match: {service: 'com.acme.*', method: getUser}, route: {env: beta}}
  - {name: exact, match: {service: com.acme.UserService}, route: {env: canary}}
""",
        "routes.yaml",
    )
    assert t.decide(call(method="getUser"), ALL).rule == "glob-first"
    assert t.decide(call(method="other"), ALL).rule == "exact"
    assert t.decide(call(service="com.acme.Else", method="x"), ALL).rule is None


def test_rule_overrides_tag_and_falls_back() -> None:
    t = rule_table("{headers: {x-user-id: '1'}}")
    d = t.decide(call(x_env="feature-login", x_user_id="1"), lanes("main"))
    assert d.tag == "feature-login" and d.rule == "r" and d.env == "canary"
    assert [a.env for a in d.lanes_tried] == ["canary", "main"] and d.lane == "main"


def test_weights_sticky_on_header_hash() -> None:
    """The same sticky value always lands in the same env; buckets follow crc32 % 100."""
    t = rule_table("{untagged: true}", "{weights: {canary: 30, main: 70}, sticky_on: X-User-Id}")
    for uid in ("1", "2", "alice", "bob", "9123", "x" * 50):
        bucket = sticky_bucket(uid)
        want = "canary" if bucket < 30 else "main"
        envs = {t.decide(call(x_user_id=uid), ALL, rng=random.Random(i)).lane for i in range(20)}
        assert envs == {want}, uid


def test_weights_random_split_is_seedable_and_proportional() -> None:
    t = rule_table("{untagged: true}", "{weights: {canary: 25, beta: 0, main: 75}}")
    rng = random.Random(3)
    lanes_used = [t.decide(call(), ALL, rng=rng).lane for _ in range(4000)]
    share = lanes_used.count("canary") / len(lanes_used)
    assert 0.21 < share < 0.29
    assert "beta" not in lanes_used
    assert sticky_bucket("anything") in range(WEIGHT_TOTAL)


def test_weights_without_sticky_header_fall_back_to_random() -> None:
    t = rule_table("{untagged: true}", "{weights: {canary: 50, main: 50}, sticky_on: x-uid}")
    seen = {t.decide(call(), ALL, rng=random.Random(i)).lane for i in range(50)}
    assert seen == {"canary", "main"}


def test_rules_of_other_services_are_not_consulted() -> None:
    rules = "\n".join(
        f"  - {{name: r{i}, match: {{service: com.other.S{i}}}, route: {{env: canary}}}}"
        for i in range(200)
    )
    t = loads(f"environments: {{canary: {{}}}}\nrules:\n{rules}\n", "routes.yaml")
    assert t._index.for_service(SVC) == ()
    assert len(t._index.for_service("com.other.S7")) == 1
    assert t.decide(call(), ALL).lane == "main"
