"""Hostile Dubbo input at the proxy's socket: answered or closed, nothing reaches a provider,
and other consumers keep being served (each test checks a control call)."""

from __future__ import annotations

import os
import struct

import trio

from proxy.codecs.dubbo import HEADER_LENGTH, MAGIC, encode_request, parse_header
from proxy.demo import GREETER
from proxy.errors import DubboStatus
from tests.integration.dubbo.stack import Stack, running_stack

READ_TIMEOUT = 0.3


async def _raw(stack: Stack) -> trio.SocketStream:
    host, _, port = stack.dubbo.rpartition(":")
    return await trio.open_tcp_stream(host, int(port))


async def _read_until_closed(stream: trio.SocketStream, limit: float = 2.0) -> bytes:
    """Everything the proxy sends until it closes the connection (fails after ``limit``)."""
    got = b""
    with trio.fail_after(limit):
        while chunk := await stream.receive_some(65536):
            got += chunk
    await stream.aclose()
    return got


def _status(frame: bytes) -> int:
    return parse_header(frame[:HEADER_LENGTH]).status


async def _assert_untouched_and_serving(stack: Stack) -> None:
    assert stack.main.calls == stack.feature.calls == 0
    assert stack.proxy.pool.stats.connects == 0
    control = await stack.call()
    assert control.ok, control


async def test_bad_magic_closes_without_reaching_upstream() -> None:
    """D1 dubbo-bad-magic"""
    async with running_stack() as stack:
        stream = await _raw(stack)
        start = trio.current_time()
        await stream.send_all(b"\x12\x34" + os.urandom(14))
        assert await _read_until_closed(stream) == b""
        assert trio.current_time() - start < 0.1
        assert stack.proxy.dubbo.stats.protocol_errors == 1
        await _assert_untouched_and_serving(stack)


async def test_telnet_commands_are_refused() -> None:
    """D2 dubbo-telnet-refusal"""
    async with running_stack() as stack:
        for line in (b"ls\r\n", b"invoke a.B.c({})\r\n"):
            stream = await _raw(stack)
            await stream.send_all(line)
            assert await _read_until_closed(stream) == b""
        await _assert_untouched_and_serving(stack)


async def test_other_serializations_are_rejected_with_bad_request() -> None:
    """D3 serialization-pin"""
    async with running_stack() as stack:
        frame = bytearray(encode_request(request_id=7, path=GREETER, method="sayHello"))
        for serialization in (3, 4, 6, 7, 8, 9, 23):
            frame[2] = (frame[2] & 0xE0) | serialization
            stream = await _raw(stack)
            await stream.send_all(bytes(frame))
            answer = await _read_until_closed(stream)
            assert _status(answer) == DubboStatus.BAD_REQUEST
            assert str(serialization).encode() in answer
        await _assert_untouched_and_serving(stack)


async def test_oversize_body_is_rejected_on_the_header() -> None:
    """D4 dubbo-oversize"""
    async with running_stack() as stack:
        for length in (8 * 1024 * 1024 + 1, 0x80000000):
            header = struct.pack(">HBBQI", MAGIC, 0xC2, 0, 9, length)
            stream = await _raw(stack)
            await stream.send_all(header)
            answer = await _read_until_closed(stream)
            assert _status(answer) == DubboStatus.BAD_REQUEST
        await _assert_untouched_and_serving(stack)


async def test_stalled_body_is_closed_at_the_request_read_timeout() -> None:
    """D5 dubbo-stalled-body"""
    async with running_stack(request_read_timeout=READ_TIMEOUT) as stack:
        header = struct.pack(">HBBQI", MAGIC, 0xC2, 0, 11, 1024 * 1024)
        stream = await _raw(stack)
        start = trio.current_time()
        await stream.send_all(header + b"x" * 10)
        assert await _read_until_closed(stream) == b""
        took = trio.current_time() - start
        assert READ_TIMEOUT <= took < READ_TIMEOUT + 0.5  # 0.5: scheduling slack on 2 busy cores
        assert stack.proxy.dubbo.stats.read_timeouts == 1
        await _assert_untouched_and_serving(stack)


async def test_hessian_depth_bomb_in_attachments_is_a_bad_request() -> None:
    """D6 hessian-depth-bomb (through the proxy)"""
    async with running_stack() as stack:
        good = encode_request(request_id=5, path=GREETER, method="sayHello", version="1.0.0")
        # Replace the (empty) attachments map with 10,000 nested lists.
        body = good[HEADER_LENGTH:-2] + b"H" + b"\x03tag" + b"\x57" * 10_000 + b"Z"
        frame = struct.pack(">HBBQI", MAGIC, 0xC2, 0, 5, len(body)) + body
        stream = await _raw(stack)
        await stream.send_all(frame)
        answer = await _read_until_closed(stream)
        assert _status(answer) == DubboStatus.BAD_REQUEST
        await _assert_untouched_and_serving(stack)


async def test_silent_consumer_is_closed_at_the_idle_timeout() -> None:
    async with running_stack(consumer_idle_timeout=READ_TIMEOUT) as stack:
        start = trio.current_time()  # before connecting: the proxy's clock starts at accept
        stream = await _raw(stack)
        assert await _read_until_closed(stream) == b""
        assert trio.current_time() - start >= READ_TIMEOUT
        assert stack.proxy.dubbo.stats.idle_closed == 1
        await _assert_untouched_and_serving(stack)


async def _call_raw(stream: trio.SocketStream, request_id: int) -> bytes:
    """One sayHello on a raw connection; returns the answer frame."""
    frame = encode_request(
        request_id=request_id,
        path=GREETER,
        method="sayHello",
        parameter_types="Ljava/lang/String;",
        arguments=["world"],
        version="1.0.0",
    )
    await stream.send_all(frame)
    got = b""
    with trio.fail_after(5):
        while len(got) < HEADER_LENGTH or len(got) < parse_header(got).frame_length:
            chunk = await stream.receive_some(65536)
            assert chunk, "the proxy closed the connection"
            got += chunk
    assert parse_header(got).request_id == request_id
    return got


async def test_a_busy_consumer_connection_outlives_many_idle_timeouts() -> None:
    """Calls back to back on one connection for 4x the idle timeout (the read loop's
    deadline fires and is found early, again and again): every call is answered and the
    connection is never closed."""
    async with running_stack(consumer_idle_timeout=READ_TIMEOUT) as stack:
        stream = await _raw(stack)
        request_id = 1
        end = trio.current_time() + 4 * READ_TIMEOUT
        while trio.current_time() < end:
            assert _status(await _call_raw(stream, request_id)) == DubboStatus.OK
            request_id += 1
            await trio.sleep(READ_TIMEOUT / 5)
        assert request_id > 10
        assert stack.proxy.dubbo.stats.idle_closed == 0
        assert _status(await _call_raw(stream, request_id)) == DubboStatus.OK
        await stream.aclose()


async def test_a_consumer_falling_silent_after_a_call_is_closed_at_the_idle_timeout() -> None:
    async with running_stack(consumer_idle_timeout=READ_TIMEOUT) as stack:
        stream = await _raw(stack)
        await trio.sleep(READ_TIMEOUT / 2)  # the connection's first deadline is now stale
        assert _status(await _call_raw(stream, 1)) == DubboStatus.OK
        answered = trio.current_time()
        assert await _read_until_closed(stream) == b""
        took = trio.current_time() - answered
        assert READ_TIMEOUT - 0.05 <= took < READ_TIMEOUT + 0.5  # 0.5: slack on 2 busy cores
        assert stack.proxy.dubbo.stats.idle_closed == 1
        control = await stack.call()
        assert control.ok, control
