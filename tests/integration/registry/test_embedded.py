"""The embedded registry over real gRPC on 127.0.0.1 (grpcio client in threads)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import grpc
import pytest
import trio

from protos import registry_pb2 as pb
from proxy.registry.client import RegistryClient, RegistryPublisher
from proxy.registry.embedded import EmbeddedRegistry
from proxy.registry.grpc_service import SERVICE_NAME
from proxy.registry.model import Lanes, Provider, ServiceKey
from proxy.registry.proto_convert import registration_pb

KEY = ServiceKey.of("demo.Greeter", "1.0.0")
MAIN = Provider("127.0.0.1:50051", "tri", "main", application="greeter")
FEATURE = Provider("127.0.0.1:50052", "tri", "feature-login", application="greeter")
HEARTBEAT = 0.1  # short lease (0.3 s) so eviction tests stay fast
WAIT = 10.0  # generous bound for "eventually": these tests check behaviour, not speed


@pytest.fixture
async def registry(nursery: trio.Nursery) -> AsyncIterator[EmbeddedRegistry]:
    reg = EmbeddedRegistry(listen="127.0.0.1:0", heartbeat_interval=HEARTBEAT)
    await nursery.start(reg.run)
    yield reg


async def wait_for(reg: EmbeddedRegistry, predicate: Callable[[Lanes], bool]) -> Lanes:
    """Wait (via the change stream) until ``predicate(snapshot(KEY))`` holds."""
    with trio.fail_after(WAIT):
        async with reg.changes() as changes:
            while not predicate(reg.snapshot(KEY)):
                await changes.__anext__()
    return reg.snapshot(KEY)


async def test_publish_stream_is_the_lease(registry: EmbeddedRegistry) -> None:
    """A registration appears on Publish and disappears when its stream ends."""
    assert registry.address is not None
    pub = RegistryPublisher(registry.address).start()
    try:
        await trio.to_thread.run_sync(pub.register, KEY, MAIN)
        await trio.to_thread.run_sync(pub.register, KEY, FEATURE)
        lanes = await wait_for(registry, lambda lanes: len(lanes) == 2)
        assert lanes["main"][0].address == MAIN.address
        assert lanes["main"][0].source == "registry"
        assert lanes["feature-login"][0].env == "feature-login"
        await trio.to_thread.run_sync(pub.unregister, KEY, FEATURE)
        await wait_for(registry, lambda lanes: "feature-login" not in lanes)
    finally:
        await trio.to_thread.run_sync(pub.close)
    await wait_for(registry, lambda lanes: not lanes)


async def test_invalid_registration_is_refused(registry: EmbeddedRegistry) -> None:
    """The server validates every item it is sent (a non-Python publisher skips our
    checks): bad items are reported by index, the good ones in the batch are applied."""
    bad = pb.Registration(
        service=pb.ServiceKey(interface="demo.Greeter", version="1.0.0"),
        provider=pb.Provider(address="nowhere", env="bad env!"),
    )
    batch = pb.Registrations(items=[registration_pb(KEY, MAIN), bad])

    def send() -> pb.Ack:
        with grpc.insecure_channel(registry.address or "") as channel:
            call = channel.stream_stream(
                f"/{SERVICE_NAME}/Publish",
                request_serializer=pb.PublishRequest.SerializeToString,
                response_deserializer=pb.PublishResponse.FromString,
            )(iter([pb.PublishRequest(register=batch, request_id=7)]))
            ack: pb.Ack = next(r.ack for r in call if r.WhichOneof("kind") == "ack")
            return ack

    ack = await trio.to_thread.run_sync(send)
    assert (ack.request_id, ack.applied) == (7, 1)
    assert [(e.index, e.error) for e in ack.errors] == [(1, "invalid env name 'bad env!'")]
    assert registry.stats.changes >= 1  # MAIN went in (and out again when the stream ended)


async def test_half_dead_stream_is_evicted(registry: EmbeddedRegistry) -> None:
    """A publisher that registers and then never heartbeats is evicted after its lease."""
    assert registry.address is not None
    stop = trio.Event()
    token = trio.lowlevel.current_trio_token()

    def requests() -> Iterator[pb.PublishRequest]:
        items = [registration_pb(KEY, MAIN)]
        yield pb.PublishRequest(register=pb.Registrations(items=items), request_id=1)
        trio.from_thread.run(stop.wait, trio_token=token)  # hang: alive but silent

    def half_dead() -> str:
        with grpc.insecure_channel(registry.address or "") as channel:
            call = channel.stream_stream(
                f"/{SERVICE_NAME}/Publish",
                request_serializer=pb.PublishRequest.SerializeToString,
                response_deserializer=pb.PublishResponse.FromString,
            )(requests())
            try:
                for _ in call:
                    pass
            except grpc.RpcError as e:
                return str(e.code())
            return "ended"

    async with trio.open_nursery() as nursery:
        outcome: list[str] = []

        async def run() -> None:
            outcome.append(await trio.to_thread.run_sync(half_dead))

        nursery.start_soon(run)
        await wait_for(registry, lambda lanes: "main" in lanes)
        await wait_for(registry, lambda lanes: not lanes)
        stop.set()
    assert registry.stats.evicted_publishers == 1
    assert outcome == ["StatusCode.CANCELLED"]


async def test_heartbeats_keep_a_quiet_publisher(registry: EmbeddedRegistry) -> None:
    """A publisher that sends nothing but heartbeats outlives many leases."""
    assert registry.address is not None
    with RegistryPublisher(registry.address) as pub:
        await trio.to_thread.run_sync(pub.register, KEY, MAIN)
        await trio.sleep(HEARTBEAT * 3 * 4)  # four leases
        assert registry.snapshot(KEY)["main"][0].address == MAIN.address
    assert registry.stats.evicted_publishers == 0


async def test_subscribe_pushes_full_lists_and_list_filters(registry: EmbeddedRegistry) -> None:
    assert registry.address is not None
    addr = registry.address
    await registry.publish(KEY, MAIN)
    client = RegistryClient(addr)
    seen: list[tuple[int, int]] = []
    first = trio.Event()
    token = trio.lowlevel.current_trio_token()

    def watch() -> None:
        for listing in client.subscribe(KEY):
            seen.append((listing.revision, sum(len(ps) for ps in listing.lanes.values())))
            trio.from_thread.run_sync(first.set, trio_token=token)
            if len(seen) == 2:
                return

    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.to_thread.run_sync, watch)
        with trio.fail_after(WAIT):
            await first.wait()
        await registry.publish(KEY, FEATURE)
    assert [count for _, count in seen] == [1, 2]  # the full list each time, not a delta
    listed = await trio.to_thread.run_sync(lambda: client.list_services(env="feature-login"))
    assert [(s.key, list(s.lanes)) for s in listed] == [(KEY, ["feature-login"])]
    assert await trio.to_thread.run_sync(lambda: client.list_services(interface="nope")) == []
    client.close()


async def test_change_stream_coalesces(registry: EmbeddedRegistry) -> None:
    other = ServiceKey.of("demo.Other")
    async with registry.changes() as changes:
        await registry.publish(KEY, MAIN)
        await registry.publish(other, MAIN)
        await registry.publish(KEY, FEATURE)
        with trio.fail_after(WAIT):
            batch = await changes.__anext__()
        assert batch == {KEY, other}
    assert registry.stats.changes == 3


async def test_state_file_serves_stale_until_publishers_return(tmp_path: Path) -> None:
    """A restarted registry serves the last list (stale) until publishers reconnect."""
    state = tmp_path / "registry.json"
    async with trio.open_nursery() as nursery:
        first = EmbeddedRegistry(listen=None, state_file=state, heartbeat_interval=HEARTBEAT)
        await nursery.start(first.run)
        await first.publish(KEY, MAIN)
        await first.publish(KEY, FEATURE)
        nursery.cancel_scope.cancel()
    assert state.exists()

    async with trio.open_nursery() as nursery:
        second = EmbeddedRegistry(
            listen="127.0.0.1:0", state_file=state, heartbeat_interval=HEARTBEAT
        )
        await nursery.start(second.run)
        assert second.is_stale(KEY)
        assert set(second.snapshot(KEY)) == {"main", "feature-login"}
        assert second.address is not None
        with RegistryPublisher(second.address) as pub:
            await trio.to_thread.run_sync(pub.register, KEY, MAIN)
            await wait_for(second, lambda lanes: "feature-login" not in lanes)  # grace over
            assert not second.is_stale()
            assert list(second.snapshot(KEY)) == ["main"]
        nursery.cancel_scope.cancel()


async def test_registry_restart_publishers_reconnect(tmp_path: Path) -> None:
    """The client re-registers by itself when the registry comes back on the same port."""
    async with trio.open_nursery() as nursery:
        first = EmbeddedRegistry(listen="127.0.0.1:0", heartbeat_interval=HEARTBEAT)
        scope = trio.CancelScope()
        first_stopped = trio.Event()

        async def run_first(task_status: trio.TaskStatus[str | None]) -> None:
            with scope:
                await first.run(task_status=task_status)
            first_stopped.set()

        address = await nursery.start(run_first)
        assert address is not None
        pub = RegistryPublisher(address).start()
        try:
            await trio.to_thread.run_sync(pub.register, KEY, MAIN)
            scope.cancel()
            await first_stopped.wait()
            second = EmbeddedRegistry(listen=address, heartbeat_interval=HEARTBEAT)
            await nursery.start(second.run)
            await wait_for(second, lambda lanes: "main" in lanes)
        finally:
            await trio.to_thread.run_sync(pub.close)
        nursery.cancel_scope.cancel()


async def test_register_many_in_batches(registry: EmbeddedRegistry) -> None:
    """A process publishes thousands of services over one stream (several batches)."""
    assert registry.address is not None
    keys = [ServiceKey.of(f"demo.Svc{i}") for i in range(2500)]
    with RegistryPublisher(registry.address) as pub:
        await trio.to_thread.run_sync(pub.register_many, [(k, MAIN) for k in keys])
        assert len(registry.services()) == 2500
        assert all(registry.snapshot(k)["main"][0].address == MAIN.address for k in keys)
    with trio.fail_after(WAIT):
        async with registry.changes() as changes:
            while registry.services():
                await changes.__anext__()


async def test_generated_stub_talks_to_the_registry(registry: EmbeddedRegistry) -> None:
    """Any gRPC client built from protos/registry.proto works (here the generated stub)."""
    from protos import registry_pb2_grpc

    await registry.publish(KEY, MAIN)

    def list_all() -> pb.ListResponse:
        with grpc.insecure_channel(registry.address or "") as channel:
            stub = registry_pb2_grpc.RegistryStub(channel)  # type: ignore[no-untyped-call]
            reply: pb.ListResponse = stub.List(pb.ListRequest(), timeout=WAIT)
            return reply

    reply = await trio.to_thread.run_sync(list_all)
    assert [(s.service.interface, s.providers[0].address) for s in reply.services] == [
        ("demo.Greeter", MAIN.address)
    ]


async def test_unwritable_state_file_does_not_stop_the_registry(tmp_path: Path) -> None:
    state = tmp_path / "missing-dir" / "registry.json"
    async with trio.open_nursery() as nursery:
        reg = EmbeddedRegistry(listen=None, state_file=state, heartbeat_interval=HEARTBEAT)
        await nursery.start(reg.run)
        async with reg.changes() as changes:
            await reg.publish(KEY, MAIN)
            await changes.__anext__()
        for _ in range(int(WAIT / HEARTBEAT)):  # housekeeping runs every HEARTBEAT / 4
            if reg.stats.state_save_failures:
                break
            await trio.sleep(HEARTBEAT)
        assert reg.stats.state_save_failures > 0
        assert reg.snapshot(KEY)  # still serving
        nursery.cancel_scope.cancel()


async def test_a_busy_port_fails_loudly(registry: EmbeddedRegistry) -> None:
    """A second registry on the same port must not bind silently (SO_REUSEPORT is off)."""
    with pytest.raises(OSError, match="cannot listen"):
        await EmbeddedRegistry(listen=registry.address).run()
