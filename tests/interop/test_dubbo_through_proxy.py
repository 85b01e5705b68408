"""Issue 5 interop: a real Dubbo consumer (npm dubbo2.js) calls through laneway to real
Dubbo providers (npm sofa-rpc-node + dubbo-remoting) in main and in a project env.

Asserts which env served each call and that the tag reached the provider. Node or a
missing package fails the test, never skips it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio

from proxy.config import LanewayConfig, Listen
from proxy.registry.model import Provider, ServiceKey
from proxy.serve import Proxy

pytestmark = pytest.mark.interop

HERE = Path(__file__).resolve().parent
SCRIPTS = HERE / "dubbo"
NODE_MODULES = HERE / "node" / "node_modules"
SERVICE = "com.laneway.interop.EchoService"
FEATURE = "feature-1"
PEER_TIMEOUT_S = 30.0
# why: node starts in ~0.3 s; a loaded 2-core CI machine may take many times that.


def _node() -> str:
    node = shutil.which("node")
    assert node, "node is required (tests/setup_deps.sh installs the npm peers)"
    for package in ("sofa-rpc-node", "dubbo-remoting", "dubbo2.js"):
        assert (NODE_MODULES / package / "package.json").is_file(), f"npm {package} missing"
    return node


@asynccontextmanager
async def sofa_provider(label: str) -> AsyncIterator[int]:
    """A sofa-rpc-node Dubbo provider answering ``whoami()`` with ``label``; yields its port."""
    proc = await trio.lowlevel.open_process(
        [_node(), str(SCRIPTS / "provider.js"), label], stdout=subprocess.PIPE
    )
    try:
        assert proc.stdout is not None
        buf = b""
        with trio.fail_after(PEER_TIMEOUT_S):
            while b"\n" not in buf:
                chunk = await proc.stdout.receive_some()
                assert chunk, "sofa-rpc-node provider exited before listening"
                buf += chunk
        yield int(json.loads(buf.split(b"\n")[0])["port"])
    finally:
        proc.kill()
        with trio.move_on_after(PEER_TIMEOUT_S):
            await proc.wait()
        if proc.stdout is not None:
            await proc.stdout.aclose()


async def dubbo2js_calls(port: int, calls: list[dict[str, object]]) -> list[dict[str, object]]:
    result = await trio.run_process(
        [_node(), str(SCRIPTS / "proxy_consumer.js"), str(port), json.dumps(calls)],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()
    return [json.loads(line) for line in result.stdout.decode().splitlines()]


def _call(method: str, *args: str, **attachments: str) -> dict[str, object]:
    return {
        "interface": SERVICE,
        "version": "1.0.0",
        "method": method,
        "args": list(args),
        "attachments": attachments,
    }


async def test_dubbo2js_through_laneway_to_sofa_providers_by_env() -> None:
    config = LanewayConfig(listen=Listen(dubbo="127.0.0.1:0", registry=None))
    proxy = Proxy(config)
    async with trio.open_nursery() as nursery:
        bound = await nursery.start(proxy.run)
        assert bound.dubbo is not None
        async with sofa_provider("main") as main_port, sofa_provider(FEATURE) as feature_port:
            key = ServiceKey.of(SERVICE, "1.0.0")
            for port, env in ((main_port, "main"), (feature_port, FEATURE)):
                provider = Provider(address=f"127.0.0.1:{port}", env=env, source="registry")
                await proxy.registry.publish(key, provider)
            answers = await dubbo2js_calls(
                int(bound.dubbo.rpartition(":")[2]),
                [
                    _call("whoami"),
                    _call("whoami", **{"dubbo.tag": FEATURE}),
                    _call("attachment", "dubbo.tag", **{"dubbo.tag": FEATURE}),
                    _call("attachment", "x-env", **{"dubbo.tag": FEATURE}),
                    _call("echo", "world", **{"x-env": FEATURE}),
                    _call("whoami", **{"dubbo.tag": "feature-without-providers"}),
                    _call("attachment", "dubbo.tag"),
                ],
            )
        nursery.cancel_scope.cancel()
    assert [a["ok"] for a in answers] == [True] * 7, answers
    values = [a["value"] for a in answers]
    assert values[0] == "main"  # untagged: main only
    assert values[1] == FEATURE  # tagged: the project env's provider
    assert values[2] == FEATURE  # the tag reached the provider...
    assert values[3] == FEATURE  # ...in every configured carrier
    assert values[4] == "hello world"
    assert values[5] == "main"  # an env without the service falls back to main
    assert values[6] == "<absent>"  # nothing is injected into untagged calls
