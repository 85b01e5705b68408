"""Services laneway answers on its own gRPC listener: health, and the registry API."""

from __future__ import annotations

import grpc
import pytest
import trio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from proxy.registry.client import RegistryClient, RegistryPublisher
from proxy.registry.model import Provider, ServiceKey
from tests.integration.grpc.stack import running_grpc_stack
from tests.polling import until


def _check(channel: grpc.Channel, service: str) -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
    return int(reply.status)


async def test_health_check_reports_the_proxy_and_its_services() -> None:
    serving = health_pb2.HealthCheckResponse.SERVING
    async with running_grpc_stack() as stack:
        assert await trio.to_thread.run_sync(_check, stack.channel, "") == serving
        assert await trio.to_thread.run_sync(_check, stack.channel, "demo.Greeter") == serving
        with pytest.raises(grpc.RpcError) as info:
            await trio.to_thread.run_sync(_check, stack.channel, "acme.Nobody")
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
        assert stack.main.calls == stack.feature.calls == 0
        # While draining, the proxy reports itself NOT_SERVING (new connections are refused
        # then, so this is asked in-process).
        stack.proxy.shutdown()
        request = health_pb2.HealthCheckRequest(service="").SerializeToString()
        reply = stack.proxy.local_services.call("grpc.health.v1.Health", "Check", request)
        assert reply.payload is not None
        status = health_pb2.HealthCheckResponse.FromString(reply.payload).status
        assert status == health_pb2.HealthCheckResponse.NOT_SERVING


async def test_registry_api_is_served_on_the_grpc_listener() -> None:
    async with running_grpc_stack(registry_listen="127.0.0.1:0") as stack:
        key = ServiceKey.of("acme.Shop", "2.0.0")
        provider = Provider(address="127.0.0.1:7001", protocol="grpc", env="feature-9")
        publisher = RegistryPublisher(stack.address).start()
        try:
            await trio.to_thread.run_sync(publisher.register, key, provider)
            await until(lambda: bool(stack.proxy.registry.snapshot(key)))
            with RegistryClient(stack.address) as client:
                listing = await trio.to_thread.run_sync(lambda: client.list_services("acme.Shop"))
            seen = [
                (s.key, {env: [p.address for p in ps] for env, ps in s.lanes.items()})
                for s in listing
            ]
            assert seen == [(key, {"feature-9": ["127.0.0.1:7001"]})]
        finally:
            await trio.to_thread.run_sync(publisher.close)
        # The registration's lease is the Publish stream: closing it removes the provider.
        await until(lambda: not stack.proxy.registry.snapshot(key))
