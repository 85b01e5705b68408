"""`laneway.yaml`: what `laneway serve` listens on, where its registry is, where its routes are.

```yaml
listen: {dubbo: 127.0.0.1:20880, grpc: 127.0.0.1:50051, admin: 127.0.0.1:9901}
registry: {kind: embedded}        # or {kind: zookeeper, hosts: 127.0.0.1:2181, root: /dubbo}
routes: routes.yaml               # relative to this file; watched and hot-reloaded
limits: {drain_timeout: 30}       # every limit has a default (DESIGN.md §7)
```

Loaded with ruamel.yaml in safe mode; unknown keys are errors (a typo must not silently
fall back to a default on a proxy in front of production traffic).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

MAX_CONFIG_BYTES = 1 << 20
# why: a config file is a few hundred bytes; refusing more bounds what a bad path can cost.


class ConfigError(ValueError):
    """laneway.yaml is missing, unreadable or invalid; the message says where and why."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_address(value: str | None) -> str | None:
    """A listen address: ``host:port`` with port 0..65535 (0: pick a free port)."""
    if value is not None:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or int(port) > 65535:
            raise ValueError(f"listen address must be host:port, got {value!r}")
    return value


class TlsConfig(_Strict):
    """A server certificate chain and its key (PEM); relative to laneway.yaml."""

    cert: Path
    key: Path


class Listen(_Strict):
    """Addresses to bind (`host:port`, port 0 picks a free port); None leaves it off."""

    dubbo: str | None = "127.0.0.1:20880"
    grpc: str | None = None
    admin: str | None = None
    grpc_tls: TlsConfig | None = None
    """When set, the gRPC listener speaks TLS and requires ALPN ``h2``."""
    registry: str | None = "127.0.0.1:0"
    """The embedded registry's gRPC API (moves onto the gRPC listener with the gRPC path)."""
    tunnel: str | None = None
    """Where laptops dial in with `laneway tunnel` (docs/tunnel.md); needs `tunnel.secret`."""

    def model_post_init(self, _context: object) -> None:
        for value in (self.dubbo, self.grpc, self.admin, self.registry, self.tunnel):
            _check_address(value)


class EmbeddedRegistryConfig(_Strict):
    kind: Literal["embedded"] = "embedded"
    state_file: Path | None = None


class ZooKeeperRegistryConfig(_Strict):
    kind: Literal["zookeeper"]
    hosts: str
    root: str = "/dubbo"


RegistryConfig = Annotated[
    EmbeddedRegistryConfig | ZooKeeperRegistryConfig, Field(discriminator="kind")
]


class Limits(_Strict):
    """Every bound of the data path, with DESIGN.md §7 / TESTS.md §8 defaults."""

    upstream_connect_timeout: float = Field(default=5.0, gt=0)
    """Envoy's cluster default: a provider that does not accept in 5 s is not there."""
    route_timeout: float = Field(default=15.0, gt=0)
    """Used when the caller sets no timeout of its own (Envoy's route default)."""
    max_call_timeout: float = Field(default=300.0, gt=0)
    """A caller's `timeout` attachment is capped here: no call pins a slot for hours."""
    drain_timeout: float = Field(default=30.0, ge=0)
    """In-flight calls get this long to finish after SIGTERM before they are cancelled."""
    request_read_timeout: float = Field(default=10.0, gt=0)
    """Header to full body of one Dubbo frame (slowloris guard, TESTS.md D5)."""
    max_inflight_per_connection: int = Field(default=1024, gt=0)
    """One consumer connection cannot hold more than this many calls (Envoy 1024)."""
    max_inflight_total: int = Field(default=10000, gt=0)
    """Admission limit for the whole proxy: the excess is answered status 100 at once."""
    max_connections: int = Field(default=10000, gt=0)
    """Downstream connections per listener (Envoy edge); more are closed on accept."""
    consumer_idle_timeout: float = Field(default=180.0, gt=0)
    """A consumer connection silent this long is closed (Dubbo: 3 x heartbeat)."""
    grpc_idle_timeout: float = Field(default=3600.0, gt=0)
    """A gRPC connection with no stream this long is closed (Envoy's idle default)."""
    max_grpc_message: int = Field(default=4 * 1024 * 1024, gt=0)
    """gRPC's default max message, either direction (G5)."""
    heartbeat_interval: float = Field(default=60.0, gt=0)
    """Dubbo's heartbeat period on idle upstream connections."""
    upstream_idle_timeout: float = Field(default=180.0, gt=0)
    """An upstream connection unused this long is closed (Dubbo: 3 x heartbeat)."""


