"""laneway.yaml loading: the shipped example is valid; mistakes are named, never ignored."""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy.config import ConfigError, ZooKeeperRegistryConfig, load_config

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_the_example_config_loads_with_its_routes() -> None:
    config = load_config(EXAMPLES / "laneway.yaml")
    assert config.listen.dubbo == "127.0.0.1:20880"
    assert config.listen.grpc == "127.0.0.1:50051"
    assert config.routes_path == EXAMPLES / "routes.yaml"
    assert config.routes_path.is_file()
    assert config.limits.drain_timeout == 30


def test_zookeeper_registry_is_selected_by_kind(tmp_path: Path) -> None:
    path = tmp_path / "laneway.yaml"
    path.write_text("registry: {kind: zookeeper, hosts: '127.0.0.1:2181'}\n")
    config = load_config(path)
    assert isinstance(config.registry, ZooKeeperRegistryConfig)
    assert config.registry.root == "/dubbo"


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("listen: {dubbo: nowhere}\n", ["listen", "host:port"]),
        ("registery: {}\n", ["registery"]),
        ("limits: {drain_timeout: -1}\n", ["drain_timeout"]),
        ("registry: {kind: etcd}\n", ["registry"]),
        ("listen: [\n", ["laneway.yaml"]),
        ("- a list\n", ["mapping"]),
    ],
)
def test_mistakes_are_reported_with_their_place(
    tmp_path: Path, text: str, words: list[str]
) -> None:
    path = tmp_path / "laneway.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    for word in words:
        assert word in str(info.value)


def test_missing_and_oversize_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.yaml")
    big = tmp_path / "big.yaml"
    big.write_text("# " + "x" * (1 << 20) + "\n")
    with pytest.raises(ConfigError, match="larger than"):
        load_config(big)
