"""Dubbo calls through laneway to real trio providers: lanes, fallback, tag propagation."""

from __future__ import annotations

from pathlib import Path

import trio

from proxy.demo import GREETER, INVENTORY
from proxy.errors import DubboStatus
from tests.integration.dubbo.stack import FEATURE, running_stack

STRICT_ROUTES = """
environments:
  release-1: {strict: true}
"""


async def test_untagged_call_reaches_main_only() -> None:
    async with running_stack() as stack:
        for _ in range(20):
            result = await stack.call()
            assert result.ok, result
            assert result.value == "Hello, world! (served by main)"
        assert stack.feature.calls == 0


async def test_tagged_call_reaches_its_env_and_the_tag_survives_the_hop() -> None:
    async with running_stack() as stack:
        result = await stack.call(tag=FEATURE, attachments={"baggage": "user=7"})
        assert result.ok, result
        assert result.value == f"Hello, world! (served by {FEATURE})"
        assert result.attachments["served-by"] == FEATURE
        seen = stack.feature.seen[-1].attachments
        # DESIGN.md §2.4: the requested env is written into every carrier.
        assert seen["dubbo.tag"] == FEATURE
        assert seen["x-env"] == FEATURE
        assert seen["baggage"] == f"user=7,env={FEATURE}"
        assert stack.main.calls == 0


async def test_tag_from_header_carrier_is_propagated_to_the_attachment() -> None:
    async with running_stack() as stack:
        result = await stack.call(attachments={"x-env": FEATURE})
        assert result.attachments["served-by"] == FEATURE
        assert stack.feature.seen[-1].attachments["dubbo.tag"] == FEATURE


async def test_tagged_call_for_a_service_the_env_lacks_falls_back_to_main() -> None:
    async with running_stack() as stack:
        result = await stack.call("stock", ("sku-1",), service=INVENTORY, tag=FEATURE)
        assert result.ok, result
        assert result.attachments["served-by"] == "main"
        # The tag still travels on, so the next hop stays in the project env.
        assert result.attachments["seen-tag"] == FEATURE


async def test_strict_env_without_provider_fails_with_service_not_found(tmp_path: Path) -> None:
    async with running_stack(STRICT_ROUTES, tmp_path) as stack:
        result = await stack.call(tag="release-1")
        assert result.status == DubboStatus.SERVICE_NOT_FOUND
        assert result.error_message is not None
        for word in (GREETER, "release-1"):
            assert word in result.error_message
        assert stack.main.calls == 0


async def test_unknown_service_is_service_not_found_and_nothing_goes_upstream() -> None:
    """R3 no-route (Dubbo)"""
    async with running_stack() as stack:
        result = await stack.call(service="com.acme.Missing", tag=FEATURE)
        assert result.status == DubboStatus.SERVICE_NOT_FOUND
        assert result.error_message is not None
        assert "com.acme.Missing" in result.error_message
        assert FEATURE in result.error_message and "main" in result.error_message
        assert stack.main.calls == stack.feature.calls == 0
        assert stack.proxy.pool.stats.connects == 0


async def test_timeout_attachment_gives_server_timeout_and_late_answer_is_discarded() -> None:
    async with running_stack() as stack:
        client = await stack.client()
        result = await stack.call("sleep", (400,), attachments={"timeout": "100"}, client=client)
        assert result.status == DubboStatus.SERVER_TIMEOUT
        await trio.sleep(0.5)
        conns = stack.proxy.pool.connections()
        assert sum(c.stats.stray_responses for c in conns.values()) == 1
        # The connection is still good for the next call.
        after = await stack.call(client=client)
        assert after.ok
        await client.aclose()


async def test_weighted_balancing_spreads_over_main_providers() -> None:
    async with running_stack() as stack:
        second = await stack.add_provider("main", frozenset({GREETER}))
        for _ in range(60):
            assert (await stack.call()).ok
        assert stack.main.calls > 5 and second.calls > 5
