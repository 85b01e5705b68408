"""The small input types: CallView lookups, baggage parsing, env names, static views."""

from __future__ import annotations

import pytest

from routing import CallView, baggage_member, loads_providers, static_view
from routing.views import MAX_BAGGAGE_MEMBERS, is_env_name


def test_callview_lowercases_names_first_value_wins() -> None:
    v = CallView.of("S", metadata=[("X-Env", "a"), ("x-env", "b"), ("Dubbo.Tag", "c")])
    assert v.meta("x-env") == "a" and v.meta("dubbo.tag") == "c" and v.meta("X-Env") is None


@pytest.mark.parametrize(
    ("header", "key", "want"),
    [
        ("env=feature-login", "env", "feature-login"),
        ("a=1, env = dev ;prop=x;q, b=2", "env", "dev"),
        ("a=1,b=2", "env", None),
        ("env", "env", None),
        ("env=caf%C3%A9", "env", "café"),
        ("xenv=a,env=b", "env", "b"),
        ("", "env", None),
        (",,,=,env=ok", "env", "ok"),
    ],
)
def test_baggage_member(header: str, key: str, want: str | None) -> None:
    assert baggage_member(header, key) == want


def test_baggage_reads_a_bounded_number_of_members() -> None:
    many = ",".join(f"k{i}=v" for i in range(MAX_BAGGAGE_MEMBERS)) + ",env=late"
    assert baggage_member(many, "env") is None


@pytest.mark.parametrize(
    ("name", "ok"),
    [("main", True), ("feature-login", True), ("a", True), ("a" * 63, True), ("a" * 64, False),
     ("-a", False), (".a", False), ("a-", True), ("Gray", True), ("a_b", True), ("a.b", True),
     ("", False), ("a b", False), ("a/b", False), ("é", False), ("a!", False)],
)  # fmt: skip
def test_env_names(name: str, ok: bool) -> None:
    assert is_env_name(name) is ok


def test_static_view_groups_by_env_and_filters() -> None:
    providers = loads_providers(
        """providers:
  - {service: S, address: 'h:1'}
  - {service: S, address: 'h:2', env: dev, healthy: false, weight: 5}
  - {service: S, version: 2.0.0, address: 'h:3'}
  - {service: T, address: 'h:4'}
"""
    )
    view = static_view(providers, "S", version="0.0.0")
    assert sorted(view) == ["dev", "main"]
    assert [p.address for p in view["main"]] == ["h:1"]
    assert view["dev"][0].healthy is False and view["dev"][0].weight == 5
    assert len(static_view(providers, "S")["main"]) == 2


def test_with_baggage_member_replaces_the_member_and_keeps_the_rest() -> None:
    from routing import baggage_member, with_baggage_member

    header = with_baggage_member("user=7, env=old ,trace=x", "env", "feature-1")
    assert header == "user=7,trace=x,env=feature-1"
    assert baggage_member(header, "env") == "feature-1"
    assert with_baggage_member("", "env", "main") == "env=main"
