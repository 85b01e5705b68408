"""T6 tunnel-transport: the tunnel listener with TLS and client certificates (mTLS).

Certificates are made for each run with the `openssl` command line (a CA for the proxy and
laptops, and a second, unrelated CA), valid for a day, for 127.0.0.1."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
import trio

from proxy.tunnel.client import dial, handshake
from proxy.tunnel.settings import client_ssl_context
from proxy.tunnel.wire import Hello
from tests.integration.tunnel.stack import ENV, TunnelStack, running_tunnel_stack, until

EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


async def openssl(*args: str | Path) -> None:
    await trio.run_process(["openssl", *map(str, args)], capture_stdout=True, capture_stderr=True)


async def make_ca(d: Path, name: str) -> None:
    await openssl(
        "req",
        "-x509",
        *EC,
        "-keyout",
        d / f"{name}.key",
        "-out",
        d / f"{name}.pem",
        "-days",
        "1",
        "-subj",
        f"/CN={name}",
    )


async def make_cert(d: Path, name: str, ca: str, ext: str) -> None:
    (d / f"{name}.ext").write_text(ext)
    await openssl(
        "req", *EC, "-keyout", d / f"{name}.key", "-out", d / f"{name}.csr", "-subj", f"/CN={name}"
    )
    await openssl(
        "x509",
        "-req",
        "-in",
        d / f"{name}.csr",
        "-CA",
        d / f"{ca}.pem",
        "-CAkey",
        d / f"{ca}.key",
        "-CAcreateserial",
        "-out",
        d / f"{name}.pem",
        "-days",
        "1",
        "-extfile",
        d / f"{name}.ext",
    )


@pytest.fixture
async def pki(tmp_path: Path) -> Path:
    await make_ca(tmp_path, "ca")
    await make_ca(tmp_path, "other-ca")
    await make_cert(tmp_path, "proxy", "ca", "subjectAltName=IP:127.0.0.1\n")
    await make_cert(tmp_path, "laptop", "ca", "extendedKeyUsage=clientAuth\n")
    return tmp_path


async def refused_at_handshake(stack: TunnelStack, context: ssl.SSLContext | None) -> None:
    stream = await dial(stack.tunnel_address, context)
    with pytest.raises(trio.BrokenResourceError):
        await handshake(stream, Hello("list", stack.token()))
    await trio.aclose_forcefully(stream)


async def test_plaintext_wrong_ca_and_missing_client_cert_are_refused_mtls_works(
    pki: Path,
) -> None:
    """T6 tunnel-transport"""
    async with running_tunnel_stack(
        tls_cert=pki / "proxy.pem", tls_key=pki / "proxy.key", client_ca=pki / "ca.pem"
    ) as stack:
        # Plaintext: the proxy's TLS handshake fails; nothing is read as a hello.
        await refused_at_handshake(stack, None)
        await until(lambda: stack.tunnel.stats.tls_failures == 1)
        # A laptop trusting another CA refuses the proxy's certificate.
        await refused_at_handshake(stack, client_ssl_context(pki / "other-ca.pem"))
        # Right CA but no client certificate: the proxy refuses the laptop.
        await refused_at_handshake(stack, client_ssl_context(pki / "ca.pem"))
        await until(lambda: stack.tunnel.stats.tls_failures >= 2)
        assert stack.tunnel.sessions() == [] and stack.tunnel.stats.accepted == 0
        # Valid mTLS: the tunnel comes up and carries calls.
        good = client_ssl_context(pki / "ca.pem", pki / "laptop.pem", pki / "laptop.key")
        laptop = await stack.laptop(ssl_context=good)
        assert laptop.info.env == ENV
        client = await stack.client()
        assert (await stack.call(client, tag=ENV)).value == "Hello, world! (served by laptop)"
        assert (await stack.call(client)).value == "Hello, world! (served by main)"
        await client.aclose()