class TelemetryConfig(_Strict):
    """`telemetry:` OpenTelemetry traces and metrics, and the call logs (docs/observability.md).

    With metrics, tracing and the access log all off the proxy uses no observer at all."""

    metrics: bool = True
    """Call metrics (duration histogram, decisions, in-flight) for Prometheus at /metrics."""
    tracing: bool = False
    """A server span per call and a client span per upstream attempt; W3C trace context."""
    sampling: float = Field(default=1.0, ge=0.0, le=1.0)
    """Fraction of new traces recorded; a caller's sampled flag is respected (parent-based)."""
    exporter: Literal["none", "console", "otlp"] = "none"
    """Where spans go: nowhere (context still propagates), stdout, or OTLP over HTTP."""
    otlp_endpoint: str = "http://127.0.0.1:4318/v1/traces"
    """OTLP/HTTP traces endpoint (needs the `laneway[otlp]` extra)."""
    service_name: str = "laneway"
    access_log: bool = False
    """One log line per call (logger `laneway.access`); errors are always logged."""


class TunnelConfig(_Strict):
    """The `tunnel:` section: who may join a project env from a laptop (docs/tunnel.md)."""

    secret: SecretStr | None = None
    """HMAC key tokens are signed with (>= 32 bytes); prefer `secret_file` (never logged)."""
    secret_file: Path | None = None
    protected_envs: tuple[str, ...] = ()
    """Envs no token may ever claim, besides `main` (shared staging, pre-production...)."""
    on_conflict: Literal["refuse", "replace"] = "refuse"
    """A second tunnel for a service already tunnelled in its env: refused, or replaces it."""
    revoked_file: Path | None = None
    """Token ids (`laneway token issue` prints them), one a line; re-read every second."""
    heartbeat_interval: float = Field(default=10.0, gt=0)
    """PING period; a tunnel silent for 3 of them is evicted (TESTS.md T8)."""
    max_streams: int = Field(default=100, gt=0)
    """Virtual upstream connections one tunnel may hold open (TESTS.md §8: 100)."""
    max_calls: int = Field(default=100, gt=0)
    """Calls in flight to one tunnelled provider; more get status 100 / RESOURCE_EXHAUSTED
    at once, so a slow laptop cannot hold the proxy's admission budget (TESTS.md T7)."""
    max_buffered_bytes: int = Field(default=1 << 20, ge=65_535)
    """Unread bytes one laptop can make the proxy hold: its HTTP/2 window (TESTS.md §8: 1 MiB)."""
    auth_per_minute: float = Field(default=30.0, gt=0)
    """Authentication attempts per peer host and minute once the burst is spent (T5)."""
    auth_burst: int = Field(default=10, gt=0)
    """Attempts a peer may make at once: a reconnecting laptop never waits, a guesser soon does."""
    handshake_timeout: float = Field(default=5.0, gt=0)
    """A dialer that has not said hello within this is dropped (slowloris guard)."""
    tls_cert: Path | None = None
    """PEM certificate chain: when set (with `tls_key`) the tunnel listener speaks TLS only."""
    tls_key: Path | None = None
    client_ca: Path | None = None
    """PEM CA bundle: when set, laptops must present a client certificate it signed (mTLS)."""

    def model_post_init(self, _context: object) -> None:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tunnel.tls_cert and tunnel.tls_key go together")
        if self.client_ca is not None and self.tls_cert is None:
            raise ValueError("tunnel.client_ca needs tunnel.tls_cert / tls_key")

    def path(self, base_dir: Path, value: Path) -> Path:
        return value if value.is_absolute() else base_dir / value


class LanewayConfig(_Strict):
    listen: Listen = Listen()
    registry: RegistryConfig = EmbeddedRegistryConfig()
    routes: Path | None = None
    watch_routes: bool = True
    """Reload the routes file when it changes (SIGHUP and POST /reload always work)."""
    limits: Limits = Limits()
    tunnel: TunnelConfig = TunnelConfig()
    telemetry: TelemetryConfig = TelemetryConfig()
    base_dir: Path = Path(".")
    """Directory relative paths are resolved against (the config file's)."""

    def resolve(self, path: Path) -> Path:
        """``path`` relative to the config file's directory."""
        return path if path.is_absolute() else self.base_dir / path

    @property
    def routes_path(self) -> Path | None:
        if self.routes is None:
            return None
        return self.routes if self.routes.is_absolute() else self.base_dir / self.routes


def load_config(path: Path) -> LanewayConfig:
    """Read and validate `path`. Raises ConfigError with file:line:col where known."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_CONFIG_BYTES} bytes")
    yaml = YAML(typ="safe", pure=True)
    try:
        data = yaml.load(raw) or {}
    except YAMLError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}:1:1: error: expected a mapping at the top level")
    try:
        return LanewayConfig.model_validate({**data, "base_dir": path.parent})
    except ValidationError as exc:
        lines = [
            f"{path}: error: {'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
            for err in exc.errors()
        ]
        raise ConfigError("\n".join(lines)) from exc
