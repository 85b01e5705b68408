"""T1 tunnel-scope, T2 baseline-isolation, T4 tunnel-drop, and conflicts between tunnels."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import grpc
import pytest
import trio

from proxy.errors import DubboStatus
from proxy.net.dubbo_client import CallResult
from proxy.tunnel.client import TunnelRefused
from tests.integration.grpc.stack import SERVICE as GRPC_SERVICE
from tests.integration.tunnel.stack import ENV, SECRET, running_tunnel_stack, until

ISOLATION_CALLS = 10000
# why: TESTS.md T2's figure: 10k untagged + 10k other-env Dubbo calls (~3 s here), plus
# 2 x 200 gRPC calls (grpcio's blocking client makes more of those slow, not stronger).
GRPC_ISOLATION_CALLS = 200
BATCH = 250
# why: calls in flight at once per batch: enough to exercise one shared upstream connection.


def forged_token(env: str) -> str:
    """A correctly signed token for ``env`` made without issue_token's checks (an insider
    with the secret, or a future bug in issue_token)."""
    now = int(time.time())
    payload = {"env": env, "iat": now, "exp": now + 600, "jti": "x", "svc": []}
    body = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    signed = f"lw1.{body}"
    mac = hmac.new(SECRET.encode(), signed.encode(), hashlib.sha256).digest()
    return f"{signed}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


async def test_a_token_only_ever_claims_its_own_env() -> None:
    """T1 tunnel-scope"""
    async with running_tunnel_stack(protected_envs=["staging"]) as stack:
        cases = {
            "bob": (stack.token(ENV), "bob"),  # client claims another env than its token's
            "main": (forged_token("main"), None),
            "staging": (forged_token("staging"), None),
            "scope": (stack.token(ENV, services=["com.other.*"]), None),
        }
        messages = {}
        for name, (token, claim) in cases.items():
            with pytest.raises(TunnelRefused) as refused:
                await stack.laptop(token, env_claim=claim)
            messages[name] = refused.value.message
        assert "cannot claim env 'bob'" in messages["bob"]
        assert "'main' is the baseline" in messages["main"]
        assert "'staging' is protected" in messages["staging"]
        assert "only covers com.other.*" in messages["scope"]
        # Nothing was published, nothing is routed anywhere but main.
        assert set(stack.lanes()) == {"main"}
        client = await stack.client()
        for env in (ENV, "bob", "staging"):
            assert (await stack.call(client, tag=env)).value == "Hello, world! (served by main)"
        # Each refusal is in the audit trail, without the token.
        refusals = [e for e in stack.tunnel.audit if e.event == "refused"]
        assert len(refusals) == 4
        for token, _ in cases.values():
            assert all(token not in e.detail for e in stack.tunnel.audit)
        await client.aclose()


async def test_untagged_and_other_env_traffic_never_reaches_the_tunnel() -> None:
    """T2 baseline-isolation"""
    async with running_tunnel_stack() as stack:
        laptop = await stack.laptop(grpc=True)
        assert laptop.dubbo is not None and laptop.grpc is not None
        client = await stack.client()
        results: list[CallResult] = []
        started = trio.current_time()
        for tag in (None, "bob"):
            for _ in range(ISOLATION_CALLS // BATCH):
                async with trio.open_nursery() as nursery:
                    for _ in range(BATCH):

                        async def one(tag: str | None = tag) -> None:
                            results.append(await stack.call(client, tag=tag))

                        nursery.start_soon(one)
        elapsed = trio.current_time() - started
        assert len(results) == 2 * ISOLATION_CALLS
        assert all(r.value == "Hello, world! (served by main)" for r in results)
        assert laptop.dubbo.calls == 0
        assert laptop.client.local_connects == 0  # the tunnel was never even dialled
        assert stack.tunnel.sessions()[0]["open_streams"] == 0
        assert stack.bound.grpc is not None
        channel = grpc.insecure_channel(stack.bound.grpc)
        try:
            hello = channel.unary_unary(f"/{GRPC_SERVICE}/Hello", None, None)

            def many() -> set[bytes]:
                out = set()
                for md in ((), (("x-env", "bob"),)):
                    for _ in range(GRPC_ISOLATION_CALLS):
                        out.add(hello(b"hi", metadata=md, timeout=10))
                return out

            assert await trio.to_thread.run_sync(many) == {b"main:hi"}
        finally:
            channel.close()
        assert laptop.grpc.calls == 0
        # The tunnel is live and serving its own env all along.
        assert (await stack.call(client, tag=ENV)).value == "Hello, world! (served by laptop)"
        assert elapsed < 30
        await client.aclose()


async def test_calls_in_flight_fail_fast_when_the_laptop_drops_and_the_next_fall_back() -> None:
    """T4 tunnel-drop"""
    async with running_tunnel_stack() as stack:
        laptop = await stack.laptop()
        assert laptop.dubbo is not None
        client = await stack.client()
        results: list[CallResult] = []

        async def one() -> None:
            results.append(await stack.call(client, tag=ENV, method="sleep", args=(5000,)))

        async with trio.open_nursery() as nursery:
            for _ in range(50):
                nursery.start_soon(one)
            await until(lambda: laptop.dubbo is not None and len(laptop.dubbo.seen) >= 50)
            dropped_at = trio.current_time()
            laptop.leave()  # the laptop's connection goes away with 50 calls in flight
        elapsed = trio.current_time() - dropped_at
        assert len(results) == 50
        assert {r.status for r in results} == {DubboStatus.SERVER_ERROR}
        assert elapsed < 1.0
        after = await stack.call(client, tag=ENV)
        assert after.value == "Hello, world! (served by main)"  # the env's fallback: main
        await client.aclose()


async def test_grpc_calls_in_flight_get_unavailable_when_the_laptop_drops() -> None:
    """T4 tunnel-drop (gRPC)"""
    async with running_tunnel_stack() as stack:
        laptop = await stack.laptop(dubbo=False, grpc=True)
        assert stack.bound.grpc is not None and laptop.grpc is not None
        channel = grpc.insecure_channel(stack.bound.grpc)
        codes: list[grpc.StatusCode] = []
        try:
            sleep = channel.unary_unary(f"/{GRPC_SERVICE}/Sleep", None, None)

            def one() -> None:
                try:
                    sleep(b"5000", metadata=(("x-env", ENV),), timeout=10)
                except grpc.RpcError as exc:
                    codes.append(exc.code())

            async with trio.open_nursery() as nursery:
                for _ in range(10):
                    nursery.start_soon(trio.to_thread.run_sync, one)
                await until(lambda: laptop.grpc is not None and laptop.grpc.calls >= 10)
                dropped_at = trio.current_time()
                laptop.leave()
            assert trio.current_time() - dropped_at < 1.0
            assert codes == [grpc.StatusCode.UNAVAILABLE] * 10
            hello = channel.unary_unary(f"/{GRPC_SERVICE}/Hello", None, None)
            reply = await trio.to_thread.run_sync(
                lambda: hello(b"hi", metadata=(("x-env", ENV),), timeout=10)
            )
            assert reply == b"main:hi"
        finally:
            channel.close()


async def test_a_second_tunnel_for_the_same_service_and_env_is_refused_naming_the_first() -> None:
    async with running_tunnel_stack() as stack:
        first = await stack.laptop()
        with pytest.raises(TunnelRefused) as refused:
            await stack.laptop()
        message = refused.value.message
        assert f"in env '{ENV}' is already tunnelled by tunnel #{first.info.session}" in message
        assert "test-laptop" in message
        # Another env may tunnel the same service.
        other = await stack.laptop(stack.token("bob"))
        assert other.info.env == "bob"
        assert stack.tunnel.stats.conflicts == 1


async def test_on_conflict_replace_hands_the_service_to_the_newer_tunnel() -> None:
    async with running_tunnel_stack(on_conflict="replace") as stack:
        first = await stack.laptop()
        second = await stack.laptop()
        assert second.dubbo is not None and first.dubbo is not None
        await until(lambda: len(stack.tunnel.sessions()) == 1)
        client = await stack.client()
        assert (await stack.call(client, tag=ENV)).ok
        assert second.dubbo.calls == 1 and first.dubbo.calls == 0
        # The replaced laptop was told so and does not come back to fight for the service.
        await trio.sleep(0.5)
        assert first.client.sessions == 1
        assert [e.message for e in first.ended] == [
            "a newer tunnel for the same services replaced this one"
        ]
        assert stack.tunnel.stats.replaced == 1
        await client.aclose()
