"""Tunnel tokens and the auth limiter, without sockets or clocks (T1, T5)."""

from __future__ import annotations

import pytest

from proxy.tunnel.limiter import AuthLimiter
from proxy.tunnel.tokens import (
    MAX_TTL_SECONDS,
    TokenError,
    issue_token,
    load_revoked,
    token_id,
    verify_token,
)

SECRET = b"unit-test-secret-0123456789abcdefgh"
NOW = 1_800_000_000.0


def test_a_token_round_trips_its_claims() -> None:
    token = issue_token(SECRET, "alice", 8 * 3600, NOW, ["com.acme.*"])
    claims = verify_token(SECRET, token, NOW + 10)
    assert claims.env == "alice"
    assert claims.expires_at == int(NOW) + 8 * 3600
    assert claims.token_id == token_id(token)
    assert claims.allows("com.acme.UserService")
    assert not claims.allows("com.other.UserService")
    assert verify_token(SECRET, issue_token(SECRET, "alice", 60, NOW), NOW).allows("any.Thing")


@pytest.mark.parametrize(
    ("mutate", "why"),
    [
        (lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"), "signature is invalid"),
        (lambda t: "lw2" + t[3:], "malformed"),
        (lambda t: t.split(".")[0] + "." + t.split(".")[2], "malformed"),
        (lambda t: t + "x" * 5000, "too long"),
        (lambda t: "lw1.!!!.AAAA", "signature is invalid"),
    ],
)
def test_altered_tokens_are_refused(mutate: object, why: str) -> None:
    token = issue_token(SECRET, "alice", 60, NOW)
    assert callable(mutate)
    with pytest.raises(TokenError, match=why):
        verify_token(SECRET, mutate(token), NOW)


def test_expiry_revocation_and_protected_envs() -> None:
    token = issue_token(SECRET, "alice", 60, NOW)
    with pytest.raises(TokenError, match="expired 0 s ago"):
        verify_token(SECRET, token, NOW + 60)
    with pytest.raises(TokenError, match="revoked"):
        verify_token(SECRET, token, NOW, revoked={token_id(token)})
    with pytest.raises(TokenError, match="protected"):
        verify_token(SECRET, token, NOW, protected_envs={"alice"})


def test_issue_refuses_main_protected_envs_long_ttls_and_short_secrets() -> None:
    """T1 tunnel-scope: main is never claimable; TTL <= 24 h (TESTS.md §8)."""
    for env in ("main", "", "Bad Env!"):
        with pytest.raises(TokenError):
            issue_token(SECRET, env, 60, NOW)
    with pytest.raises(TokenError, match="protected"):
        issue_token(SECRET, "staging", 60, NOW, protected_envs={"staging"})
    with pytest.raises(TokenError, match="ttl"):
        issue_token(SECRET, "alice", MAX_TTL_SECONDS + 1, NOW)
    with pytest.raises(TokenError, match="32 bytes"):
        issue_token(b"short", "alice", 60, NOW)


def test_errors_never_contain_the_token_or_the_secret() -> None:
    token = issue_token(SECRET, "alice", 60, NOW)
    for bad in (token + "x", token[:-1], token.replace("lw1", "lw0")):
        with pytest.raises(TokenError) as err:
            verify_token(SECRET, bad, NOW)
        assert token[:30] not in str(err.value) and SECRET.decode() not in str(err.value)


def test_the_revocation_list_reads_ids_and_ignores_the_rest() -> None:
    tid = token_id("lw1.x.y")
    text = f"# ops list\n{tid.upper()}  # alice's laptop\nnot-an-id\n\n"
    assert load_revoked(text) == frozenset({tid})


def test_the_limiter_allows_a_burst_then_the_rate_per_peer() -> None:
    """T5: 100 bad auths a minute are mostly refused; other peers are not affected."""
    limiter = AuthLimiter(rate_per_minute=30, burst=10)
    allowed = sum(limiter.allow("10.0.0.1", i * 0.6) for i in range(100))  # 100 in 60 s
    assert allowed == 10 + 29  # the burst, then one every 2 s
    assert limiter.allow("10.0.0.2", 60.0)
    assert not limiter.allow("10.0.0.1", 59.4)
    assert 0 < limiter.retry_after("10.0.0.1") <= 2.0
