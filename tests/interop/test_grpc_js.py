"""A second, independent HTTP/2 + gRPC client through laneway: npm ``@grpc/grpc-js``
(pure JavaScript, its own HTTP/2 from node's nghttp2) against grpcio providers in main
and ``feature-1``. One node process per test; node or the package missing fails the test.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import trio

from tests.integration.grpc.stack import FEATURE, SERVICE, running_grpc_stack

pytestmark = pytest.mark.interop

HERE = Path(__file__).resolve().parent
CLIENT = HERE / "grpcjs" / "client.js"
GRPC_JS = HERE / "node" / "node_modules" / "@grpc" / "grpc-js" / "package.json"
NODE_TIMEOUT_S = 30.0
# why: node starts in ~0.3 s; a loaded 2-core CI machine may take many times that.
OK, FAILED_PRECONDITION, UNIMPLEMENTED = 0, 9, 12


def unary(path: str, request: str = "", **metadata: str) -> dict[str, Any]:
    return {"kind": "unary", "path": path, "request": request, "metadata": metadata}


async def grpc_js(address: str, *calls: dict[str, Any]) -> list[dict[str, Any]]:
    """Run ``calls`` one after another in one node process (one grpc-js channel); return
    each call's outcome: code, details, replies (text), sizes."""
    node = shutil.which("node")
    assert node, "node is required (tests/setup_deps.sh installs the npm peers)"
    assert GRPC_JS.is_file(), "npm @grpc/grpc-js missing (tests/setup_deps.sh installs it)"
    with trio.fail_after(NODE_TIMEOUT_S):
        result = await trio.run_process(
            [node, str(CLIENT), address, json.dumps(calls)],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    assert result.returncode == 0, result.stderr.decode()
    outcomes = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert len(outcomes) == len(calls), result.stdout
    return outcomes


async def test_grpc_js_unary_calls_through_laneway() -> None:
    """G1 (second client): grpc-js unary calls, small and 1 MiB (flow control both ways)."""
    async with running_grpc_stack() as stack:
        size = 1024 * 1024
        hello, big = await grpc_js(
            stack.address, unary(f"/{SERVICE}/Hello", "hi"), unary(f"/{SERVICE}/Size", str(size))
        )
        assert (hello["code"], hello["replies"]) == (OK, ["main:hi"])
        assert (big["code"], big["sizes"]) == (OK, [size])
        assert stack.main.calls == 2
        assert stack.proxy.grpc_forwarder.stats.calls == 2


async def test_grpc_js_server_streaming_through_laneway() -> None:
    """G1 (second client): a grpc-js server-streaming call gets every message, in order."""
    async with running_grpc_stack() as stack:
        stream = {"kind": "server_stream", "path": f"/{SERVICE}/Count", "request": "300"}
        (out,) = await grpc_js(stack.address, stream)
        assert out["code"] == OK
        assert out["replies"] == [str(i) for i in range(300)]


async def test_grpc_js_tag_metadata_routes_to_the_env_and_is_propagated() -> None:
    """grpc-js metadata: ``x-env`` routes to feature-1, so does ``baggage: env=...``; the tag
    reaches the provider in every carrier."""
    async with running_grpc_stack() as stack:
        hello = f"/{SERVICE}/Hello"
        tagged, by_baggage = await grpc_js(
            stack.address,
            unary(hello, "hi", **{"x-env": FEATURE, "baggage": "user=7"}),
            unary(hello, "hi", baggage=f"env={FEATURE}"),
        )
        assert (tagged["code"], tagged["replies"]) == (OK, [f"{FEATURE}:hi"])
        assert (by_baggage["code"], by_baggage["replies"]) == (OK, [f"{FEATURE}:hi"])
        first = stack.feature.seen_metadata[0]
        assert (first["x-env"], first["dubbo.tag"]) == (FEATURE, FEATURE)
        assert first["baggage"] == f"user=7,env={FEATURE}"
        assert stack.main.calls == 0


async def test_grpc_js_sees_provider_and_laneway_error_statuses() -> None:
    """grpc-js error statuses: the provider's FAILED_PRECONDITION and message pass through;
    an unknown service gets laneway's own UNIMPLEMENTED (R3)."""
    async with running_grpc_stack() as stack:
        failed, missing = await grpc_js(
            stack.address, unary(f"/{SERVICE}/Fail", "because"), unary("/acme.Missing/Get")
        )
        assert (failed["code"], failed["details"]) == (FAILED_PRECONDITION, "no: because")
        assert missing["code"] == UNIMPLEMENTED
        assert "acme.Missing" in missing["details"]
        assert stack.main.calls == 1
