"""The seam between the data path and telemetry: one observer, one scope per call.

The forwarders call these hooks; ``proxy.telemetry`` implements them with OpenTelemetry
(spans, metrics). The default ``NO_OBSERVER`` does nothing and allocates nothing, so a
proxy without telemetry pays one attribute lookup and one call per hook.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from proxy.call import Call
from proxy.router import Candidate
from routing import Decision


class CallScope(Protocol):
    """One inbound call's telemetry, from admission to its final status."""

    def routed(self, decision: Decision[Candidate]) -> None:
        """The routing decision (also for calls without a route)."""

    def propagation(self) -> Mapping[str, str]:
        """Trace-context carriers to write on the outbound call (``traceparent``...)."""

    def finished(self, status: int, message: str | None = None) -> None:
        """The call ended with this Dubbo status (``dubbo``) or gRPC status (``grpc``)."""


class CallObserver(Protocol):
    def call_started(self, call: Call, system: str) -> CallScope:
        """A call was admitted; ``system`` is ``dubbo`` or ``grpc``."""


class _NoScope:
    __slots__ = ()

    def routed(self, decision: Decision[Candidate]) -> None:
        return None

    def propagation(self) -> Mapping[str, str]:
        return _EMPTY

    def finished(self, status: int, message: str | None = None) -> None:
        return None


class _NoObserver:
    __slots__ = ()

    def call_started(self, call: Call, system: str) -> CallScope:
        return _NO_SCOPE


_EMPTY: Mapping[str, str] = {}
_NO_SCOPE = _NoScope()
NO_OBSERVER: CallObserver = _NoObserver()
