"""The tunnel's HTTP/2 mux over in-memory streams: byte streams, flow control, heartbeats
(TESTS.md T8 with MockClock), and the handshake framing."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from proxy.codecs.grpc.events import Headers
from proxy.codecs.grpc.limits import H2Limits
from proxy.registry.model import ServiceKey
from proxy.tunnel.mux import HEARTBEAT_MISSES, Lease, Mux, TunnelClosed, VirtualStream
from proxy.tunnel.wire import (
    MAX_MESSAGE_BYTES,
    Announced,
    Hello,
    MessageReader,
    WireError,
    encode_message,
    parse_hello,
    parse_service_authority,
    service_authority,
)

CONNECT = [(b":method", b"CONNECT"), (b":authority", b"svc-0")]


async def echo(stream: VirtualStream, headers: Headers) -> None:
    stream.respond([(b":status", b"200")])
    while data := await stream.receive_some():
        await stream.send_all(data)
    await stream.send_eof()


def test_the_lease_expires_after_three_silent_intervals() -> None:
    lease = Lease.start(0.0, 10.0)
    assert lease.ping_due(0.0) and not lease.ping_due(5.0) and lease.ping_due(10.0)
    assert not lease.expired(29.9)
    lease.alive(25.0)
    assert not lease.expired(54.9) and lease.expired(55.0)
    assert lease.next_wake() == min(lease.next_ping, 55.0)
    assert HEARTBEAT_MISSES == 3


async def test_streams_carry_bytes_both_ways_through_small_windows() -> None:
    a, b = trio.testing.memory_stream_pair()
    small = H2Limits(initial_stream_window=65_535, initial_connection_window=65_535)
    proxy = Mux(a, client_side=True, limits=small, heartbeat_interval=None)
    laptop = Mux(b, client_side=False, limits=small, heartbeat_interval=None, on_request=echo)
    async with trio.open_nursery() as nursery:
        await nursery.start(proxy.run)
        await nursery.start(laptop.run)
        stream = await proxy.open(CONNECT)
        payload = bytes(range(256)) * 4096  # 1 MiB through 64 KiB windows

        async def send() -> None:
            await stream.send_all(payload)
            await stream.send_eof()

        nursery.start_soon(send)
        got = bytearray()
        while data := await stream.receive_some(10_000):
            assert len(data) <= 10_000
            got += data
        assert bytes(got) == payload
        await stream.aclose()
        assert proxy.open_streams == 0
        nursery.cancel_scope.cancel()


async def test_a_refused_stream_raises_oserror_and_a_dead_tunnel_fails_its_streams() -> None:
    a, b = trio.testing.memory_stream_pair()

    async def refuse(stream: VirtualStream, headers: Headers) -> None:
        if dict(headers)[b":authority"] == b"svc-0":
            stream.respond([(b":status", b"502"), (b"laneway-error", b"no provider")], True)
            return
        await echo(stream, headers)

    limits = H2Limits()
    proxy = Mux(a, client_side=True, limits=limits, heartbeat_interval=None, max_streams=2)
    laptop = Mux(b, client_side=False, limits=limits, heartbeat_interval=None, on_request=refuse)
    async with trio.open_nursery() as nursery:
        await nursery.start(proxy.run)
        await nursery.start(laptop.run)
        with pytest.raises(OSError, match="status 502: no provider"):
            await proxy.open(CONNECT)
        ok = [(b":method", b"CONNECT"), (b":authority", b"svc-1")]
        s1, s2 = await proxy.open(ok), await proxy.open(ok)
        with pytest.raises(OSError, match="stream limit"):
            await proxy.open(ok)
        laptop.close("laptop went away")
        with pytest.raises(TunnelClosed):
            while True:
                await s1.receive_some()
        with pytest.raises(TunnelClosed):
            await s2.send_all(b"x")
        with pytest.raises(OSError, match="tunnel closed"):
            await proxy.open(ok)
        nursery.cancel_scope.cancel()


async def test_a_silent_peer_is_evicted_after_three_heartbeats(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """T8 tunnel-lease (MockClock): the peer never answers a PING."""
    a, _silent = trio.testing.memory_stream_pair()
    mux = Mux(a, client_side=True, limits=H2Limits(), heartbeat_interval=10.0)
    start = trio.current_time()
    await mux.run()
    assert mux.reason == "missed 3 heartbeats (10 s apart)"
    assert trio.current_time() - start == pytest.approx(30.0)
    assert mux.stats.pings_sent == 3


async def test_answered_heartbeats_keep_an_idle_tunnel(
    autojump_clock: trio.testing.MockClock,
) -> None:
    a, b = trio.testing.memory_stream_pair()
    proxy = Mux(a, client_side=True, limits=H2Limits(), heartbeat_interval=10.0)
    laptop = Mux(b, client_side=False, limits=H2Limits(), heartbeat_interval=10.0, on_request=echo)
    async with trio.open_nursery() as nursery:
        await nursery.start(proxy.run)
        await nursery.start(laptop.run)
        await trio.sleep(300)
        assert not proxy.closed and not laptop.closed
        assert proxy.stats.pings_sent >= 29
        nursery.cancel_scope.cancel()


def test_handshake_messages_parse_whole_or_byte_by_byte() -> None:
    key = ServiceKey.of("com.acme.UserService", "1.0.0")
    hello = Hello("open", "tok", "laptop", None, (Announced(key, "grpc"),))
    wire = encode_message(hello.as_json()) + b"PRI * HTTP/2.0"
    whole = MessageReader()
    whole.feed(wire)
    message = whole.next()
    assert message is not None and parse_hello(message) == hello
    assert whole.leftover() == b"PRI * HTTP/2.0"
    split = MessageReader()
    got = None
    for i in range(len(wire)):
        split.feed(wire[i : i + 1])
        got = got or split.next()
    assert got == message


@pytest.mark.parametrize(
    ("message", "why"),
    [
        ({"op": "open", "token": "t", "services": []}, "at least one service"),
        ({"op": "shell", "token": "t"}, "unknown op"),
        ({"op": "open", "token": 5, "services": [{"interface": "a.B"}]}, "'token'"),
        ({"op": "open", "token": "t", "services": [{"interface": "a/B"}]}, "invalid interface"),
        (
            {"op": "open", "token": "t", "services": [{"interface": "a.B", "protocol": "http"}]},
            "protocol",
        ),
        ({"op": "open", "token": "t", "services": [{"interface": "a.B"}] * 2}, "twice"),
        ({"op": "open", "token": "t", "services": [{"interface": "a.B"}] * 65}, "at most"),
        ({"op": "open", "token": "t", "env": 3, "services": [{"interface": "a.B"}]}, "'env'"),
    ],
)
def test_bad_hellos_are_refused_with_the_reason(message: dict[str, object], why: str) -> None:
    with pytest.raises(WireError, match=why):
        parse_hello(message)


def test_oversized_or_non_json_messages_are_refused_early() -> None:
    reader = MessageReader()
    reader.feed((MAX_MESSAGE_BYTES + 1).to_bytes(4, "big"))
    with pytest.raises(WireError, match="bytes >"):
        reader.next()
    reader = MessageReader()
    reader.feed(b"\x00\x00\x00\x02[]")
    with pytest.raises(WireError, match="not a JSON object"):
        reader.next()


def test_service_authorities_name_only_announced_services() -> None:
    assert parse_service_authority(service_authority(2), 3) == 2
    for bad in (service_authority(3), b"svc-", b"svc-x", b"svc-99999", b"other-1"):
        assert parse_service_authority(bad, 3) is None
