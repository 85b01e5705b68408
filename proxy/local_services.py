"""gRPC services laneway answers itself on its gRPC listener.

- ``grpc.health.v1.Health/Check``: ``""`` is the proxy itself (SERVING, NOT_SERVING while
  draining); a service name is SERVING when some lane has a usable provider of it,
  NOT_SERVING when it has providers but none usable, and NOT_FOUND when nobody provides it.
- Services relayed to an in-process listener (the embedded registry's gRPC API) are named
  in ``relayed``: their calls skip routing and go straight to that address.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from grpc_health.v1 import health_pb2

from proxy.errors import GrpcStatus
from proxy.registry.model import ServiceKey
from proxy.router import Router

HEALTH_SERVICE = "grpc.health.v1.Health"


@dataclass(frozen=True)
class LocalReply:
    status: int
    message: str = ""
    payload: bytes | None = None


@dataclass
class LocalServices:
    router: Router
    draining: Callable[[], bool]
    relayed: dict[str, str] = field(default_factory=dict)
    """gRPC service name -> in-process listener address (``host:port``)."""

    def handles(self, service: str) -> bool:
        return service == HEALTH_SERVICE

    def call(self, service: str, method: str, request: bytes) -> LocalReply:
        """Answer one unary call to a local service."""
        if method != "Check":
            return LocalReply(
                GrpcStatus.UNIMPLEMENTED, f"laneway serves {HEALTH_SERVICE}/Check only"
            )
        try:
            asked = health_pb2.HealthCheckRequest.FromString(request).service
        except ValueError as exc:  # protobuf's DecodeError is a ValueError
            return LocalReply(GrpcStatus.INVALID_ARGUMENT, f"bad HealthCheckRequest: {exc}")
        serving = health_pb2.HealthCheckResponse.SERVING
        not_serving = health_pb2.HealthCheckResponse.NOT_SERVING
        if not asked:
            status = not_serving if self.draining() else serving
        else:
            lanes = self.router.lanes_of(ServiceKey.of(asked))
            if not lanes:
                return LocalReply(GrpcStatus.NOT_FOUND, f"no provider of {asked} is known")
            usable = any(
                c.healthy
                for lane in self.router.candidates(ServiceKey.of(asked), ("grpc", "tri")).values()
                for c in lane
            )
            status = serving if usable else not_serving
        reply = health_pb2.HealthCheckResponse(status=status)
        return LocalReply(GrpcStatus.OK, payload=reply.SerializeToString())
