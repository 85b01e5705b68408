"""T3 tunnel-as-untrusted-upstream, T7 tunnel-caps, T8 tunnel-lease: hostile or dead laptops.

The hostile laptops here are hand-driven: a real handshake, then HTTP/2 frames written by
the test (laneway's own codec for the valid parts, raw bytes for the broken ones)."""

from __future__ import annotations

import statistics
from collections.abc import Callable

import pytest
import trio
from hpack import Encoder

from proxy.codecs.dubbo import Request, ServerConnection
from proxy.codecs.dubbo import RequestReceived as DubboRequestReceived
from proxy.codecs.grpc import frames as fr
from proxy.codecs.grpc.connection import H2Connection
from proxy.codecs.grpc.events import DataReceived, RequestReceived, StreamReset
from proxy.demo import DEMO_VERSION, GREETER
from proxy.errors import DubboStatus
from proxy.net.dubbo_client import CallResult
from proxy.registry.model import ServiceKey
from proxy.tunnel import server as tunnel_server
from proxy.tunnel.client import LocalService, TunnelClient
from proxy.tunnel.wire import Announced
from tests.integration.tunnel.stack import (
    ENV,
    HEARTBEAT,
    TunnelStack,
    raw_tunnel,
    running_tunnel_stack,
    until,
)

_HEADERS = Encoder().encode([(b":status", b"200")])
HOSTILE = {
    "garbage": b"\x17\x03\x03 this is not HTTP/2 at all" * 4,
    "server-opened-stream": fr.frame(fr.HEADERS, fr.END_HEADERS, 2, _HEADERS),
    "oversized-frame": b"\xff\xff\xff\x00\x00\x00\x00\x00\x01",
    "data-on-unopened-stream": fr.frame(fr.DATA, 0, 7, b"x" * 100),
    "headers-on-unopened-stream": fr.frame(fr.HEADERS, fr.END_HEADERS, 9, _HEADERS),
}


async def assert_others_unaffected(stack: TunnelStack) -> None:
    client = await stack.client()
    assert (await stack.call(client)).value == "Hello, world! (served by main)"
    bob = await stack.laptop(stack.token("bob"))
    assert (await stack.call(client, tag="bob")).value == "Hello, world! (served by laptop)"
    bob.leave()
    await client.aclose()


@pytest.mark.parametrize("attack", sorted(HOSTILE))
async def test_a_laptop_breaking_http2_loses_its_tunnel_and_nobody_else_notices(
    attack: str,
) -> None:
    """T3 tunnel-as-untrusted-upstream"""
    async with running_tunnel_stack() as stack:
        stream, reply, _ = await raw_tunnel(stack, stack.token())
        assert reply["ok"] and reply["env"] == ENV
        assert ENV in stack.lanes()
        laptop = H2Connection(client_side=False)  # a well-behaved start: preface + SETTINGS
        await stream.send_all(laptop.data_to_send() + HOSTILE[attack])
        received = b""
        with trio.fail_after(2):
            while chunk := await stream.receive_some(65536):
                received += chunk
        await stream.aclose()
        # The proxy said GOAWAY (where its codec could still frame one), then closed.
        assert fr.GOAWAY in _frame_types(received[len(fr.PREFACE) :]) or attack == "garbage"
        await until(lambda: ENV not in stack.lanes())
        assert stack.tunnel.sessions() == []
        closed = [e for e in stack.tunnel.audit if e.event == "closed"]
        assert len(closed) == 1 and "protocol" in closed[0].detail
        assert stack.tunnel.stats.protocol_errors == 1
        await assert_others_unaffected(stack)


def _frame_types(data: bytes) -> set[int]:
    types, pos = set(), 0
    while len(data) - pos >= 9:
        length, ftype, _flags, _sid = fr.parse_header(data, pos)
        types.add(ftype)
        pos += 9 + length
    return types


