"""Registry model: normalisation (docs/registry.md table), validation, lanes."""

from __future__ import annotations

import pytest

from proxy.registry.model import (
    InvalidRegistration,
    Provider,
    ServiceKey,
    group_by_env,
    join_address,
    split_address,
)


@pytest.mark.parametrize(
    ("version", "group", "want"),
    [
        (None, None, ("0.0.0", "HSF")),
        ("", "", ("0.0.0", "HSF")),
        ("1.0.0", "", ("1.0.0", "HSF")),
        ("", "payments", ("0.0.0", "payments")),
        ("2.1", "g", ("2.1", "g")),
    ],
)
def test_service_key_normalisation(
    version: str | None, group: str | None, want: tuple[str, str]
) -> None:
    key = ServiceKey.of("com.foo.Bar", version, group)
    assert (key.version, key.group) == want
    assert key.unique_name == f"com.foo.Bar:{want[0]}"


def test_dubbo_view_of_normalised_key() -> None:
    key = ServiceKey.of("com.foo.Bar")
    assert (key.dubbo_version, key.dubbo_group) == ("", "")
    key = ServiceKey.of("com.foo.Bar", "1.0", "g")
    assert (key.dubbo_version, key.dubbo_group) == ("1.0", "g")


def test_key_parse_and_str_round_trip() -> None:
    assert ServiceKey.parse("a.B") == ServiceKey("a.B", "0.0.0", "HSF")
    assert ServiceKey.parse("a.B:1.0") == ServiceKey("a.B", "1.0", "HSF")
    key = ServiceKey.parse("a.B:1.0:g")
    assert ServiceKey.parse(str(key)) == key
    with pytest.raises(InvalidRegistration):
        ServiceKey.parse("a:b:c:d")
    with pytest.raises(InvalidRegistration):
        ServiceKey.of("")


def test_keys_are_hashable_and_ordered() -> None:
    keys = {ServiceKey.of("b"), ServiceKey.of("a"), ServiceKey.of("a")}
    assert sorted(keys) == [ServiceKey.of("a"), ServiceKey.of("b")]


@pytest.mark.parametrize(
    "bad",
    [
        {"address": "127.0.0.1"},
        {"address": "127.0.0.1:0"},
        {"address": "127.0.0.1:70000"},
        {"address": "::1:80"},
        {"address": "a/b:80"},
        {"address": "h:80", "protocol": "http"},
        {"address": "h:80", "env": ""},
        {"address": "h:80", "env": "bad env"},
        {"address": "h:80", "weight": -1},
        {"address": "h:80", "weight": 10**9},
    ],
)
def test_provider_validation(bad: dict[str, object]) -> None:
    with pytest.raises(InvalidRegistration):
        Provider(**bad)  # type: ignore[arg-type]


def test_provider_defaults_and_identity() -> None:
    p = Provider("[::1]:20880")
    assert (p.host, p.port, p.env, p.weight, p.protocol) == ("::1", 20880, "main", 100, "dubbo")
    assert p.identity == ("dubbo", "[::1]:20880")
    assert hash(p) == hash(Provider("[::1]:20880"))
    assert join_address("::1", 1) == "[::1]:1"
    assert split_address("h:1") == ("h", 1)


def test_group_by_env_is_sorted_and_read_only() -> None:
    a = Provider("b:1", env="main")
    b = Provider("a:1", env="main")
    c = Provider("c:1", env="feature-x")
    lanes = group_by_env([a, b, c])
    assert list(lanes) == ["feature-x", "main"]
    assert lanes["main"] == (b, a)
    with pytest.raises(TypeError):
        lanes["x"] = ()  # type: ignore[index]
