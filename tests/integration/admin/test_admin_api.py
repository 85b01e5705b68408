"""The admin HTTP API of a running proxy, asked with a real HTTP client after real calls."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import trio

from proxy.demo import GREETER
from proxy.registry.model import split_address
from tests.integration.admin.stack import FEATURE, admin_stack
from tests.integration.grpc.stack import until

GOOD_ROUTES = """
environments:
  feature-1: {}
  locked: {strict: true}
providers:
  - {service: acme.Static, address: "127.0.0.1:7101", env: main}
  - {service: acme.Static, address: "127.0.0.1:7102", env: feature-1}
"""
BROKEN_ROUTES = """
environments:
  feature-1: {strict: maybe}
"""


def metric(text: str, name: str, **labels: str) -> float:
    """The value of the one sample of ``name`` whose labels include ``labels``."""
    found = []
    for line in text.splitlines():
        if line.startswith("#") or not (line.startswith(name + "{") or line.startswith(name + " ")):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            found.append(float(line.rsplit(" ", 1)[1]))
    assert len(found) == 1, (name, labels, found)
    return found[0]


async def test_metrics_after_real_calls() -> None:
    async with admin_stack() as stack:
        assert (await stack.dubbo_call(tag=FEATURE)).ok
        assert (await stack.dubbo_call(tag="feature-9")).ok  # falls back to main
        assert await stack.grpc_call() == b"main:hi"
        await until(lambda: stack.proxy.telemetry.state.in_flight["grpc"] == 0)
        reply = await stack.http("GET", "/metrics")
        assert reply.status == 200
        assert reply.headers["content-type"].startswith("text/plain; version=0.0.4")
        text = reply.text
        count = "rpc_server_call_duration_seconds_count"
        assert metric(text, count, laneway_env=FEATURE, laneway_lane=FEATURE) == 1
        assert metric(text, count, laneway_env="feature-9", laneway_lane="main") == 1
        assert (
            metric(
                text, count, rpc_system_name="grpc", rpc_response_status_code="OK", laneway_env=""
            )
            == 1
        )
        assert 'le="5e-05"' in text and 'le="30"' in text
        assert metric(text, "laneway_decisions_total", outcome="fallback") == 1
        assert (
            metric(text, "laneway_decisions_total", outcome="matched", rpc_system_name="dubbo") == 1
        )
        assert metric(text, "laneway_registry_services") == 3
        assert metric(text, "laneway_registry_providers", env=FEATURE) == 2
        assert metric(text, "laneway_registry_stale") == 0
        assert metric(text, "laneway_registry_update_age_seconds") >= 0
        assert metric(text, "laneway_upstream_connections", rpc_system_name="dubbo") == 2
        assert (
            metric(text, "laneway_upstream_connects_total", rpc_system_name="grpc", result="ok")
            == 1
        )
        assert metric(text, "laneway_upstream_ejections_total") == 0
        assert metric(text, "laneway_calls_in_flight", rpc_system_name="dubbo") == 0
        assert metric(text, "laneway_reload_success") == 1
        assert metric(text, "laneway_reloads_total", result="failed") == 0
        assert (
            metric(text, "laneway_codec_errors_total", rpc_system_name="dubbo", kind="protocol")
            == 0
        )
        assert metric(text, "laneway_tunnels") == 0


async def test_codec_errors_are_counted_by_kind() -> None:
    """D1 dubbo-bad-magic (as a metric)"""
    async with admin_stack() as stack:
        assert stack.bound.dubbo is not None
        host, port = split_address(stack.bound.dubbo)
        sock = await trio.open_tcp_stream(host, port)
        await sock.send_all(b"\x00" * 16)
        with trio.fail_after(5):
            while await sock.receive_some(1024):
                pass  # the proxy answers (maybe) and closes
        await sock.aclose()
        text = (await stack.http("GET", "/metrics")).text
        assert (
            metric(text, "laneway_codec_errors_total", rpc_system_name="dubbo", kind="protocol")
            == 1
        )


async def test_ready_then_drain_by_post() -> None:
    """R10 graceful-drain (admin trigger)"""
    async with admin_stack() as stack:
        ready = await stack.http("GET", "/ready")
        assert ready.status == 200 and json.loads(ready.body)["ready"] is True
        assert (await stack.http("GET", "/drain")).status == 405  # mutations are POST only
        assert not stack.proxy.draining
        async with trio.open_nursery() as nursery:
            results = []

            async def slow_call() -> None:
                results.append(await stack.dubbo_call(method="sleep", args=(400,)))

            nursery.start_soon(slow_call)
            await until(lambda: stack.proxy.telemetry.state.in_flight["dubbo"] == 1)
            drain = await stack.http("POST", "/drain")
            assert drain.status == 202 and json.loads(drain.body) == {"draining": True}
            ready = await stack.http("GET", "/ready")
            assert ready.status == 503
            assert json.loads(ready.body) == {"ready": False, "reason": "draining"}
        assert results[0].ok  # the in-flight call finished during the drain
        with trio.fail_after(5):
            await stack.proxy.stopped.wait()


async def test_reload_by_post_keeps_the_old_table_on_error(tmp_path: Path) -> None:
    """R8 hot-reload (invalid file through the admin API)"""
    async with admin_stack(tmp_path, GOOD_ROUTES) as stack:
        before = stack.proxy.tables.current.version
        routes = tmp_path / "routes.yaml"
        routes.write_text(BROKEN_ROUTES)
        reply = await stack.http("POST", "/reload")
        assert reply.status == 422
        doc = json.loads(reply.body)
        assert doc["ok"] is False and doc["version"] == before
        assert re.search(r"routes\.yaml:\d+:\d+", doc["error"])
        assert stack.proxy.tables.current.version == before
        text = (await stack.http("GET", "/metrics")).text
        assert metric(text, "laneway_reload_success") == 0
        assert metric(text, "laneway_reloads_total", result="failed") == 1
        dump = json.loads((await stack.http("GET", "/config_dump")).body)
        assert dump["last_reload"]["ok"] is False
        routes.write_text(GOOD_ROUTES + "  - {service: acme.Other, address: '127.0.0.1:7103'}\n")
        reply = await stack.http("POST", "/reload")
        assert reply.status == 200 and json.loads(reply.body)["ok"] is True
        assert stack.proxy.tables.current.version != before
        text = (await stack.http("GET", "/metrics")).text
        assert metric(text, "laneway_reload_success") == 1
        assert metric(text, "laneway_reloads_total", result="ok") == 1
        assert metric(text, "laneway_reload_timestamp_seconds") > 0


async def test_config_dump_upstreams_and_registry() -> None:
    async with admin_stack() as stack:
        assert (await stack.dubbo_call(tag=FEATURE)).ok
        first = json.loads((await stack.http("GET", "/config_dump")).body)
        second = json.loads((await stack.http("GET", "/config_dump")).body)
        assert first["hash"] == second["hash"] and first["hash"].startswith("sha256:")
        assert first["config"]["telemetry"]["sampling"] == 1.0  # defaults are filled in
        assert first["config"]["limits"]["drain_timeout"] == 30.0
        assert first["routes"]["table_version"] == stack.proxy.tables.current.version
        assert first["last_reload"]["ok"] is True
        ups = json.loads((await stack.http("GET", "/upstreams")).body)
        assert ups["dubbo"]["connections"] == [{"address": stack.feature.address, "usable": True}]
        assert ups["dubbo"]["forwarder"]["calls"] == 1
        assert ups["hosts"][stack.feature.address]["ejected"] is False
        reg = json.loads((await stack.http("GET", "/registry")).body)
        assert reg["backend"] == "embedded" and reg["stale"] is False
        greeter = next(s for s in reg["services"] if s["interface"] == GREETER)
        assert [p["address"] for p in greeter["lanes"][FEATURE]] == [stack.feature.address]


async def test_explain_matches_the_cli(tmp_path: Path) -> None:
    async with admin_stack(tmp_path, GOOD_ROUTES) as stack:
        for env in (FEATURE, "feature-9", "locked"):
            reply = await stack.http(
                "GET", f"/explain?service=acme.Static&method=get&h=x-env:{env}"
            )
            assert reply.status == 200
            live = json.loads(reply.body)
            cli = await trio.run_process(
                [
                    sys.executable,
                    "-m",
                    "proxy",
                    "explain",
                    "--routes",
                    str(tmp_path / "routes.yaml"),
                    "--service",
                    "acme.Static",
                    "--method",
                    "get",
                    "-H",
                    f"x-env={env}",
                    "--format",
                    "json",
                ],
                capture_stdout=True,
                check=False,
            )
            offline = json.loads(cli.stdout)
            assert {k: live[k] for k in offline} == offline, env
        live = json.loads(
            (await stack.http("GET", f"/explain?service={GREETER}&h=x-env:{FEATURE}")).body
        )
        assert live["lane"] == FEATURE and live["provider"]["address"] == stack.feature.address
        assert live["version"] == "1.0.0"  # the one registered version was found


async def test_bad_requests_are_answered_not_crashed() -> None:
    async with admin_stack() as stack:
        assert (await stack.http("GET", "/explain")).status == 400
        assert (await stack.http("GET", "/explain?service=a.B&h=novalue")).status == 400
        assert (await stack.http("GET", "/explain?service=a.B&protocol=ftp")).status == 400
        assert (await stack.http("GET", "/nope")).status == 404
        assert (await stack.http("POST", "/metrics")).status == 405
        wrong = await stack.http("GET", "/reload")
        assert wrong.status == 405 and wrong.headers["allow"] == "POST"
        head = await stack.http("HEAD", "/")
        assert head.status == 200 and head.body == b""
        host, port = split_address(stack.admin)
        sock = await trio.open_tcp_stream(host, port)
        await sock.send_all(b"NOT HTTP AT ALL\r\n\r\n")
        data = b""
        with trio.fail_after(5):
            while chunk := await sock.receive_some(4096):
                data += chunk
        await sock.aclose()
        assert data.startswith(b"HTTP/1.1 400")
        assert (await stack.http("GET", "/ready")).status == 200  # still serving
