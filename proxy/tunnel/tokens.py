"""Tunnel tokens: HMAC-SHA256 signed claims (env, expiry, optional service scope). Pure.

A token is ``lw1.<payload>.<signature>``: the payload is base64url JSON
``{"env", "iat", "exp", "jti", "svc"}``, the signature HMAC-SHA256 over ``lw1.<payload>``
with the server secret. Nothing here reads a clock or a file: callers pass ``now`` and the
revocation set, so expiry and revocation are testable with plain numbers.

Secrets and tokens are never put in an exception message or a log line; a token is named
by its *id* (``token_id``: the SHA-256 of the whole token, hex), which is also what the
revocation list stores, so the list holds no usable credential (TESTS.md T5: "stored
hashed").
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import hashlib
import hmac
import json
import secrets
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from proxy.registry.model import MAIN_ENV, InvalidRegistration, normalize_env

TOKEN_PREFIX = "lw1"
"""Format version: a future format gets a new prefix, old proxies refuse it cleanly."""
MAX_TTL_SECONDS = 24 * 3600
# why: TESTS.md §8: a tunnel token is a short-lived developer credential, never a standing one.
MIN_SECRET_BYTES = 32
# why: HMAC-SHA256 keys shorter than the hash output weaken the signature.
MAX_TOKEN_LENGTH = 4096
# why: a real token is ~200 bytes; refuse to base64-decode anything an attacker inflates.
TOKEN_ID_SHOWN = 12
# why: 48 bits name a token unambiguously in logs and listings without printing all 64 digits.
MAX_SCOPE_PATTERNS = 32
# why: a scope is a handful of interface globs; bounds the work of each check.


class TokenError(ValueError):
    """The token is unusable; the message says why, never what the token or secret is."""


@dataclass(frozen=True, slots=True)
class TokenClaims:
    env: str
    issued_at: int
    expires_at: int
    token_id: str
    """SHA-256 of the whole token (hex): how logs and the revocation list name it."""
    services: tuple[str, ...] = ()
    """Interface globs (``com.acme.*``) the token may announce; empty: any service."""

    def allows(self, interface: str) -> bool:
        return not self.services or any(fnmatch.fnmatchcase(interface, p) for p in self.services)


def token_id(token: str) -> str:
    """The token's public name (SHA-256 hex): safe to log, store and revoke by."""
    return hashlib.sha256(token.encode()).hexdigest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise TokenError("token is malformed (bad base64)") from exc


def _sign(secret: bytes, signed_part: str) -> bytes:
    return hmac.new(secret, signed_part.encode(), hashlib.sha256).digest()


def check_secret(secret: bytes) -> bytes:
    """``secret`` if it is long enough to sign with; raises TokenError otherwise."""
    if len(secret) < MIN_SECRET_BYTES:
        raise TokenError(f"the tunnel secret must be at least {MIN_SECRET_BYTES} bytes")
    return secret


def issue_token(
    secret: bytes,
    env: str,
    ttl_seconds: int,
    now: float,
    services: Sequence[str] = (),
    protected_envs: Collection[str] = (),
) -> str:
    """A signed token for ``env`` valid ``ttl_seconds`` from ``now``. Raises TokenError for
    a protected env, a bad env name, or a TTL outside 1 s..24 h."""
    check_secret(secret)
    _check_env(env, protected_envs)
    if not 0 < ttl_seconds <= MAX_TTL_SECONDS:
        raise TokenError(f"ttl must be between 1 s and {MAX_TTL_SECONDS} s, got {ttl_seconds}")
    if len(services) > MAX_SCOPE_PATTERNS:
        raise TokenError(f"at most {MAX_SCOPE_PATTERNS} service patterns")
    payload = {
        "env": env,
        "iat": int(now),
        "exp": int(now) + ttl_seconds,
        "jti": secrets.token_hex(8),
        "svc": list(services),
    }
    body = _b64(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode())
    signed = f"{TOKEN_PREFIX}.{body}"
    return f"{signed}.{_b64(_sign(secret, signed))}"


def verify_token(
    secret: bytes,
    token: str,
    now: float,
    *,
    revoked: Collection[str] = (),
    protected_envs: Collection[str] = (),
) -> TokenClaims:
    """The token's claims, or TokenError saying why it is refused (malformed, bad
    signature, expired, revoked, or naming a protected env). The signature is compared in
    constant time before any claim is trusted."""
    if len(token) > MAX_TOKEN_LENGTH:
        raise TokenError("token is malformed (too long)")
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != TOKEN_PREFIX:
        raise TokenError(f"token is malformed (want {TOKEN_PREFIX}.<payload>.<signature>)")
    signed = f"{parts[0]}.{parts[1]}"
    if not hmac.compare_digest(_sign(secret, signed), _unb64(parts[2])):
        raise TokenError("token signature is invalid (issued for another server or altered)")
    try:
        payload = json.loads(_unb64(parts[1]))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise TokenError("token is malformed (bad payload)") from exc
    claims = _claims(payload, token_id(token))
    if now >= claims.expires_at:
        raise TokenError(f"token expired {int(now - claims.expires_at)} s ago")
    if claims.token_id in revoked:
        raise TokenError(f"token {claims.token_id[:TOKEN_ID_SHOWN]} is revoked")
    _check_env(claims.env, protected_envs)
    return claims


def _claims(payload: object, tid: str) -> TokenClaims:
    if not isinstance(payload, dict):
        raise TokenError("token is malformed (payload is not an object)")
    env, iat, exp, svc = (payload.get(k) for k in ("env", "iat", "exp", "svc"))
    if not isinstance(env, str) or not isinstance(iat, int) or not isinstance(exp, int):
        raise TokenError("token is malformed (env/iat/exp)")
    if not isinstance(svc, list) or not all(isinstance(s, str) for s in svc):
        raise TokenError("token is malformed (svc)")
    if exp - iat > MAX_TTL_SECONDS:
        raise TokenError("token lives longer than the 24 h maximum")
    return TokenClaims(env, iat, exp, tid, tuple(svc))


def _check_env(env: str, protected_envs: Collection[str]) -> None:
    try:
        normal = normalize_env(env)
    except InvalidRegistration as exc:
        raise TokenError(str(exc)) from exc
    if normal != env or env == MAIN_ENV:
        raise TokenError(f"env {MAIN_ENV!r} is the baseline and can never be claimed by a tunnel")
    if env in protected_envs:
        raise TokenError(f"env {env!r} is protected and can never be claimed by a tunnel")


def load_revoked(text: str) -> frozenset[str]:
    """Parse a revocation list: one token id (SHA-256 hex) per line, ``#`` comments."""
    out: set[str] = set()
    for line in text.splitlines():
        item = line.split("#", 1)[0].strip().lower()
        if len(item) == 64 and all(c in "0123456789abcdef" for c in item):
            out.add(item)
    return frozenset(out)
