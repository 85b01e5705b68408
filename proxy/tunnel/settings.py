"""From laneway.yaml's `tunnel:` section to :class:`TunnelSettings` (secret, TLS context).

The secret comes from `tunnel.secret_file` (preferred: it keeps the key out of the config
file) or `tunnel.secret`; it is read once and never logged or echoed in an error.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from proxy.config import ConfigError, LanewayConfig
from proxy.tunnel.server import TunnelSettings
from proxy.tunnel.tokens import MIN_SECRET_BYTES


class TunnelConfigError(ConfigError):
    """The `tunnel:` section cannot be used (no secret, unreadable file, bad TLS files)."""


def read_secret(config: LanewayConfig) -> bytes:
    """The token-signing secret. Raises TunnelConfigError (the message never holds it)."""
    t = config.tunnel
    if t.secret_file is not None:
        path = t.path(config.base_dir, t.secret_file)
        try:
            secret = path.read_bytes().strip()
        except OSError as exc:
            raise TunnelConfigError(f"tunnel.secret_file {path}: {exc.strerror}") from exc
    elif t.secret is not None:
        secret = t.secret.get_secret_value().encode()
    else:
        raise TunnelConfigError(
            "tunnels need tunnel.secret_file (or tunnel.secret) in laneway.yaml"
        )
    if len(secret) < MIN_SECRET_BYTES:
        raise TunnelConfigError(f"the tunnel secret must be at least {MIN_SECRET_BYTES} bytes")
    return secret


def server_ssl_context(config: LanewayConfig) -> ssl.SSLContext | None:
    """TLS for the tunnel listener (mTLS when `client_ca` is set); None for plaintext."""
    t = config.tunnel
    if t.tls_cert is None or t.tls_key is None:
        return None
    base = config.base_dir
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(t.path(base, t.tls_cert), t.path(base, t.tls_key))
        if t.client_ca is not None:
            context.load_verify_locations(t.path(base, t.client_ca))
            context.verify_mode = ssl.CERT_REQUIRED
    except (OSError, ssl.SSLError) as exc:
        raise TunnelConfigError(f"tunnel TLS files: {exc}") from exc
    return context


def client_ssl_context(
    ca: Path | None, cert: Path | None = None, key: Path | None = None
) -> ssl.SSLContext:
    """The laptop's TLS: verify the proxy against ``ca`` (system CAs when None), present
    ``cert``/``key`` for mTLS."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert is not None:
        context.load_cert_chain(cert, key)
    return context


def settings_from_config(config: LanewayConfig) -> TunnelSettings:
    t = config.tunnel
    revoked = None if t.revoked_file is None else t.path(config.base_dir, t.revoked_file)
    return TunnelSettings(
        secret=read_secret(config),
        protected_envs=frozenset(t.protected_envs),
        on_conflict=t.on_conflict,
        revoked_file=revoked,
        heartbeat_interval=t.heartbeat_interval,
        max_streams=t.max_streams,
        max_buffered_bytes=t.max_buffered_bytes,
        auth_per_minute=t.auth_per_minute,
        auth_burst=t.auth_burst,
        handshake_timeout=t.handshake_timeout,
        ssl_context=server_ssl_context(config),
    )
