"""`laneway serve` as a process: the ready line names the admin address, a failed call is
one JSON log line on stderr (with env and trace id), and ``POST /drain`` stops it."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
from pathlib import Path

import trio

from proxy.demo import GREETER
from proxy.net.dubbo_client import call_once
from proxy.registry.model import split_address

PROCESS_LIMIT_S = 20.0
# why: laneway serve is ready in about a second; 20 s means it is stuck.


def post(admin: str, path: str) -> int:
    host, port = split_address(admin)
    conn = http.client.HTTPConnection(host, port, timeout=PROCESS_LIMIT_S)
    try:
        conn.request("POST", path)
        return conn.getresponse().status
    finally:
        conn.close()


def serve(config: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "proxy", "serve", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


async def test_serve_reports_admin_logs_json_and_drains_by_post(tmp_path: Path) -> None:
    (tmp_path / "laneway.yaml").write_text(
        "listen: {dubbo: '127.0.0.1:0', admin: '127.0.0.1:0', registry: '127.0.0.1:0'}\n"
        "telemetry: {tracing: true}\n"
    )
    proc = serve(tmp_path / "laneway.yaml")
    try:
        assert proc.stdout is not None and proc.stderr is not None
        stdout, stderr = proc.stdout, proc.stderr
        with trio.fail_after(PROCESS_LIMIT_S):
            line = await trio.to_thread.run_sync(stdout.readline)
        assert line.startswith("laneway ready:"), line
        fields = dict(part.split("=", 1) for part in line.split()[2:])
        admin, dubbo = fields["admin"], fields["dubbo"]
        with trio.fail_after(PROCESS_LIMIT_S):
            result = await call_once(
                dubbo, GREETER, "sayHello", ["x"], attachments={"dubbo.tag": "feature-1"}
            )
            assert result.status == 60  # nothing registered: no route
            err = json.loads(await trio.to_thread.run_sync(stderr.readline))
        assert err["logger"] == "laneway.calls" and err["level"] == "warning"
        assert err["status"] == "SERVICE_NOT_FOUND" and err["env"] == "feature-1"
        assert len(err["trace_id"]) == 32
        assert await trio.to_thread.run_sync(post, admin, "/drain") == 202
        with trio.fail_after(PROCESS_LIMIT_S):
            code = await trio.to_thread.run_sync(proc.wait)
        assert code == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