async def test_a_laptop_ignoring_flow_control_is_cut_off_at_the_window() -> None:
    """T7 tunnel-caps (buffered bytes): a laptop pushing 2 MiB at once never makes the proxy
    hold more than the stream window; its stream is reset and the caller gets 80."""
    async with running_tunnel_stack(max_buffered_bytes=256 * 1024) as stack:
        stream, reply, leftover = await raw_tunnel(stack, stack.token())
        assert reply["ok"]
        laptop = H2Connection(client_side=False)
        await stream.send_all(laptop.data_to_send())
        client = await stack.client()
        results: list[CallResult] = []
        resets: list[StreamReset] = []
        flooded: list[int] = []

        async def fake_laptop() -> None:
            data = leftover
            while True:
                for event in laptop.receive_data(data, trio.current_time()):
                    if isinstance(event, RequestReceived):
                        laptop.send_headers(event.stream_id, [(b":status", b"200")])
                    elif isinstance(event, DataReceived) and not flooded:
                        flooded.append(event.stream_id)  # the Dubbo request: answer with
                        flood = b"".join(  # 2 MiB at once, far past every window
                            fr.frame(fr.DATA, 0, event.stream_id, b"z" * 16384) for _ in range(128)
                        )
                        await stream.send_all(laptop.data_to_send() + flood)
                    elif isinstance(event, StreamReset):
                        resets.append(event)
                await stream.send_all(laptop.data_to_send())
                data = await stream.receive_some(65536)
                if not data:
                    return

        async with trio.open_nursery() as nursery:
            nursery.start_soon(fake_laptop)
            results.append(await stack.call(client, tag=ENV))
            await until(lambda: bool(resets))
            nursery.cancel_scope.cancel()
        assert results[0].status == DubboStatus.SERVER_ERROR
        assert resets[0].error_code == 0x3  # FLOW_CONTROL_ERROR: the flood was refused
        await stream.aclose()
        await client.aclose()
        await assert_others_unaffected(stack)


async def test_a_tunnel_opens_no_more_streams_than_its_cap() -> None:
    """T7 tunnel-caps (streams)"""
    async with running_tunnel_stack(max_streams=2) as stack:
        laptop = await stack.laptop()
        address = stack.tunnel.sessions()[0]["services"][0]["address"]
        first = await stack.tunnel.dial(address)
        second = await stack.tunnel.dial(address)
        with pytest.raises(OSError, match="stream limit"):
            await stack.tunnel.dial(address)
        await first.aclose()
        third = await stack.tunnel.dial(address)  # a slot came free
        await second.aclose()
        await third.aclose()
        assert laptop.client.local_connects == 3


async def test_a_slow_laptop_does_not_slow_other_envs() -> None:
    """T7 tunnel-caps (latency): 300 calls held open on a slow laptop; main's p99 stays
    within 2x its baseline measured in the same run (the per-tunnel call cap is raised so
    that all 300 reach the laptop)."""
    async with running_tunnel_stack(max_calls=300) as stack:
        laptop = await stack.laptop()
        assert laptop.dubbo is not None
        client = await stack.client()
        other = await stack.client()

        async def latencies(n: int) -> list[float]:
            out = []
            for _ in range(n):
                t0 = trio.current_time()
                assert (await stack.call(other)).ok
                out.append(trio.current_time() - t0)
            return sorted(out)

        await latencies(50)  # warm up
        baseline = await latencies(300)
        async with trio.open_nursery() as nursery:

            async def held() -> None:
                await stack.call(client, tag=ENV, method="sleep", args=(3000,))

            for _ in range(300):
                nursery.start_soon(held)
            await until(lambda: laptop.dubbo is not None and len(laptop.dubbo.seen) >= 300)
            during = await latencies(300)
            nursery.cancel_scope.cancel()

        def p99(xs: list[float]) -> float:
            return xs[int(len(xs) * 0.99) - 1]

        assert p99(during) <= 2 * p99(baseline) + 0.002, (p99(baseline), p99(during))
        assert statistics.median(during) <= 2 * statistics.median(baseline) + 0.001
        await client.aclose()
        await other.aclose()


async def test_a_laptop_that_stops_heartbeating_is_evicted_after_three_intervals() -> None:
    """T8 tunnel-lease"""
    async with running_tunnel_stack() as stack:
        stream, reply, _ = await raw_tunnel(stack, stack.token())
        assert reply["heartbeat"] == HEARTBEAT
        await stream.send_all(H2Connection(client_side=False).data_to_send())
        joined = trio.current_time()
        # ...and then it never reads or answers a PING again (a suspended laptop).
        took = await until(lambda: ENV not in stack.lanes())
        evicted_after = trio.current_time() - joined
        assert 3 * HEARTBEAT <= evicted_after <= 4 * HEARTBEAT + 0.2, (evicted_after, took)
        assert stack.tunnel.stats.evicted == 1
        closed = [e for e in stack.tunnel.audit if e.event == "closed"]
        assert "missed 3 heartbeats" in closed[0].detail
        await stream.aclose()


async def test_a_live_idle_tunnel_is_kept_by_its_heartbeats() -> None:
    """T8 tunnel-lease (the converse): PINGs answered keep an idle tunnel for many leases."""
    async with running_tunnel_stack() as stack:
        laptop = await stack.laptop()
        await trio.sleep(5 * HEARTBEAT)
        assert stack.tunnel.stats.evicted == 0
        assert laptop.client.sessions == 1
        assert laptop.client.mux is not None and laptop.client.mux.stats.pings_sent >= 4
        client = await stack.client()
        assert (await stack.call(client, tag=ENV)).value == "Hello, world! (served by laptop)"
        await client.aclose()


