"""Upstream faults through laneway: death mid-call, READONLY, connect failures, overload."""

from __future__ import annotations

import trio

from proxy.codecs.dubbo import encode_request
from proxy.demo import GREETER
from proxy.errors import DubboStatus
from proxy.net.dubbo_client import CallResult
from proxy.registry.model import Provider, ServiceKey
from tests.integration.dubbo.stack import running_stack
from tests.polling import until


async def test_upstream_death_fails_every_call_in_flight_within_a_second() -> None:
    """R2 upstream-death (Dubbo)"""
    async with running_stack() as stack:
        client = await stack.client()
        results: list[CallResult] = []

        async def one() -> None:
            results.append(await stack.call("sleep", (5000,), client=client))

        async with trio.open_nursery() as nursery:
            for _ in range(100):
                nursery.start_soon(one)
            await until(lambda: len(stack.main.seen) >= 100)
            killed_at = trio.current_time()
            await stack.main.kill_connections()
        elapsed = trio.current_time() - killed_at
        assert len(results) == 100
        assert {r.status for r in results} == {DubboStatus.SERVER_ERROR}
        assert elapsed < 1.0
        assert all(r.error_message and "127.0.0.1" in r.error_message for r in results)
        # The proxy reconnects for the next call.
        assert (await stack.call(client=client)).ok
        await client.aclose()


async def test_readonly_provider_gets_no_new_calls_and_finishes_in_flight_ones() -> None:
    """D14 readonly-event"""
    async with running_stack() as stack:
        second = await stack.add_provider("main", frozenset({GREETER}))
        client = await stack.client()
        # Warm both upstream connections.
        while not (stack.main.calls and second.calls):
            assert (await stack.call(client=client)).ok
        slow: list[CallResult] = []

        async def slow_call() -> None:
            slow.append(await stack.call("sleep", (300,), client=client))

        async with trio.open_nursery() as nursery:
            for _ in range(10):
                nursery.start_soon(slow_call)
            await trio.sleep(0.1)
            await stack.main.announce_readonly()
            await trio.sleep(0.05)
            before = stack.main.calls
            for _ in range(30):
                result = await stack.call(client=client)
                assert result.ok and result.attachments["served-by"] == "main"
            assert stack.main.calls == before
        assert len(slow) == 10 and all(r.ok for r in slow)
        await client.aclose()


async def test_connect_failure_is_retried_on_another_provider() -> None:
    """R4 retry-safety (a): connect refused on one host"""
    async with running_stack() as stack:
        # A port nobody listens on: bind, note it, close.
        sock = trio.socket.socket()
        await sock.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{sock.getsockname()[1]}"
        sock.close()
        key = ServiceKey.of(GREETER, "1.0.0")
        await stack.proxy.registry.publish(key, Provider(address=dead, source="registry"))
        for _ in range(20):
            result = await stack.call()
            assert result.ok, result
        assert stack.proxy.pool.stats.connect_failures >= 1
        assert stack.proxy.forwarder.stats.retries >= 1


async def test_overload_is_answered_with_threadpool_exhausted_at_once() -> None:
    """R12 overload-shed (Dubbo)"""
    async with running_stack(max_inflight_total=5) as stack:
        client = await stack.client()
        results: list[CallResult] = []

        async def one() -> None:
            results.append(await stack.call("sleep", (300,), client=client))

        async with trio.open_nursery() as nursery:
            for _ in range(20):
                nursery.start_soon(one)
            await trio.sleep(0.1)
            shed = [r for r in results if r.status == DubboStatus.SERVER_THREADPOOL_EXHAUSTED_ERROR]
            assert len(shed) == 15  # answered before the admitted calls finish
        assert sum(r.ok for r in results) == 5
        assert stack.proxy.dubbo.stats.overloaded == 15
        await client.aclose()


async def test_request_ids_are_isolated_between_consumers() -> None:
    """D13 request-id-isolation: two consumers use the same ids on one shared upstream."""
    async with running_stack() as stack:
        a, b = await stack.client(), await stack.client()
        wrong = 0

        async def rounds(client_name: str, client: object) -> None:
            nonlocal wrong
            from proxy.net.dubbo_client import DubboClient

            assert isinstance(client, DubboClient)
            for i in range(500):
                name = f"{client_name}-{i}"
                result = await stack.call(args=(name,), client=client)
                if result.value != f"Hello, {name}! (served by main)":
                    wrong += 1

        async with trio.open_nursery() as nursery:
            nursery.start_soon(rounds, "a", a)
            nursery.start_soon(rounds, "b", b)
        assert wrong == 0
        assert len(stack.proxy.pool.connections()) == 1  # one multiplexed upstream
        await a.aclose()
        await b.aclose()


async def test_a_consumer_that_disconnects_mid_call_frees_its_upstream_slots() -> None:
    """G3 cancel-propagation (Dubbo): the consumer goes away with calls in flight; their
    upstream slots are freed at once and the late answers are discarded and counted."""
    async with running_stack() as stack:
        client = await stack.client()

        async def slow() -> None:
            await stack.call("sleep", (300,), client=client)

        async with trio.open_nursery() as nursery:
            for _ in range(5):
                nursery.start_soon(slow)
            await until(lambda: len(stack.main.seen) >= 5)
            (conn,) = stack.proxy.pool.connections().values()
            assert conn.in_flight == 5
            await client.aclose()  # the consumer vanishes mid-call
            await until(lambda: conn.in_flight == 0)
            nursery.cancel_scope.cancel()
        assert stack.proxy.health.in_flight(stack.main.address) == 0
        await until(lambda: conn.stats.stray_responses == 5)
        assert (await stack.call()).ok  # the upstream connection is still fine


async def test_one_way_calls_are_forwarded_and_counted() -> None:
    """R2 (one-way part): one-way requests reach the provider, are never answered."""
    async with running_stack() as stack:
        client = await stack.client()
        frame = encode_request(
            request_id=0,
            path=GREETER,
            method="sayHello",
            parameter_types="Ljava/lang/String;",
            arguments=["one-way"],
            version="1.0.0",
            two_way=False,
        )
        for _ in range(10):
            await client.send_raw(frame)
        await until(lambda: stack.main.calls == 10)
        assert stack.proxy.forwarder.stats.oneway == 10
        assert (await stack.call(client=client)).ok  # the connection is still in step
        await client.aclose()


async def test_a_consumer_that_leaves_while_its_provider_is_connecting_frees_the_slot() -> None:
    """The slow path (connect in progress) is cleaned up like an in-flight call."""
    async with running_stack() as stack:
        connecting = trio.Event()

        async def never_connects(address: str) -> trio.abc.Stream:
            connecting.set()
            await trio.sleep_forever()
            raise AssertionError("unreachable")

        stack.proxy.pool.add_dialer("stuck", never_connects)
        key = ServiceKey.of(GREETER, "1.0.0")
        for provider in list(stack.proxy.registry.snapshot(key)["main"]):
            await stack.proxy.registry.unpublish(key, provider)
        await stack.proxy.registry.publish(key, Provider(address="stuck:1", source="registry"))
        client = await stack.client()

        async def call() -> None:
            await stack.call(client=client)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(call)
            await connecting.wait()
            assert stack.proxy.health.in_flight("stuck:1") == 1
            await client.aclose()  # the consumer leaves while laneway is connecting
            await until(lambda: stack.proxy.health.in_flight("stuck:1") == 0)
            nursery.cancel_scope.cancel()
