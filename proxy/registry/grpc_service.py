"""``laneway.registry.v1.Registry`` served by grpcio's thread-based server over a store.

Threading: grpcio runs each RPC handler on a worker thread of the server's pool; a
Publish or Subscribe stream holds its worker for as long as it lives. The handlers only
touch the thread-safe ``ProviderStore`` and never reach into trio; the embedded backend
hears about changes through the store's listener (see ``proxy.registry.embedded``).

Leases: a Publish stream opens with a ``Welcome`` (heartbeat interval, lease). Every
message from the publisher renews the lease; the owner of the store calls
``evict_expired()`` periodically, which removes a silent stream's registrations and
cancels the stream. The stream ending for any reason (client closed, connection lost,
cancelled) ends its registrations.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc

from protos import registry_pb2 as pb
from proxy.registry.model import InvalidRegistration
from proxy.registry.proto_convert import (
    key_from_pb,
    provider_from_pb,
    provider_list_pb,
)
from proxy.registry.store import ProviderStore, PublisherSession, RegistrationRefused

SERVICE_NAME = "laneway.registry.v1.Registry"

MAX_STREAMS = 256
# why: each live Publish/Subscribe stream holds one server thread; beyond this, new streams
# get RESOURCE_EXHAUSTED instead of queueing forever behind streams that never end.

SUBSCRIBE_RECHECK = 1.0
# why: a Subscribe handler wakes at least this often to notice a cancelled stream whose
# cancellation callback it may have missed.

HEARTBEAT_INTERVAL = 5.0
"""Default seconds between publisher heartbeats."""

LEASE_HEARTBEATS = 3
# why: a lease of 3 heartbeats tolerates two lost ones (Dubbo idle = 3x heartbeat, T8).

REGISTRY_SOURCE = "registry"


class RegistryServicer:
    """Handlers for the three RPCs; construct once per store."""

    def __init__(self, store: ProviderStore, *, heartbeat_interval: float = HEARTBEAT_INTERVAL):
        self.store = store
        self.heartbeat_interval = heartbeat_interval
        self.lease = heartbeat_interval * LEASE_HEARTBEATS

    def publish(
        self, requests: Iterator[pb.PublishRequest], context: grpc.ServicerContext
    ) -> Iterator[pb.PublishResponse]:
        session = self.store.open_session(context.peer(), self.lease, on_evict=context.cancel)
        context.add_callback(lambda: self.store.close_session(session))
        try:
            yield pb.PublishResponse(
                welcome=pb.Welcome(
                    heartbeat_interval_ms=int(self.heartbeat_interval * 1000),
                    lease_ms=int(self.lease * 1000),
                )
            )
            for request in requests:
                self.store.touch(session)
                kind = request.WhichOneof("kind")
                if kind == "heartbeat":
                    yield pb.PublishResponse(heartbeat=request.heartbeat)
                elif kind == "register":
                    ack = self._apply(session, request.register, True)
                    ack.request_id = request.request_id
                    yield pb.PublishResponse(ack=ack)
                elif kind == "unregister":
                    ack = self._apply(session, request.unregister, False)
                    ack.request_id = request.request_id
                    yield pb.PublishResponse(ack=ack)
                # an unknown kind (a newer publisher) only renews the lease
        except grpc.RpcError:
            # The stream was cancelled (publisher gone or evicted): that ends the lease.
            return
        finally:
            self.store.close_session(session)

    def _apply(self, session: PublisherSession, batch: pb.Registrations, register: bool) -> pb.Ack:
        """Validate every item; apply the valid ones in one store write; report the rest."""
        errors = []
        valid = []
        for index, reg in enumerate(batch.items):
            try:
                key = key_from_pb(reg.service)
                provider = provider_from_pb(reg.provider, source=REGISTRY_SOURCE)
            except InvalidRegistration as e:
                errors.append(pb.ItemError(index=index, error=str(e)))
                continue
            valid.append((key, provider))
        try:
            if register:
                self.store.register_many(session, valid)
            else:
                self.store.unregister_many(session, valid)
        except RegistrationRefused as e:
            return pb.Ack(applied=0, errors=[pb.ItemError(index=0, error=str(e))])
        return pb.Ack(applied=len(valid), errors=errors)

    def subscribe(
        self, request: pb.SubscribeRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.ProviderList]:
        try:
            key = key_from_pb(request.service)
        except InvalidRegistration as e:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
        changed = threading.Event()
        context.add_callback(changed.set)
        self.store.watch(key, changed)
        try:
            last = -1
            while context.is_active():
                changed.clear()
                revision = self.store.revision(key)
                if revision != last:
                    last = revision
                    yield provider_list_pb(
                        key,
                        self.store.snapshot(key),
                        stale=self.store.is_stale(key),
                        revision=revision,
                    )
                changed.wait(SUBSCRIBE_RECHECK)
        finally:
            self.store.unwatch(key, changed)

    def list(self, request: pb.ListRequest, context: grpc.ServicerContext) -> pb.ListResponse:
        out = []
        for key in self.store.services():
            if request.interface and key.interface != request.interface:
                continue
            lanes = self.store.snapshot(key)
            if request.env:
                lanes = {request.env: lanes[request.env]} if request.env in lanes else {}
                if not lanes:
                    continue
            out.append(
                provider_list_pb(
                    key, lanes, stale=self.store.is_stale(key), revision=self.store.revision(key)
                )
            )
        return pb.ListResponse(services=out)

    def handler(self) -> grpc.GenericRpcHandler[Any, Any]:
        """The generic handler to add to any grpcio server."""
        return grpc.method_handlers_generic_handler(
            SERVICE_NAME,
            {
                "Publish": grpc.stream_stream_rpc_method_handler(
                    self.publish,
                    request_deserializer=pb.PublishRequest.FromString,
                    response_serializer=pb.PublishResponse.SerializeToString,
                ),
                "Subscribe": grpc.unary_stream_rpc_method_handler(
                    self.subscribe,
                    request_deserializer=pb.SubscribeRequest.FromString,
                    response_serializer=pb.ProviderList.SerializeToString,
                ),
                "List": grpc.unary_unary_rpc_method_handler(
                    self.list,
                    request_deserializer=pb.ListRequest.FromString,
                    response_serializer=pb.ListResponse.SerializeToString,
                ),
            },
        )


def start_server(servicer: RegistryServicer, listen: str) -> tuple[grpc.Server, str]:
    """Start a grpcio server for ``servicer`` on ``listen`` (``host:port``, port 0 allowed).

    Returns the running server and the bound ``host:port``. Blocks briefly (thread-safe to
    call from ``trio.to_thread``). Raises ``OSError`` if the address cannot be bound.
    """
    server = grpc.server(
        ThreadPoolExecutor(max_workers=MAX_STREAMS, thread_name_prefix="laneway-registry"),
        handlers=[servicer.handler()],
        maximum_concurrent_rpcs=MAX_STREAMS,
        # grpcio sets SO_REUSEPORT by default: a second registry on a busy port would bind
        # silently and split the publishers between two stores. Fail loudly instead.
        options=[("grpc.so_reuseport", 0)],
    )
    host = listen.rpartition(":")[0]
    try:
        port = server.add_insecure_port(listen)
    except RuntimeError as e:  # grpcio reports bind failures as RuntimeError
        raise OSError(f"cannot listen on {listen}: {e}") from e
    if port == 0:
        raise OSError(f"cannot listen on {listen}")
    server.start()
    return server, f"{host}:{port}"