async def serve_fake_provider(
    nursery: trio.Nursery, answer: Callable[[ServerConnection, Request], bytes]
) -> str:
    """A "local provider" on the laptop that answers every Dubbo request with ``answer``'s
    bytes (what a buggy or hostile provider behind a tunnel might send)."""
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")

    async def serve(stream: trio.SocketStream) -> None:
        codec = ServerConnection()
        async with stream:
            while data := await stream.receive_some(65536):
                for event in codec.receive_data(data):
                    if isinstance(event, DubboRequestReceived):
                        await stream.send_all(answer(codec, event.request))

    nursery.start_soon(trio.serve_listeners, serve, listeners)
    host, port = listeners[0].socket.getsockname()[:2]
    return f"{host}:{port}"


async def test_garbage_and_unknown_ids_from_the_laptop_provider_are_dropped() -> None:
    """T3 tunnel-as-untrusted-upstream (Dubbo bytes inside a stream)"""

    def unknown_id(codec: ServerConnection, request: Request) -> bytes:
        codec.send_value(request.request_id, "not yours")
        frame = bytearray(codec.data_to_send())
        frame[4:12] = (request.request_id + 1000).to_bytes(8, "big")  # a request never sent
        return bytes(frame)

    def garbage(codec: ServerConnection, request: Request) -> bytes:
        return b"\x00\x01 not dubbo at all " * 8

    async with running_tunnel_stack() as stack:
        for name, answer in (("unknown-id", unknown_id), ("garbage", garbage)):
            target = await serve_fake_provider(stack.nursery, answer)
            key = ServiceKey.of(GREETER, DEMO_VERSION)
            token = stack.token(name)
            client = TunnelClient(
                stack.tunnel_address,
                token,
                [LocalService(Announced(key, "dubbo"), target)],
                out=lambda _line: None,
            )
            await stack.nursery.start(client.run)
            consumer = await stack.client()
            with trio.fail_after(2):
                result = await consumer.call(
                    GREETER,
                    "sayHello",
                    ["x"],
                    version=DEMO_VERSION,
                    attachments={"dubbo.tag": name, "timeout": 300},
                )
            if name == "unknown-id":  # the stray answer is counted and dropped: a timeout
                assert result.status == DubboStatus.SERVER_TIMEOUT
                conn = stack.proxy.pool.connections()[stack.lanes()[name][0].address]
                assert conn.stats.stray_responses == 1
            else:  # garbage: that virtual connection is dropped, the call fails at once
                assert result.status == DubboStatus.SERVER_ERROR
                assert result.error_message and "broke the protocol" in result.error_message
            assert name in stack.lanes()  # the tunnel itself lives on
            await consumer.aclose()
        await assert_others_unaffected(stack)


async def test_silent_dialers_beyond_the_handshake_cap_are_closed_on_accept(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A connection flood on the tunnel port (H12's idea for the tunnel listener)."""
    monkeypatch.setattr(tunnel_server, "MAX_HANDSHAKING", 5)
    async with running_tunnel_stack(handshake_timeout=2.0) as stack:
        host, port = stack.tunnel_address.rsplit(":", 1)
        silent = [await trio.open_tcp_stream(host, int(port)) for _ in range(5)]
        await until(lambda: stack.tunnel._handshaking == 5)
        for _ in range(3):
            extra = await trio.open_tcp_stream(host, int(port))
            with trio.fail_after(1):
                assert await extra.receive_some() == b""  # closed on accept
            await extra.aclose()
        assert stack.tunnel.stats.handshake_overflow == 3
        for stream in silent:
            await stream.aclose()
        await until(lambda: stack.tunnel._handshaking == 0)
        laptop = await stack.laptop()  # real laptops get in again at once
        assert laptop.info.env == ENV


async def test_calls_in_flight_to_one_tunnel_are_capped() -> None:
    """T7 tunnel-caps (calls): past the cap, callers get status 100 at once, and calls
    that do not go to the tunnel are not affected."""
    async with running_tunnel_stack(max_calls=3) as stack:
        await stack.laptop()
        client = await stack.client()
        results: list[CallResult] = []

        async def slow() -> None:
            results.append(await stack.call(client, tag=ENV, method="sleep", args=(400,)))

        async with trio.open_nursery() as nursery:
            for _ in range(8):
                nursery.start_soon(slow)
            await until(lambda: len(results) >= 5)
            shed = [r for r in results if r.status == DubboStatus.SERVER_THREADPOOL_EXHAUSTED_ERROR]
            assert len(shed) == 5  # answered while the 3 admitted calls still sleep
            assert all(r.error_message and "3 calls in flight" in r.error_message for r in shed)
            assert (await stack.call(client)).ok  # main is not behind the cap
        assert sum(r.ok for r in results) == 3
        await client.aclose()
