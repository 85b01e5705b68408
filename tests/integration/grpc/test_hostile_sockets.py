"""Hostile HTTP/2 clients on real sockets against the running proxy (TESTS.md H2-H12).

The codec-level variants (bytes fed to ``H2Connection``) are in tests/unit/h2; here the
same attacks go through laneway's listener, read loop and writer. Each asserts what
TESTS.md asks of a flood test: (1) a named counter moved (``proxy.grpc.stats`` or the
live connection's codec counters), (2) the disconnect reason: the GOAWAY code the client
got before the close and the reason laneway records (``proxy.grpc.stats.connection_errors``),
or the RST_STREAM code of a stream-level refusal, (3) a grpcio control client on another
connection is served.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator

import trio
from hyperframe.frame import GoAwayFrame, PingFrame, SettingsFrame

from proxy.codecs.grpc.errors import ErrorCode
from proxy.serve import Proxy
from tests.integration.grpc.raw_h2 import RawH2, message, pings, raw_connection, request
from tests.integration.grpc.stack import SERVICE, GrpcStack, running_grpc_stack, until
from tests.unit.h2.helpers import raw

HELLO = f"/{SERVICE}/Hello"
TOTAL = f"/{SERVICE}/Total"
# Total is client-streaming: a HEADERS without END_STREAM keeps its stream open.
CONTROL_CALLS = 100
# why: enough samples that the p99 TESTS.md H2 asks for is not simply the maximum.
FLOOD_SEND_LIMIT_S = 5.0
# why: the proxy closes a flooding connection within milliseconds; this only bounds a bug.
LATENCY_SLACK_S = 0.05
# TESTS.md H2: control p99 <= 2 x baseline + 50 ms.
FLOOD_CPU_S = 1.0
# TESTS.md H2: the proxy spends at most 1 s of CPU on the flood.


def errors(stack: GrpcStack) -> dict[str, int]:
    """Connection errors laneway recorded, by reason (``proxy.grpc.stats``)."""
    return stack.proxy.grpc.stats.connection_errors


def live_counters(proxy: Proxy) -> dict[str, int]:
    """The codec counters of every open client connection, summed."""
    total: dict[str, int] = {}
    for conn in proxy.grpc._connections:
        for name, value in conn.codec.counters.as_dict().items():
            total[name] = total.get(name, 0) + value
    return total


async def control_served(stack: GrpcStack) -> None:
    assert await stack.call() == b"main:hi"


async def timed_calls(stack: GrpcStack, n: int, out: list[float]) -> None:
    for _ in range(n):
        start = trio.current_time()
        await control_served(stack)
        out.append(trio.current_time() - start)


async def flood(conn: RawH2, *chunks: bytes) -> None:
    """Send a flood; the proxy may close the connection part way (that is the point)."""
    with (
        trio.move_on_after(FLOOD_SEND_LIMIT_S),
        contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError),
    ):
        await conn.send(*chunks)


async def closed_with(conn: RawH2, code: ErrorCode) -> None:
    """The proxy sent exactly one GOAWAY, with ``code``, and closed ``conn``."""
    await conn.read_to_eof()
    assert [g.error_code for g in conn.of(GoAwayFrame)] == [code], conn.frames[-5:]


def _p99(samples: list[float]) -> float:
    """The 99th percentile (of 100 samples: the second largest)."""
    return sorted(samples)[int(len(samples) * 0.99) - 1]


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


# --- H2 rapid reset ---------------------------------------------------------------------------


async def test_rapid_reset_flood_is_cut_and_the_control_client_keeps_its_latency() -> None:
    """H2 rapid-reset: 10,000 HEADERS + RST_STREAM(CANCEL) pipelined on one connection."""
    async with running_grpc_stack() as stack, raw_connection(stack.address) as attacker:
        await control_served(stack)
        baseline: list[float] = []
        await timed_calls(stack, CONTROL_CALLS, baseline)
        pairs = b"".join(
            attacker.f.headers(sid, request(TOTAL)) + attacker.f.rst(sid, ErrorCode.CANCEL)
            for sid in range(1, 20_000, 2)
        )
        during: list[float] = []
        cpu = time.process_time()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(timed_calls, stack, CONTROL_CALLS, during)
            await flood(attacker, pairs)
            await closed_with(attacker, ErrorCode.ENHANCE_YOUR_CALM)
        # The whole process (proxy, providers, clients) spent under 1 s of CPU on it.
        assert time.process_time() - cpu <= FLOOD_CPU_S
        assert errors(stack) == {"rapid-reset": 1}
        # Cut after <= 1000 streams (stream ids are odd: id 2n-1 is the n-th stream).
        assert all(g.last_stream_id < 2 * 1000 for g in attacker.of(GoAwayFrame))
        # At most 250 attack streams became relays (pairs split across reads; a pair in
        # one read starts nothing), and every one of them was cancelled.
        attack_relays = stack.proxy.grpc.stats.streams - (1 + 2 * CONTROL_CALLS)
        assert attack_relays <= 250
        await until(lambda: stack.proxy.grpc_forwarder.stats.client_cancels == attack_relays)
        assert len(during) == CONTROL_CALLS
        assert _p99(during) <= 2 * _p99(baseline) + LATENCY_SLACK_S, (during, baseline)


# --- H3 CONTINUATION flood --------------------------------------------------------------------


async def test_continuation_flood_is_a_connection_error() -> None:
    """H3 continuation-flood: HEADERS without END_HEADERS, then 10,000 empty CONTINUATION."""
    async with running_grpc_stack() as stack, raw_connection(stack.address) as attacker:
        start = attacker.f.headers(1, request(HELLO), end_headers=False)
        empty = attacker.f.continuation(1, b"", end_headers=False)
        await flood(attacker, start, empty * 10_000)
        await closed_with(attacker, ErrorCode.ENHANCE_YOUR_CALM)
        assert errors(stack) == {"continuation-flood": 1}
        assert stack.proxy.grpc.stats.streams == 0  # the stream never opened
        await control_served(stack)


# --- H4 HPACK bomb ----------------------------------------------------------------------------


async def test_hpack_bomb_is_refused_before_it_inflates() -> None:
    """H4 hpack-bomb: a 4 KB dynamic-table entry referenced 2000 times in one block."""
    async with running_grpc_stack() as stack, raw_connection(stack.address) as attacker:
        # The entry is inserted last, so it is dynamic index 62 (0xbe as an indexed field).
        block = attacker.f.block([*request(HELLO), (b"x-bomb", b"a" * 4000)])
        bomb = attacker.f.headers(1, block + b"\xbe" * 2000, end_stream=True)
        assert len(bomb) < 16_384  # ~6 KB on the wire that would decode to ~8 MB
        await flood(attacker, bomb)
        await closed_with(attacker, ErrorCode.ENHANCE_YOUR_CALM)
        assert errors(stack) == {"header-list-size": 1}
        assert stack.proxy.grpc.stats.streams == 0
        await control_served(stack)


# --- H5 PING / SETTINGS flood from a peer that never reads ------------------------------------


TINY_RCVBUF = 4096
# why: the attacker's receive window fills at once, so laneway's replies back up (H5).


async def _non_reading_flood(attacker: RawH2, frame: bytes, count: int) -> None:
    """Flood ``count`` copies of ``frame`` from a peer with a tiny receive buffer that reads
    nothing until the flood is over; then read what the proxy left for it."""
    await flood(attacker, frame * count)
    await closed_with(attacker, ErrorCode.ENHANCE_YOUR_CALM)


async def test_ping_flood_from_a_non_reading_peer_is_cut() -> None:
    """H5 ping/settings-flood, non-reading peer: 100k PINGs, SO_RCVBUF tiny, never read.
    The PING/SETTINGS rate limit (burst 100, 10/s) trips long before 1000 replies queue."""
    async with (
        running_grpc_stack() as stack,
        raw_connection(stack.address, rcvbuf=TINY_RCVBUF) as attacker,
    ):
        await _non_reading_flood(attacker, PingFrame(0, b"floodpng").serialize(), 100_000)
        assert len(pings(attacker, ack=True)) <= 100  # replies stop at the burst
        assert errors(stack) == {"control-rate": 1}
        await control_served(stack)


async def test_settings_flood_from_a_non_reading_peer_is_cut() -> None:
    """H5 ping/settings-flood, non-reading peer: 10k SETTINGS, SO_RCVBUF tiny, never read."""
    async with (
        running_grpc_stack() as stack,
        raw_connection(stack.address, rcvbuf=TINY_RCVBUF) as attacker,
    ):
        await _non_reading_flood(attacker, SettingsFrame(0, {4: 65_535}).serialize(), 10_000)
        acks = [f for f in attacker.of(SettingsFrame) if "ACK" in f.flags]
        assert len(acks) <= 102  # the preface's SETTINGS, then the burst of 100
        assert errors(stack) == {"control-rate": 1}
        await control_served(stack)


# --- H6 empty DATA frames ---------------------------------------------------------------------


async def test_empty_data_frame_flood_is_cut() -> None:
    """H6 empty-frame flood: 10k zero-length DATA frames without END_STREAM on one stream."""
    async with running_grpc_stack() as stack, raw_connection(stack.address) as attacker:
        opened = attacker.f.headers(1, request(TOTAL))
        await flood(attacker, opened, attacker.f.data(1, b"") * 10_000)
        await closed_with(attacker, ErrorCode.ENHANCE_YOUR_CALM)
        assert errors(stack) == {"empty-frames": 1}
        await control_served(stack)


# --- H7 oversized frame declaration -----------------------------------------------------------


async def test_oversized_frame_declaration_is_refused_on_its_header() -> None:
    """H7 oversized-frame-declaration: a DATA header declaring 2^24-1 bytes, then a trickle.
    GOAWAY(FRAME_SIZE_ERROR) comes after the 9-byte header alone, before any body byte."""
    async with running_grpc_stack() as stack, raw_connection(stack.address) as attacker:
        await attacker.handshake_done()
        await attacker.send(attacker.f.headers(1, request(TOTAL)))
        await attacker.send(raw(0x0, 0, 1, b"", length=2**24 - 1))
        # Refused on the 9-byte header alone: no body byte has been sent yet.
        assert (await attacker.goaway()).error_code == ErrorCode.FRAME_SIZE_ERROR
        assert errors(stack) == {"frame-size": 1}
        for _ in range(10):  # the trickle goes nowhere: the connection is closed
            with contextlib.suppress(trio.BrokenResourceError):
                await attacker.send(b"x" * 100)
        await closed_with(attacker, ErrorCode.FRAME_SIZE_ERROR)
        await control_served(stack)


# --- H8 slowloris -----------------------------------------------------------------------------

SLOW_CLIENTS = 5
IDLE_TIMEOUT_S = 0.3
# why: short, so the test is fast; the production default is 3600 s (Envoy).


async def test_silent_connections_are_closed_at_the_idle_timeout_and_fds_return() -> None:
    """H8 slowloris (silent variant): connections that send the preface and then nothing are
    closed with GOAWAY(NO_ERROR) at the idle timeout; fds return to the baseline and a fresh
    client is served throughout. (The byte-per-interval trickle is
    tests/integration/grpc/test_wire_limits.py's slowloris test.)"""
    async with (
        running_grpc_stack(grpc_idle_timeout=IDLE_TIMEOUT_S) as stack,
        contextlib.AsyncExitStack() as connections,
    ):
        await control_served(stack)
        fds = _open_fds() + SLOW_CLIENTS  # our own ends of the slow connections stay open
        slow = [
            await connections.enter_async_context(raw_connection(stack.address))
            for _ in range(SLOW_CLIENTS)
        ]
        await until(lambda: stack.proxy.grpc.stats.accepted == SLOW_CLIENTS + 1)
        await control_served(stack)  # served while they hang on
        for conn in slow:
            await closed_with(conn, ErrorCode.NO_ERROR)
        await until(lambda: len(stack.proxy.grpc._connections) <= 1)
        await until(lambda: _open_fds() <= fds)
        await control_served(stack)


async def test_a_connection_that_falls_silent_after_a_call_is_closed_at_the_idle_timeout() -> None:
    """The idle clock starts when the last call ends, not at the last read: a client that
    made a call (its request was read while the call was open) and then says nothing is
    closed with GOAWAY(NO_ERROR) after the idle timeout, not kept forever."""
    async with (
        running_grpc_stack(grpc_idle_timeout=IDLE_TIMEOUT_S) as stack,
        raw_connection(stack.address) as conn,
    ):
        await conn.handshake_done()
        await conn.send(
            conn.f.headers(1, request(HELLO)), conn.f.data(1, message(b"hi"), end_stream=True)
        )
        got = await conn.response(1)
        assert got.status == 0, got
        with trio.fail_after(IDLE_TIMEOUT_S * 10):
            await closed_with(conn, ErrorCode.NO_ERROR)


async def test_a_busy_connection_outlives_many_idle_timeouts() -> None:
    """Calls back to back for several idle timeouts on one connection (the read loop's
    deadline then fires and is found early, again and again): every call is answered and
    the connection is never closed."""
    async with (
        running_grpc_stack(grpc_idle_timeout=IDLE_TIMEOUT_S) as stack,
        raw_connection(stack.address) as conn,
    ):
        await conn.handshake_done()
        stream_id = 1
        end = trio.current_time() + 4 * IDLE_TIMEOUT_S
        while trio.current_time() < end:
            await conn.send(
                conn.f.headers(stream_id, request(HELLO)),
                conn.f.data(stream_id, message(b"hi"), end_stream=True),
            )
            got = await conn.response(stream_id)
            assert got.status == 0, got
            stream_id += 2
            await trio.sleep(IDLE_TIMEOUT_S / 5)
        assert stream_id > 20
        assert not conn.of(GoAwayFrame)
        assert stack.proxy.grpc.stats.connection_errors == {}


# --- H10 stream limit -------------------------------------------------------------------------

MAX_STREAMS = 100


async def _finish_streams(conn: RawH2, stream_ids: Iterator[int]) -> None:
    """End each client-streaming call with one message; each must come back OK."""
    ids = list(stream_ids)
    await conn.send(*(conn.f.data(sid, message(b"ab"), end_stream=True) for sid in ids))
    for sid in ids:
        got = await conn.response(sid)
        assert got.status == 0, (sid, got)
        assert got.data == message(b"2")


async def test_the_101st_concurrent_stream_is_refused_and_the_100_live_on() -> None:
    """H10 stream-limit: stream #101 gets RST_STREAM(REFUSED_STREAM); the other 100 and the
    connection stay intact (the documented decision, docs/http2.md)."""
    async with running_grpc_stack() as stack, raw_connection(stack.address) as conn:
        await conn.handshake_done()
        await conn.read_until(lambda: any("ACK" in f.flags for f in conn.of(SettingsFrame)))
        live = range(1, 2 * MAX_STREAMS, 2)
        await conn.send(*(conn.f.headers(sid, request(TOTAL)) for sid in live))
        await until(lambda: stack.proxy.grpc.stats.streams == MAX_STREAMS)
        extra = 2 * MAX_STREAMS + 1
        await conn.send(conn.f.headers(extra, request(TOTAL)))
        refused = await conn.response(extra)
        assert refused.reset == ErrorCode.REFUSED_STREAM
        assert live_counters(stack.proxy)["refused_streams"] == 1
        await _finish_streams(conn, iter(live))
        assert not conn.of(GoAwayFrame)
        assert stack.proxy.grpc.stats.streams == MAX_STREAMS
        await control_served(stack)


async def test_a_101_stream_burst_before_the_settings_ack_is_refused_the_same_way() -> None:
    """H10 stream-limit: 101 streams sent with the preface, before laneway's SETTINGS could
    be acknowledged: the limit holds from the first byte."""
    async with (
        running_grpc_stack() as stack,
        raw_connection(stack.address, handshake=False) as conn,
    ):
        live = range(1, 2 * MAX_STREAMS, 2)
        extra = 2 * MAX_STREAMS + 1
        headers = [conn.f.headers(sid, request(TOTAL)) for sid in (*live, extra)]
        await conn.send(conn.f.preface(), conn.f.settings(), *headers)
        refused = await conn.response(extra)
        assert refused.reset == ErrorCode.REFUSED_STREAM
        assert live_counters(stack.proxy)["refused_streams"] == 1
        await _finish_streams(conn, iter(live))
        assert not conn.of(GoAwayFrame)
        await control_served(stack)


# --- H11 header limits ------------------------------------------------------------------------


async def _call_works(conn: RawH2, sid: int) -> None:
    """A valid unary call on ``sid`` of ``conn`` is served: the connection is reusable."""
    await conn.send(
        conn.f.headers(sid, request(HELLO)), conn.f.data(sid, message(b"hi"), end_stream=True)
    )
    got = await conn.response(sid)
    assert got.status == 0, got
    assert got.data == message(b"main:hi")


async def test_malformed_header_lists_reset_the_stream_and_the_connection_is_reused() -> None:
    """H11 header-limits: 101 fields, an uppercase name, an invalid name, a duplicate
    ``:path``: each is RST_STREAM(PROTOCOL_ERROR); the same connection then serves a call."""
    async with running_grpc_stack() as stack, raw_connection(stack.address) as conn:
        await conn.handshake_done()
        bad_lists = [
            request(HELLO, *((b"x-field-%d" % i, b"v") for i in range(101))),
            request(HELLO, (b"X-Upper", b"v")),
            request(HELLO, (b"bad name", b"v")),
            request(HELLO, (b":path", HELLO.encode())),
        ]
        sid = 1
        for n, headers in enumerate(bad_lists, start=1):
            await conn.send(conn.f.headers(sid, headers, end_stream=True))
            got = await conn.response(sid)
            assert got.reset == ErrorCode.PROTOCOL_ERROR, (headers[-1], got)
            assert live_counters(stack.proxy)["stream_errors"] == n
            await _call_works(conn, sid + 2)
            sid += 4
        assert not conn.of(GoAwayFrame)
        assert stack.main.calls == len(bad_lists)  # only the valid calls reached it
        await control_served(stack)


async def test_a_65_kib_header_list_closes_the_connection() -> None:
    """H11 header-limits: a 65 KiB header list (over 64 KiB) is a connection error, as
    docs/http2.md decides (HPACK state cannot be kept without decoding it all)."""
    async with running_grpc_stack() as stack, raw_connection(stack.address) as conn:
        block = conn.f.block(request(HELLO, (b"x-big", b"a" * 65 * 1024)))
        await flood(conn, *conn.f.header_frames(1, block, end_stream=True))
        await closed_with(conn, ErrorCode.ENHANCE_YOUR_CALM)
        assert errors(stack) == {"header-list-size": 1}
        assert stack.proxy.grpc.stats.streams == 0
        await control_served(stack)


# --- H12 connection limit ---------------------------------------------------------------------

CONNECTION_LIMIT = 10
EXCESS = 100


async def _refused_within(address: str) -> float:
    """Connect and time until the proxy closes the connection."""
    start = trio.current_time()
    async with raw_connection(address, handshake=False) as conn:
        await conn.read_to_eof()
        took = trio.current_time() - start
        assert not conn.frames  # closed on accept: not even SETTINGS
    return took


async def _admitted_within(address: str) -> float:
    """Connect and time until the proxy's SETTINGS arrive (then close)."""
    start = trio.current_time()
    async with raw_connection(address) as conn:
        await conn.read_until(lambda: bool(conn.of(SettingsFrame)))
        return trio.current_time() - start


def _ping_acked(conn: RawH2) -> Callable[[], bool]:
    return lambda: bool(pings(conn, ack=True))


async def test_connections_over_the_limit_are_closed_at_once() -> None:
    """H12 conn-limit: limit + 100 connections; the excess is closed on accept (p99 within
    2 x the p99 of an admitted connection's time to SETTINGS, measured first, + 10 ms);
    the admitted ones and the control client are unaffected."""
    async with (
        running_grpc_stack(max_connections=CONNECTION_LIMIT) as stack,
        contextlib.AsyncExitStack() as connections,
    ):
        await control_served(stack)  # the control client holds one of the slots
        baseline = [await _admitted_within(stack.address) for _ in range(EXCESS)]
        await until(lambda: len(stack.proxy.grpc._connections) == 1)
        admitted = []
        for _ in range(CONNECTION_LIMIT - 1):
            conn = await connections.enter_async_context(raw_connection(stack.address))
            await conn.handshake_done()
            admitted.append(conn)
        closes = [await _refused_within(stack.address) for _ in range(EXCESS)]
        assert stack.proxy.grpc.stats.refused_connections == EXCESS
        assert _p99(closes) <= 2 * _p99(baseline) + 0.010, (_p99(closes), _p99(baseline))
        for conn in admitted:
            await conn.send(conn.f.ping(b"stillok!"))
            await conn.read_until(_ping_acked(conn))
        await control_served(stack)
