"""`laneway token issue / revoke`, `laneway tunnel` and `laneway tunnel ls` as real processes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import trio

from proxy.demo import DEMO_VERSION, GREETER, DemoProvider
from proxy.tunnel.tokens import token_id, verify_token
from tests.integration.tunnel.stack import ENV, SECRET, running_tunnel_stack, until

ROOT = Path(__file__).resolve().parents[3]
LANEWAY = [sys.executable, "-m", "proxy"]
STARTUP = 30.0  # why: a cold interpreter importing grpcio on a busy CI box


def laneway(*args: str | Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*LANEWAY, *map(str, args)], capture_output=True, text=True, timeout=STARTUP, cwd=cwd
    )


def test_token_issue_and_revoke(tmp_path: Path) -> None:
    (tmp_path / "tunnel.secret").write_text(SECRET + "\n")
    config = tmp_path / "laneway.yaml"
    config.write_text(
        "listen: {tunnel: 127.0.0.1:0}\n"
        "tunnel: {secret_file: tunnel.secret, protected_envs: [staging]}\n"
    )
    out = laneway(
        "token", "issue", "--env", ENV, "--ttl", "2h", "--services", "com.acme.*", "-c", config
    )
    assert out.returncode == 0, out.stderr
    token = out.stdout.strip()
    claims = verify_token(SECRET.encode(), token, time.time())
    assert claims.env == ENV and claims.services == ("com.acme.*",)
    assert 7190 <= claims.expires_at - time.time() <= 7200
    assert token_id(token) in out.stderr and SECRET not in out.stdout + out.stderr
    for env in ("main", "staging"):
        refused = laneway("token", "issue", "--env", env, "-c", config)
        assert refused.returncode == 2 and "can never be claimed" in refused.stderr
    assert "ttl" in laneway("token", "issue", "--env", ENV, "--ttl", "2w", "-c", config).stderr
    revoked = tmp_path / "revoked.txt"
    assert laneway("token", "revoke", token, "--file", revoked).returncode == 0
    assert revoked.read_text() == token_id(token) + "\n"
    (tmp_path / "empty.yaml").write_text("listen: {tunnel: 127.0.0.1:0}\n")
    missing = laneway("token", "issue", "--env", ENV, "-c", tmp_path / "empty.yaml")
    assert missing.returncode == 2 and "secret" in missing.stderr


async def read_until(stream: trio.abc.ReceiveStream, marker: bytes, buf: bytearray) -> None:
    with trio.fail_after(STARTUP):
        while marker not in buf:
            data = await stream.receive_some(4096)
            assert data, f"process ended before {marker!r}: {bytes(buf)!r}"
            buf += data


async def test_laneway_tunnel_serves_until_ctrl_c() -> None:
    async with running_tunnel_stack(admin=True) as stack:
        local = DemoProvider("laptop", frozenset({GREETER}))
        await stack.nursery.start(local.run)
        token = stack.token()
        args = [
            *LANEWAY,
            "tunnel",
            "--server",
            stack.tunnel_address,
            "--token",
            token,
            "--service",
            f"{GREETER}:{DEMO_VERSION}",
            "--to",
            local.address,
            "--name",
            "cli-laptop",
        ]
        bad = await trio.run_process(
            [a if a != token else token[:-4] + "AAAA" for a in args],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
            cwd=ROOT,
        )
        assert bad.returncode == 1
        assert b"refused: token refused: token signature is invalid" in bad.stderr
        proc = await trio.lowlevel.open_process(args, stdout=subprocess.PIPE, cwd=ROOT)
        assert proc.stdout is not None
        out = bytearray()
        try:
            await read_until(proc.stdout, b"Ctrl-C leaves", out)
            banner = out.decode()
            assert f"env {ENV}" in banner and f"x-env: {ENV}" in banner
            assert f"laneway call dubbo://{stack.bound.dubbo}/{GREETER}" in banner
            client = await stack.client()
            tagged = await stack.call(client, tag=ENV)
            assert tagged.value == "Hello, world! (served by laptop)"
            await client.aclose()
            ls = await trio.run_process(
                [*LANEWAY, "tunnel", "ls", "--server", stack.tunnel_address, "--token", token],
                capture_stdout=True,
                cwd=ROOT,
            )
            listing = ls.stdout.decode()
            assert f"env={ENV}" in listing and "cli-laptop" in listing and GREETER in listing
            assert stack.bound.admin is not None
            admin_ls = await trio.run_process(
                [*LANEWAY, "tunnel", "ls", "--admin", stack.bound.admin, "--json"],
                capture_stdout=True,
                cwd=ROOT,
            )
            (listed,) = json.loads(admin_ls.stdout)
            assert listed["env"] == ENV and listed["client"] == "cli-laptop"
            proc.send_signal(signal.SIGINT)
            with trio.fail_after(STARTUP):
                assert await proc.wait() == 0
            await read_until(proc.stdout, b"left", out)
            await until(lambda: ENV not in stack.lanes())
        finally:
            proc.kill()
            await proc.wait()
            await proc.stdout.aclose()
