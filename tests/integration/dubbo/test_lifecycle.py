"""Reload, drain and the real processes: `laneway serve` and `laneway demo`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import trio

from proxy.demo import GREETER, INVENTORY
from proxy.net.dubbo_client import CallResult, call_once
from tests.integration.dubbo.stack import FEATURE, running_stack, until

TO_FEATURE = f"""
rules:
  - name: all-to-feature
    match: {{service: {GREETER}}}
    route: {{env: {FEATURE}}}
"""
TO_MAIN = """
rules: []
"""
INVALID = """
rules:
  - name: broken
    match: {service: 7, colour: red}
"""


async def test_hot_reload_under_load_loses_no_call(tmp_path: Path) -> None:
    """R8 hot-reload under load (Dubbo): reloads every 100 ms, one invalid file in the mix."""
    async with running_stack(TO_MAIN, tmp_path, watch_routes=False) as stack:
        routes = tmp_path / "routes.yaml"
        results: list[CallResult] = []
        versions: set[str] = set()
        stop = trio.Event()

        async def load() -> None:
            client = await stack.client()
            while not stop.is_set():
                results.append(await stack.call(client=client))
            await client.aclose()

        async with trio.open_nursery() as nursery:
            for _ in range(4):
                nursery.start_soon(load)
            for text in (TO_FEATURE, TO_MAIN, INVALID, TO_FEATURE, TO_MAIN, TO_FEATURE):
                routes.write_text(text)
                assert stack.proxy.reload() is (text is not INVALID)
                versions.add(stack.proxy.tables.current.version)
                await trio.sleep(0.1)
            stop.set()
        assert results and all(r.ok for r in results)
        served = {r.attachments["served-by"] for r in results}
        assert served == {"main", FEATURE}
        assert stack.proxy.tables.reload_failures == 1
        assert len(versions) == 2
        last_error = stack.proxy.tables.last_error
        assert last_error is None  # a later good reload clears it


async def test_invalid_reload_keeps_the_old_table_and_reports_file_line_col(
    tmp_path: Path,
) -> None:
    """R8 (invalid file part) and R9: the old table stays live."""
    async with running_stack(TO_FEATURE, tmp_path, watch_routes=False) as stack:
        before = stack.proxy.tables.current.version
        (tmp_path / "routes.yaml").write_text(INVALID)
        assert stack.proxy.reload() is False
        assert stack.proxy.tables.current.version == before
        error = stack.proxy.tables.last_error or ""
        assert "routes.yaml:4:22: error:" in error, error
        result = await stack.call()
        assert result.attachments["served-by"] == FEATURE


async def test_routes_file_is_watched(tmp_path: Path) -> None:
    async with running_stack(TO_MAIN, tmp_path) as stack:
        assert (await stack.call()).attachments["served-by"] == "main"
        (tmp_path / "routes.yaml").write_text(TO_FEATURE)
        await until(lambda: stack.proxy.tables.reloads > 0)
        assert (await stack.call()).attachments["served-by"] == FEATURE


async def test_drain_sends_readonly_and_lets_calls_in_flight_finish() -> None:
    """R10 graceful-drain (Dubbo part)"""
    async with running_stack(drain_timeout=5) as stack:
        client = await stack.client()
        results: list[CallResult] = []

        async def slow() -> None:
            results.append(await stack.call("sleep", (300,), client=client))

        async with trio.open_nursery() as nursery:
            for _ in range(20):
                nursery.start_soon(slow)
            await trio.sleep(0.1)
            stack.proxy.shutdown()
            await trio.sleep(0.05)
            assert client.readonly_seen == 1
            host, _, port = stack.dubbo.rpartition(":")
            refused = False
            try:
                probe = await trio.open_tcp_stream(host, int(port))
                await probe.aclose()
            except OSError:
                refused = True
            assert refused, "new connections must be refused while draining"
        assert len(results) == 20 and all(r.ok for r in results)
        with trio.fail_after(2):
            await stack.proxy.stopped.wait()
        await client.aclose()


def _laneway(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "proxy", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


async def _stop(proc: subprocess.Popen[str], signum: int) -> tuple[int, str]:
    """Signal ``proc``, wait for it (10 s at most), close its pipes; (exit code, stderr)."""
    proc.send_signal(signum)
    with trio.fail_after(10):
        _out, err = await trio.to_thread.run_sync(proc.communicate)
    return proc.returncode, err


async def _ready_line(proc: subprocess.Popen[str], prefix: str) -> str:
    assert proc.stdout is not None
    with trio.fail_after(20):
        while True:
            line = await trio.to_thread.run_sync(proc.stdout.readline)
            assert line, f"process exited early: {proc.stderr.read() if proc.stderr else ''}"
            if line.startswith(prefix):
                return line


async def test_demo_runs_as_a_process_and_routes_by_tag() -> None:
    proc = _laneway("demo", "--dubbo", "127.0.0.1:0")
    try:
        line = await _ready_line(proc, "laneway demo ready:")
        dubbo = line.split("dubbo=")[1].split()[0]
        with trio.fail_after(10):
            plain = await call_once(dubbo, GREETER, "sayHello", ["ann"], version="1.0.0")
            tagged = await call_once(
                dubbo, GREETER, "sayHello", ["ann"], version="1.0.0",
                attachments={"dubbo.tag": FEATURE},
            )  # fmt: skip
            fallback = await call_once(
                dubbo, INVENTORY, "stock", ["sku-1"], version="1.0.0",
                attachments={"dubbo.tag": FEATURE},
            )  # fmt: skip
        assert plain.value == "Hello, ann! (served by main)"
        assert tagged.value == f"Hello, ann! (served by {FEATURE})"
        assert fallback.attachments["served-by"] == "main"
        # The same through `laneway call`, as the demo tells a person to do.
        url = f"dubbo://{dubbo}/{GREETER}"
        cli = [sys.executable, "-m", "proxy", "call", url, "sayHello", '["bo"]']
        ok = await trio.run_process(
            [*cli, "--version", "1.0.0", "--tag", FEATURE], capture_stdout=True
        )
        answer = json.loads(ok.stdout)
        assert answer["value"] == f"Hello, bo! (served by {FEATURE})"
        assert answer["attachments"]["seen-tag"] == FEATURE
        missing = await trio.run_process(
            [*cli, "--version", "9.9.9"], capture_stdout=True, check=False
        )
        assert missing.returncode == 1
        assert json.loads(missing.stdout)["status"] == 60
    finally:
        code, err = await _stop(proc, signal.SIGINT)
    assert code == 0, err


async def test_serve_reads_its_config_reloads_on_sighup_and_drains_on_sigterm(
    tmp_path: Path,
) -> None:
    (tmp_path / "routes.yaml").write_text(TO_MAIN)
    (tmp_path / "laneway.yaml").write_text(
        "listen: {dubbo: '127.0.0.1:0', registry: '127.0.0.1:0'}\n"
        "routes: routes.yaml\n"
        "limits: {drain_timeout: 2}\n"
    )
    proc = _laneway("serve", "--config", str(tmp_path / "laneway.yaml"))
    try:
        line = await _ready_line(proc, "laneway ready:")
        dubbo = line.split("dubbo=")[1].split()[0]
        with trio.fail_after(10):
            result = await call_once(dubbo, GREETER, "sayHello", ["x"], version="1.0.0")
        assert result.status == 60  # nothing registered yet: a clear no-route answer
        assert result.error_message and GREETER in result.error_message
        (tmp_path / "routes.yaml").write_text(INVALID)
        proc.send_signal(signal.SIGHUP)
        assert proc.stderr is not None
        stderr = proc.stderr
        seen = ""
        with trio.fail_after(10):
            # Other log lines (the failed call above) may come first; the reload error and
            # its file:line:col may be one line (JSON logs) or several (a terminal).
            while "routes reload failed" not in seen or "routes.yaml:" not in seen:
                line = await trio.to_thread.run_sync(stderr.readline)
                assert line, f"laneway exited without reporting the failed reload: {seen}"
                if "routes reload failed" in line or seen:
                    seen += line
    finally:
        code, err = await _stop(proc, signal.SIGTERM)
    assert code == 0, err


def test_serve_refuses_a_bad_config_with_a_clear_message(tmp_path: Path) -> None:
    cfg = tmp_path / "laneway.yaml"
    cfg.write_text("listen: {dubbo: 'nowhere'}\nregistery: {}\n")
    out = subprocess.run(
        [sys.executable, "-m", "proxy", "serve", "--config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 2
    assert "registery" in out.stderr and "listen" in out.stderr
