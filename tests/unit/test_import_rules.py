"""Layering rules (STYLE.md): codecs never touch trio or sockets; routing never imports proxy.

Checked statically on the source (ast), so a lazy import inside a function is caught too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _files(package: str) -> list[Path]:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"no Python files under {package}"
    return files


def _top(name: str) -> str:
    return name.split(".")[0]


@pytest.mark.parametrize("path", _files("proxy/codecs"), ids=lambda p: str(p.relative_to(ROOT)))
def test_codecs_are_sans_io(path: Path) -> None:
    banned = {"trio", "socket", "asyncio", "selectors", "time", "logging"}
    bad = {n for n in _imports(path) if _top(n) in banned or n.startswith("proxy.net")}
    assert not bad, f"{path} imports {sorted(bad)}"


@pytest.mark.parametrize("path", _files("routing"), ids=lambda p: str(p.relative_to(ROOT)))
def test_routing_is_pure(path: Path) -> None:
    bad = {n for n in _imports(path) if _top(n) in {"trio", "proxy", "socket", "asyncio"}}
    assert not bad, f"{path} imports {sorted(bad)}"


def test_rule_catches_a_violation(tmp_path: Path) -> None:
    """The checker itself can fail: a file importing trio is reported."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    import trio.lowlevel\n")
    assert "trio.lowlevel" in _imports(bad)


SOCKET_OWNERS = ("proxy/net/", "proxy/tunnel/", "proxy/demo.py")
# proxy/demo.py runs demo *providers* (it stands for the services behind laneway).


def _socket_users(path: Path) -> set[str]:
    text = path.read_text()
    found = {n for n in _imports(path) if _top(n) == "socket"}
    found |= {
        word for word in ("open_tcp_stream", "open_tcp_listeners", "trio.socket") if word in text
    }
    return found


NOT_SOCKET_OWNERS = [
    p for p in _files("proxy") if not str(p.relative_to(ROOT)).startswith(SOCKET_OWNERS)
]


@pytest.mark.parametrize("path", NOT_SOCKET_OWNERS, ids=lambda p: str(p.relative_to(ROOT)))
def test_only_net_and_tunnel_touch_sockets(path: Path) -> None:
    """STYLE.md layering: only proxy.net and proxy.tunnel await on sockets."""
    users = _socket_users(path)
    assert not users, f"{path.relative_to(ROOT)} uses sockets: {sorted(users)}"


def test_socket_rule_catches_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import trio\n\nasync def f():\n    await trio.open_tcp_stream('h', 1)\n")
    assert _socket_users(bad) == {"open_tcp_stream"}
