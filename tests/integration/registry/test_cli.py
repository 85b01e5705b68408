"""`laneway registry serve | publish | ls` and the provider example, as real processes."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from kazoo.client import KazooClient

from proxy.registry.dubbo_url import provider_node_name, providers_path
from proxy.registry.model import Provider, ServiceKey

ROOT = Path(__file__).resolve().parents[3]
LANEWAY = [sys.executable, "-m", "proxy"]
STARTUP = 30.0  # why: a cold interpreter importing grpcio on a busy CI box
EPHEMERAL_GONE_S = 10.0
# why: a publisher that exits closes its ZooKeeper session and the server deletes its
# ephemeral node at once; a loaded box may take a moment to show it, a persistent node
# would never go.


@contextmanager
def running(args: list[str], ready_prefix: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """Start a long-running command; yield it with its first stdout line (its ready line)."""
    proc = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith(ready_prefix), (
            f"{args}: {line!r} {proc.stderr and proc.stderr.read()}"
        )
        yield proc, line
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(STARTUP)
        finally:
            proc.kill()
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()


def ls(*args: str) -> list[dict[str, object]]:
    out = subprocess.run(
        [*LANEWAY, "registry", "ls", "--format", "json", *args],
        capture_output=True,
        text=True,
        timeout=STARTUP,
        cwd=ROOT,
        check=True,
    )
    result: list[dict[str, object]] = json.loads(out.stdout)
    return result


def test_serve_publish_ls() -> None:
    """The ready line names the bound port; a published provider is listed until the
    publishing process ends (its stream is its lease)."""
    serve = [*LANEWAY, "registry", "serve", "--listen", "127.0.0.1:0", "--heartbeat", "0.2"]
    with running(serve, "laneway registry listening on 127.0.0.1:") as (_, ready):
        addr = ready.rsplit(" ", 1)[1]
        publish = [
            *LANEWAY,
            "registry",
            "publish",
            "--registry",
            addr,
            "--service",
            "demo.Greeter:1.0.0",
            "--address",
            "127.0.0.1:50051",
            "--protocol",
            "tri",
            "--env",
            "feature-a",
        ]
        with running(publish, "published demo.Greeter:1.0.0:HSF feature-a"):
            listed = ls("--registry", addr)
            assert listed == [
                {
                    "service": {"interface": "demo.Greeter", "version": "1.0.0", "group": "HSF"},
                    "unique_name": "demo.Greeter:1.0.0",
                    "stale": False,
                    "lanes": {
                        "feature-a": [
                            {
                                "address": "127.0.0.1:50051",
                                "protocol": "tri",
                                "env": "feature-a",
                                "weight": 100,
                                "methods": [],
                                "application": "",
                                "source": "registry",
                                "metadata": {},
                            }
                        ]
                    },
                }
            ]
            assert ls("--registry", addr, "--env", "main") == []
            assert ls("--registry", addr, "--service", "other.Svc") == []
        assert ls("--registry", addr) == []


def test_ls_zookeeper(fleet: KazooClient, zk_chroot: str) -> None:
    key = ServiceKey.of("com.example.Greeter")
    p = Provider("10.0.0.1:20880", env="feature-b")
    fleet.create(f"{providers_path(key.interface)}/{provider_node_name(key, p)}", makepath=True)
    listed = ls("--zk", zk_chroot, "--service", "com.example.Greeter")
    assert [(x["unique_name"], list(x["lanes"])) for x in listed] == [  # type: ignore[call-overload]
        ("com.example.Greeter:0.0.0", ["feature-b"])
    ]
    text = subprocess.run(
        [*LANEWAY, "registry", "ls", "--zk", zk_chroot],
        capture_output=True,
        text=True,
        timeout=STARTUP,
        cwd=ROOT,
        check=True,
    ).stdout
    assert "com.example.Greeter:0.0.0:HSF" in text and "10.0.0.1:20880" in text


def test_ls_usage_and_unreachable() -> None:
    both = subprocess.run(
        [*LANEWAY, "registry", "ls"], capture_output=True, text=True, timeout=STARTUP
    )
    assert both.returncode == 2 and "exactly one of" in both.stderr
    gone = subprocess.run(
        [*LANEWAY, "registry", "ls", "--registry", "127.0.0.1:9"],
        capture_output=True,
        text=True,
        timeout=STARTUP,
    )
    assert gone.returncode == 1 and "UNAVAILABLE" in gone.stderr


def test_provider_example_registers_itself() -> None:
    serve = [*LANEWAY, "registry", "serve", "--listen", "127.0.0.1:0"]
    with running(serve, "laneway registry listening on") as (_, ready):
        addr = ready.rsplit(" ", 1)[1]
        example = [sys.executable, "examples/provider_register.py", "--registry", addr]
        with running(example, "registered"):
            listed = ls("--registry", addr)
            assert [x["unique_name"] for x in listed] == ["demo.Greeter:1.0.0"]


def test_publish_to_zookeeper_is_ephemeral(fleet: KazooClient, zk_chroot: str) -> None:
    """`publish --zk` writes a Java-format ephemeral node that goes with the process."""
    path = providers_path("com.example.Pub")
    publish = [
        *LANEWAY,
        "registry",
        "publish",
        "--zk",
        zk_chroot,
        "--service",
        "com.example.Pub:2.0",
        "--address",
        "127.0.0.1:20880",
        "--env",
        "feature-z",
        "--methods",
        "a,b",
    ]
    with running(publish, "published com.example.Pub:2.0:HSF feature-z") as (proc, _):
        names = fleet.get_children(path)
        assert len(names) == 1 and "dubbo.tag%3Dfeature-z" in names[0]
        assert "version%3D2.0" in names[0] and "methods%3Da%2Cb" in names[0]
    assert proc.returncode == 0, proc.returncode  # a clean exit, not the kill
    gone_by = time.monotonic() + EPHEMERAL_GONE_S
    while fleet.get_children(path) and time.monotonic() < gone_by:
        time.sleep(0.05)
    assert fleet.get_children(path) == []


def test_serve_on_a_busy_port_fails_with_a_message() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        out = subprocess.run(
            [*LANEWAY, "registry", "serve", "--listen", f"127.0.0.1:{port}"],
            capture_output=True, text=True, timeout=STARTUP,
        )  # fmt: skip
    assert out.returncode == 1
    assert f"laneway registry: cannot listen on 127.0.0.1:{port}" in out.stderr
    assert "Traceback" not in out.stderr


def test_ls_unreachable_zookeeper_fails_with_a_message() -> None:
    out = subprocess.run(
        [*LANEWAY, "registry", "ls", "--zk", "127.0.0.1:9", "--timeout", "1"],
        capture_output=True, text=True, timeout=STARTUP,
    )  # fmt: skip
    assert out.returncode == 1
    assert "unreachable" in out.stderr and "Traceback" not in out.stderr
