"""Limits that only show on real sockets: bounded buffering for a non-reading client,
GOAWAY delivered before close (TLS too), the connection cap under a burst, and the
request-headers timeout (slowloris). Found by the conformance tests; each failed once."""

from __future__ import annotations

import ssl
from pathlib import Path

import grpc
import pytest
import trio
import trustme
from hyperframe.frame import GoAwayFrame, SettingsFrame

from proxy.codecs.grpc.errors import ErrorCode
from proxy.codecs.grpc.limits import INITIAL_STREAM_WINDOW, MAX_UNFLUSHED_BYTES
from proxy.config import TlsConfig
from tests.integration.grpc.raw_h2 import RawH2, message, raw_connection, request
from tests.integration.grpc.stack import SERVICE, running_grpc_stack
from tests.polling import until
from tests.unit.h2.helpers import raw

ROUNDS = 20
STREAMS = 8


async def test_a_client_that_opens_windows_but_never_reads_is_bounded() -> None:
    """R11 / H5: 2^31-1 windows, 8 calls answering 4 MB each, never read: laneway holds
    at most ~1 MiB for the connection (flow control reaches back to the provider)."""
    async with (
        running_grpc_stack() as stack,
        raw_connection(stack.address, settings={0x4: 2**31 - 1}, rcvbuf=4096) as conn,
    ):
        frames = [conn.f.window_update(0, 2**31 - 1 - 65_535)]
        for sid in range(1, 2 * STREAMS, 2):
            frames.append(conn.f.headers(sid, request(f"/{SERVICE}/Size")))
            frames.append(conn.f.data(sid, message(b"4000000"), end_stream=True))
        await conn.send(*frames)
        await until(lambda: stack.main.calls == STREAMS)
        held = []
        for _ in range(10):
            await trio.sleep(0.1)
            held.append(sum(c.codec.unflushed_bytes for c in stack.proxy.grpc._connections))
        assert max(held) <= MAX_UNFLUSHED_BYTES + INITIAL_STREAM_WINDOW, held


async def test_the_goaway_of_a_connection_error_reaches_a_tls_client(tmp_path: Path) -> None:
    """H7 (wire, TLS): the GOAWAY(FRAME_SIZE_ERROR) is flushed before the close."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(cert_path))
    cert.private_key_pem.write_to_path(str(key_path))
    client = ssl.create_default_context()
    ca.configure_trust(client)
    client.set_alpn_protocols(["h2"])
    async with running_grpc_stack(grpc_tls=TlsConfig(cert=cert_path, key=key_path)) as stack:
        for _ in range(ROUNDS):
            async with raw_connection(stack.address, tls=client) as conn:
                await conn.handshake_done()
                await conn.send(raw(0x0, 0, 1, b"", length=2**24 - 1))
                await conn.read_to_eof()
                codes = [g.error_code for g in conn.of(GoAwayFrame)]
                assert codes == [ErrorCode.FRAME_SIZE_ERROR], conn.frames


async def test_a_burst_of_connections_never_admits_more_than_the_limit() -> None:
    """H12: 100 connections at once and held; at most the limit (10, incl. control)."""
    limit, burst = 10, 100
    async with running_grpc_stack(max_connections=limit) as stack:
        assert await stack.call() == b"main:hi"
        conns: list[RawH2] = []

        async def one() -> None:
            conn = await RawH2.connect(stack.address)
            conns.append(conn)
            with trio.fail_after(5):
                while not conn.of(SettingsFrame) and await conn.read_some():
                    pass

        try:
            async with trio.open_nursery() as nursery:
                for _ in range(burst):
                    nursery.start_soon(one)
            served = [c for c in conns if c.of(SettingsFrame)]
            assert len(served) == limit - 1
            assert stack.proxy.grpc.stats.refused_connections == burst - len(served)
        finally:
            for conn in conns:
                await conn.aclose()


async def test_a_trickled_header_block_is_closed_at_the_request_headers_timeout() -> None:
    """H8 slowloris: HEADERS trickled 1 byte / 0.1 s, under the 0.3 s idle timeout."""
    async with (
        running_grpc_stack(grpc_idle_timeout=0.3, request_read_timeout=0.5) as stack,
        raw_connection(stack.address) as conn,
    ):
        await conn.handshake_done()
        frame = conn.f.headers(1, request(f"/{SERVICE}/Hello"), end_stream=True)
        closed = False
        with trio.move_on_after(3.0):
            for byte in frame[:-1]:
                try:
                    await conn.send(bytes([byte]))
                except trio.BrokenResourceError:
                    closed = True
                    break
                await trio.sleep(0.1)
        if not closed:
            with trio.move_on_after(0.1):
                closed = not await conn.read_some() or conn.eof
        assert closed, "a trickled header block keeps the connection open indefinitely"
        errors = stack.proxy.grpc.stats.connection_errors
        assert errors.get("request-headers-timeout") == 1


async def test_the_upstream_connection_window_gets_every_byte_back() -> None:
    """R11 accounting: after many calls (and a cancelled one) the provider connection's
    receive window is whole again; a leak would shut the connection after ~1 MiB."""
    async with running_grpc_stack() as stack:
        for _ in range(30):
            assert len(await stack.call("Size", b"10000")) == 10_000
        with pytest.raises(grpc.RpcError):
            await stack.call("Sleep", b"300", deadline_s=0.05)  # ends before its answer
        await trio.sleep(0.4)  # the late answer's DATA (if any) has arrived by now
        (upstream,) = stack.proxy.grpc_pool.connections().values()
        window = upstream.codec._conn_in
        assert window.available + window.unacked == window.target
