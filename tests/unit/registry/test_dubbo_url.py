"""Dubbo provider URLs (as ZooKeeper node names) and Nacos service names <-> the model."""

from __future__ import annotations

import pytest

from proxy.registry.dubbo_url import (
    MAX_URL_LENGTH,
    MalformedUrl,
    java_url_decode,
    java_url_encode,
    nacos_service_name,
    parse_nacos_service_name,
    parse_provider_url,
    provider_node_name,
    provider_url,
    providers_path,
)
from proxy.registry.model import InvalidRegistration, Provider, ServiceKey, metadata_of

# A node name as Java Dubbo 2.7 writes it (URL.encode(url.toFullString())).
JAVA_NODE = (
    "dubbo%3A%2F%2F10.0.0.7%3A20880%2Fcom.foo.BarService%3Fanyhost%3Dtrue%26application%3Dshop"
    "%26deprecated%3Dfalse%26dubbo%3D2.0.2%26dubbo.tag%3Dfeature-login%26dynamic%3Dtrue"
    "%26generic%3Dfalse%26group%3Dg1%26interface%3Dcom.foo.BarService%26methods%3Dget%2Cput"
    "%26pid%3D4242%26release%3D2.7.8%26side%3Dprovider%26timestamp%3D1700000000000"
    "%26version%3D1.0.0%26weight%3D50"
)


def test_parse_java_node_name() -> None:
    key, p = parse_provider_url(JAVA_NODE)
    assert key == ServiceKey("com.foo.BarService", "1.0.0", "g1")
    assert p.address == "10.0.0.7:20880"
    assert (p.protocol, p.env, p.weight) == ("dubbo", "feature-login", 50)
    assert p.methods == ("get", "put")
    assert (p.application, p.source) == ("shop", "zookeeper")
    assert p.meta("release") == "2.7.8"
    assert p.meta("side") == ""  # verified, not kept


def test_untagged_unversioned_ungrouped_is_main_default() -> None:
    key, p = parse_provider_url("dubbo://h:1/x.Y?interface=x.Y&side=provider")
    assert key == ServiceKey("x.Y", "0.0.0", "HSF")
    assert p.env == "main"
    assert p.weight == 100


def test_round_trip_through_node_name() -> None:
    key = ServiceKey.of("com.foo.Bar", "2.0", "blue")
    p = Provider(
        "[::1]:20880",
        "tri",
        "feature-x",
        7,
        ("a", "b"),
        "app",
        "zookeeper",
        metadata_of({"owner": "team a", "k~": "v*"}),
    )
    name = provider_node_name(key, p, java_defaults=False)
    assert "/" not in name and ":" not in name
    assert parse_provider_url(name) == (key, p)
    assert parse_provider_url(provider_url(key, p)) == (key, p)


def test_java_defaults_are_written_sorted() -> None:
    url = provider_url(ServiceKey.of("x.Y"), Provider("h:1"), java_defaults=True)
    query = url.split("?", 1)[1]
    names = [kv.split("=")[0] for kv in query.split("&")]
    assert names == sorted(names)
    assert {"dubbo", "pid", "timestamp", "side", "interface", "anyhost"} <= set(names)
    assert "version" not in names and "group" not in names  # unversioned, default group


def test_java_url_encoding_matches_urlencoder() -> None:
    # java.net.URLEncoder.encode("a b*~.-_/:?=&,", "UTF-8")
    assert java_url_encode("a b*~.-_/:?=&,") == "a+b*%7E.-_%2F%3A%3F%3D%26%2C"
    assert java_url_decode("a+b*%7E.-_%2F") == "a b*~.-_/"


@pytest.mark.parametrize(
    "bad",
    [
        "garbage%%%",
        "dubbo%3A%2F%2Fh%3A0%2Fx.Y%3Finterface%3Dx.Y",  # port 0
        "http%3A%2F%2Fh%3A80%2Fx.Y",  # not a provider protocol
        "dubbo://h:1/x.Y?side=consumer",
        "dubbo://h/x.Y",  # no port
        "dubbo://h:1/?side=provider",  # no interface
        "dubbo://h:1/x.Y?weight=heavy",
        "dubbo://h:1/x.Y?dubbo.tag=bad%20tag",
        "dubbo://h:99999/x.Y",
        "dubbo://h:1/x.Y?" + "a=b&" * (MAX_URL_LENGTH // 4),
        "dubbo%3A%2F%2Fh%3A1%2Fx%FF",  # invalid UTF-8
    ],
)
def test_malformed_urls_raise_malformed_url(bad: str) -> None:
    """Z4 registry-poison (parse level): every bad node is a MalformedUrl, nothing else."""
    with pytest.raises(MalformedUrl):
        parse_provider_url(bad)


def test_nacos_names() -> None:
    assert nacos_service_name(ServiceKey.of("X")) == "providers:X::"
    assert nacos_service_name(ServiceKey.of("X", "1.0", "g")) == "providers:X:1.0:g"
    assert parse_nacos_service_name("providers:X::") == ServiceKey.of("X")
    assert parse_nacos_service_name("providers:X:1.0:g") == ServiceKey.of("X", "1.0", "g")
    for bad in ("consumers:X::", "providers:X:1.0", "providers::1.0:g"):
        with pytest.raises(MalformedUrl):
            parse_nacos_service_name(bad)


def test_providers_path() -> None:
    assert providers_path("com.foo.Bar") == "/dubbo/com.foo.Bar/providers"
    assert providers_path("a.B", "/x/") == "/x/a.B/providers"


def test_query_is_split_like_dubbo_url_value_of() -> None:
    """Values are verbatim after the node name's one decoding (Dubbo does not decode twice)."""
    _, p = parse_provider_url("dubbo://h:1/x.Y?a=1%2B1&b=x+y&flag&c=k=v")
    assert (p.meta("a"), p.meta("b"), p.meta("flag"), p.meta("c")) == (
        "1%2B1",
        "x+y",
        "flag",
        "k=v",
    )


def test_unwritable_metadata_is_refused() -> None:
    bad = Provider("h:1", metadata=metadata_of({"a": "x&y"}))
    with pytest.raises(InvalidRegistration):
        provider_url(ServiceKey.of("x.Y"), bad)
