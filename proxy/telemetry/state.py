"""Small mutable facts telemetry and the admin API share, owned by one ``Telemetry``."""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ReloadResult:
    """The outcome of one routes reload (SIGHUP, file watch or ``POST /reload``)."""

    ok: bool
    at: float
    """Unix time of the reload."""
    version: str
    """The table live after it (the old one when the reload failed)."""
    error: str | None = None


@dataclass
class TelemetryState:
    """Counters kept by telemetry itself (the data path keeps its own ``stats``)."""

    in_flight: dict[str, int] = field(default_factory=lambda: {"dubbo": 0, "grpc": 0})
    """Inbound calls admitted and not yet finished, by ``rpc.system.name``."""
    registry_updated_at: float | None = None
    """Unix time of the registry's last change batch (its first snapshot counts)."""
    registry_changes: int = 0
    last_reload: ReloadResult | None = None
    started_at: float = field(default_factory=time.time)

    def note_reload(self, *, ok: bool, version: str, error: str | None = None) -> None:
        self.last_reload = ReloadResult(ok, time.time(), version, error)
