"""gRPC calls through laneway with a real grpcio client and real grpcio servers."""

from __future__ import annotations

import grpc
import pytest
import trio

from tests.integration.grpc.stack import FEATURE, SERVICE, running_grpc_stack
from tests.polling import until

CLOCK_SLACK_S = 0.002
# why: the provider reads its deadline through grpcio's time_remaining(), which converts
# between the core's clocks; a proxy that forwards the remaining time promptly shows up to
# ~1 ms above the caller's 0.2 s there. A proxy that forwarded its own default (15 s), or
# anything more than 2 ms over the caller's budget, still fails.


async def test_untagged_unary_reaches_main_only() -> None:
    async with running_grpc_stack() as stack:
        for _ in range(10):
            assert await stack.call() == b"main:hi"
        assert stack.feature.calls == 0


async def test_tagged_unary_reaches_its_env_and_the_tag_survives() -> None:
    async with running_grpc_stack() as stack:
        reply = await stack.call(metadata=(("x-env", FEATURE), ("baggage", "user=7")))
        assert reply == f"{FEATURE}:hi".encode()
        seen = stack.feature.seen_metadata[-1]
        assert seen["x-env"] == FEATURE
        assert seen["dubbo.tag"] == FEATURE
        assert seen["baggage"] == f"user=7,env={FEATURE}"
        assert stack.main.calls == 0


async def test_tag_in_baggage_routes_and_falls_back_when_the_env_lacks_the_service() -> None:
    async with running_grpc_stack() as stack:
        assert await stack.call(metadata=(("baggage", f"env={FEATURE}"),)) == b"feature-1:hi"
        reply = await stack.call(metadata=(("x-env", "feature-without-providers"),))
        assert reply == b"main:hi"
        assert stack.main.seen_metadata[-1]["x-env"] == "feature-without-providers"


async def test_streaming_calls_relay_every_message() -> None:
    async with running_grpc_stack() as stack:
        count = stack.channel.unary_stream(f"/{SERVICE}/Count", None, None)
        got = await trio.to_thread.run_sync(lambda: list(count(b"500", timeout=10)))
        assert got == [b"%d" % i for i in range(500)]
        total = stack.channel.stream_unary(f"/{SERVICE}/Total", None, None)
        chunks = [b"x" * 1000] * 300
        assert await trio.to_thread.run_sync(lambda: total(iter(chunks), timeout=10)) == b"300000"
        chat = stack.channel.stream_stream(f"/{SERVICE}/Chat", None, None)
        md = (("x-env", FEATURE),)
        replies = await trio.to_thread.run_sync(
            lambda: list(chat(iter([b"a", b"b", b"c"]), metadata=md, timeout=10))
        )
        assert replies == [b"feature-1>a", b"feature-1>b", b"feature-1>c"]


async def test_large_messages_cross_flow_control_both_ways() -> None:
    """R11 (basic): 3 MiB each way through 64 KiB windows."""
    async with running_grpc_stack() as stack:
        big = b"y" * (3 * 1024 * 1024)
        assert await stack.call(request=big) == b"main:" + big
        assert len(await stack.call("Size", b"%d" % len(big))) == len(big)


async def test_provider_status_and_message_pass_through() -> None:
    async with running_grpc_stack() as stack:
        with pytest.raises(grpc.RpcError) as info:
            await stack.call("Fail", b"because")
        assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert info.value.details() == "no: because"


async def test_unknown_service_is_unimplemented_and_nothing_goes_upstream() -> None:
    """R3 no-route (gRPC)"""
    async with running_grpc_stack() as stack:
        other = stack.channel.unary_unary("/acme.Missing/Get", None, None)
        with pytest.raises(grpc.RpcError) as info:
            await trio.to_thread.run_sync(lambda: other(b"", timeout=5))
        assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
        assert "acme.Missing" in (info.value.details() or "")
        assert stack.main.calls == stack.feature.calls == 0


async def test_strict_env_without_provider_is_unavailable(tmp_path: object) -> None:
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    routes = "environments:\n  release-1: {strict: true}\n"
    async with running_grpc_stack(routes, tmp_path) as stack:
        with pytest.raises(grpc.RpcError) as info:
            await stack.call(metadata=(("x-env", "release-1"),))
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "release-1" in (info.value.details() or "")


async def test_deadline_is_enforced_and_propagated() -> None:
    """G2 deadline-propagation"""
    async with running_grpc_stack() as stack:
        start = trio.current_time()
        with pytest.raises(grpc.RpcError) as info:
            await stack.call("Sleep", b"1000", deadline_s=0.2)
        took = trio.current_time() - start
        assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert took < 0.45
        # The provider saw the remaining deadline (grpc-timeout), never a longer one.
        remaining = stack.main.time_remaining[-1]
        assert remaining is not None and 0 < remaining <= 0.2 + CLOCK_SLACK_S
        await trio.to_thread.run_sync(lambda: stack.main.cancelled.wait(2))
        assert stack.main.cancelled.is_set()


async def test_upstream_death_before_response_is_unavailable() -> None:
    """R1 upstream-death (a)"""
    async with running_grpc_stack() as stack:
        results: list[grpc.StatusCode] = []

        def one() -> None:
            try:
                stack.unary("Sleep")(b"3000", timeout=10)
                results.append(grpc.StatusCode.OK)
            except grpc.RpcError as exc:
                results.append(exc.code())

        async with trio.open_nursery() as nursery:
            for _ in range(20):
                nursery.start_soon(trio.to_thread.run_sync, one)
            await until(lambda: stack.main.calls >= 20)
            killed = trio.current_time()
            await trio.to_thread.run_sync(stack.main.stop)
        assert trio.current_time() - killed < 1.5
        assert results == [grpc.StatusCode.UNAVAILABLE] * 20
