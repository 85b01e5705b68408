"""`laneway explain --admin URL` asks a running proxy (its live providers and health)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import trio

from proxy.demo import GREETER, INVENTORY
from tests.integration.admin.stack import FEATURE, admin_stack

ROUTES = """
environments:
  feature-1: {}
  locked: {strict: true}
"""


async def laneway(*args: str) -> subprocess.CompletedProcess[bytes]:
    return await trio.run_process(
        [sys.executable, "-m", "proxy", *args],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )


async def test_explain_admin_answers_from_the_live_proxy(tmp_path: Path) -> None:
    async with admin_stack(tmp_path, ROUTES) as stack:
        base = ["explain", "--admin", f"http://{stack.admin}", "--format", "json"]
        done = await laneway(*base, "--service", GREETER, "-H", f"x-env={FEATURE}")
        assert done.returncode == 0, done.stderr
        doc = json.loads(done.stdout)
        assert doc["lane"] == FEATURE and doc["carrier"] == "header x-env"
        assert doc["provider"]["address"] == stack.feature.address  # a live registration
        assert doc["chain"] == [FEATURE, "main"]
        done = await laneway(*base, "--service", INVENTORY, "-H", f"x-env={FEATURE}")
        assert json.loads(done.stdout)["fallback"] == "no_provider"
        done = await laneway(*base, "--service", GREETER, "-H", "x-env=locked")
        assert done.returncode == 2  # strict env without a provider: no route
        assert json.loads(done.stdout)["error_kind"] == "strict"
        text = await laneway(
            "explain", "--admin", stack.admin, "--service", GREETER, "-H", f"x-env={FEATURE}"
        )
        assert text.returncode == 0 and FEATURE in text.stdout.decode()


async def test_explain_admin_fails_clearly_without_a_proxy() -> None:
    with trio.socket.socket() as sock:
        await sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connection refused
        done = await laneway("explain", "--admin", f"127.0.0.1:{port}", "--service", "a.B")
    assert done.returncode == 1
    assert b"error:" in done.stderr and b"/explain" in done.stderr
    mixed = await laneway("explain", "--admin", "127.0.0.1:1", "--routes", "x", "--service", "a")
    assert mixed.returncode == 2 and b"--admin" in mixed.stderr
