"""gRPC over TLS with ALPN h2 when a certificate is configured (issue 6)."""

from __future__ import annotations

import ssl
from pathlib import Path

import grpc
import pytest
import trio
import trustme

from proxy.config import TlsConfig
from tests.integration.grpc.stack import FEATURE, running_grpc_stack


def _tls_files(tmp_path: Path) -> tuple[TlsConfig, trustme.CA]:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(cert_path))
    cert.private_key_pem.write_to_path(str(key_path))
    return TlsConfig(cert=cert_path, key=key_path), ca


async def test_grpc_over_tls_routes_by_tag(tmp_path: Path) -> None:
    tls, ca = _tls_files(tmp_path)
    credentials = grpc.ssl_channel_credentials(root_certificates=ca.cert_pem.bytes())
    async with running_grpc_stack(grpc_tls=tls, channel_credentials=credentials) as stack:
        assert await stack.call() == b"main:hi"
        assert await stack.call(metadata=(("x-env", FEATURE),)) == b"feature-1:hi"


async def test_plaintext_and_non_h2_alpn_are_refused(tmp_path: Path) -> None:
    tls, ca = _tls_files(tmp_path)
    credentials = grpc.ssl_channel_credentials(root_certificates=ca.cert_pem.bytes())
    async with running_grpc_stack(grpc_tls=tls, channel_credentials=credentials) as stack:
        host, _, port = stack.address.rpartition(":")
        plain = grpc.insecure_channel(stack.address)
        stub = plain.unary_unary("/demo.Greeter/Hello", None, None)
        with pytest.raises(grpc.RpcError) as info:
            await trio.to_thread.run_sync(lambda: stub(b"hi", timeout=5))
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        plain.close()
        context = ssl.create_default_context()
        ca.configure_trust(context)
        context.set_alpn_protocols(["http/1.1"])
        raw = await trio.open_tcp_stream(host, int(port))
        client = trio.SSLStream(raw, context, server_hostname="127.0.0.1")
        with trio.fail_after(5):
            try:
                await client.do_handshake()
                assert await client.receive_some(100) == b""
            except (trio.BrokenResourceError, ssl.SSLError):
                pass  # refused during or right after the handshake: both are a refusal
        await trio.aclose_forcefully(client)
        errors = stack.proxy.grpc.stats.connection_errors
        assert errors.get("alpn-not-h2", 0) + errors.get("tls-handshake", 0) >= 2
        assert await stack.call() == b"main:hi"  # and the listener still serves
