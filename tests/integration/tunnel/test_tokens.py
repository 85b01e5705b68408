"""T5 token-lifecycle: expired, revoked and wrongly signed tokens; live revocation; auth
rate limiting; `tunnel ls`; the client's reconnect with backoff."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
import trio

from proxy.tunnel.client import TunnelRefused, list_tunnels
from proxy.tunnel.server import REVOCATION_POLL_SECONDS
from proxy.tunnel.tokens import issue_token, token_id
from tests.integration.tunnel.stack import ENV, SECRET, raw_tunnel, running_tunnel_stack, until


async def test_expired_revoked_and_forged_tokens_are_refused_at_connect(tmp_path: Path) -> None:
    """T5 token-lifecycle"""
    revoked_file = tmp_path / "revoked.txt"
    async with running_tunnel_stack(revoked_file=revoked_file) as stack:
        expired = issue_token(SECRET.encode(), ENV, 60, time.time() - 3600)
        revoked = stack.token()
        revoked_file.write_text(f"# revoked by ops\n{token_id(revoked)}\n")
        stack.tunnel._load_revoked()
        other_secret = issue_token(b"another-server-secret-0123456789abcdef", ENV, 60, time.time())
        tampered = stack.token()[:-3] + ("AAA" if not stack.token().endswith("AAA") else "BBB")
        cases = {
            "expired": expired,
            "revoked": revoked,
            "other-secret": other_secret,
            "tampered": tampered,
            "garbage": "not-a-token",
        }
        messages = {}
        for name, token in cases.items():
            with pytest.raises(TunnelRefused) as refused:
                await stack.laptop(token)
            messages[name] = refused.value.message
            assert not refused.value.retry
        assert "expired" in messages["expired"]
        assert "revoked" in messages["revoked"]
        assert "signature is invalid" in messages["other-secret"]
        assert "signature is invalid" in messages["tampered"]
        assert "malformed" in messages["garbage"]
        assert set(stack.lanes()) == {"main"}
        # The revocation list holds ids (hashes), never a usable token.
        assert revoked not in revoked_file.read_text()


async def test_revoking_a_live_token_closes_its_tunnel_within_seconds(tmp_path: Path) -> None:
    """T5 token-lifecycle (live revocation)"""
    revoked_file = tmp_path / "revoked.txt"
    revoked_file.write_text("")
    async with running_tunnel_stack(revoked_file=revoked_file) as stack:
        token = stack.token()
        laptop = await stack.laptop(token)
        assert ENV in stack.lanes()
        revoked_file.write_text(token_id(token) + "\n")
        took = await until(lambda: ENV not in stack.lanes())
        assert took <= REVOCATION_POLL_SECONDS + 1.0  # T5: <= 5 s
        # The laptop reconnects, is refused for good, and stops.
        await until(lambda: bool(laptop.ended))
        assert "revoked" in laptop.ended[0].message
        assert stack.tunnel.stats.revoked == 1


async def test_auth_attempts_are_rate_limited_per_peer(caplog: pytest.LogCaptureFixture) -> None:
    """T5 token-lifecycle (100 bad auths)"""
    caplog.set_level(logging.INFO, logger="laneway.tunnel")
    async with running_tunnel_stack(auth_burst=10, auth_per_minute=30) as stack:
        bad = stack.token()[:-4] + "AAAA"
        answers = []
        for _ in range(100):
            stream, reply, _ = await raw_tunnel(stack, bad)
            answers.append(reply)
            await stream.aclose()
        assert not any(a["ok"] for a in answers)
        limited = [a for a in answers if "too many authentication attempts" in a["error"]]
        assert len(limited) >= 89 and all(a["retry"] for a in limited)
        assert stack.tunnel.stats.rate_limited == len(limited)
        # The limit is per peer: a laptop at another address still gets in.
        stream, reply, _ = await raw_tunnel(stack, stack.token(), source="127.0.0.2")
        assert reply["ok"], reply
        await stream.aclose()
        # Secrets never reach the log: neither the secret nor any token.
        assert caplog.records
        for record in caplog.records:
            text = record.getMessage()
            assert SECRET not in text and bad not in text and bad[:40] not in text


async def test_tunnel_ls_lists_live_tunnels_over_the_tunnel_listener() -> None:
    async with running_tunnel_stack() as stack:
        laptop = await stack.laptop(grpc=True)
        tunnels = await list_tunnels(stack.tunnel_address, stack.token("bob"))
        assert len(tunnels) == 1
        (t,) = tunnels
        assert t["env"] == ENV and t["client"] == "test-laptop"
        assert t["session"] == laptop.info.session
        assert [s["protocol"] for s in t["services"]] == ["dubbo", "grpc"]
        with pytest.raises(TunnelRefused, match="signature"):
            await list_tunnels(stack.tunnel_address, "lw1.e30.AAAA")


async def test_the_client_reconnects_with_backoff_after_the_link_drops() -> None:
    async with running_tunnel_stack() as stack:
        laptop = await stack.laptop()
        first = laptop.info.session
        # The proxy side of the link breaks (as a NAT timeout or a proxy restart would).
        session = stack.tunnel._sessions[first]
        session.mux.close("link reset for the test")
        await until(lambda: laptop.client.sessions == 2 and ENV in stack.lanes())
        assert stack.tunnel.sessions()[0]["session"] != first
        assert any("reconnecting in" in line for line in laptop.lines)
        client = await stack.client()
        assert (await stack.call(client, tag=ENV)).value == "Hello, world! (served by laptop)"
        await client.aclose()
        await trio.lowlevel.checkpoint()
