"""grpcio client of ``laneway.registry.v1.Registry``, for providers written in Python.

Plain threads, no trio: a provider process (any framework) calls ``RegistryPublisher``::

    with RegistryPublisher("127.0.0.1:7070") as pub:
        pub.register(ServiceKey.of("demo.Greeter", "1.0.0"), Provider("127.0.0.1:50051", "tri"))
        serve_forever()

A registration lives as long as the publisher's stream (the lease). The publisher sends
heartbeats at the interval the server's ``Welcome`` names, and if the stream breaks it
reconnects with backoff and registers everything again, so a restarted registry learns the
providers back. From trio code, call these blocking methods through ``trio.to_thread``.
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import grpc

from protos import registry_pb2 as pb
from proxy.registry.grpc_service import HEARTBEAT_INTERVAL, SERVICE_NAME
from proxy.registry.model import Lanes, Provider, ServiceKey, group_by_env
from proxy.registry.proto_convert import key_to_pb, provider_from_pb, registration_pb

RECONNECT_BACKOFF_MIN = 0.1
RECONNECT_BACKOFF_MAX = 5.0
# why: reconnect fast after a registry restart, but never hammer a registry that is down.

ACK_TIMEOUT = 10.0
"""Default seconds ``register`` waits for the server's acknowledgement."""

CLOSE_TIMEOUT = 5.0
# why: bounds close(): the worker thread ends when the stream does, or is abandoned.


class RegistryClientError(RuntimeError):
    """The registry refused a registration, or did not answer in time."""


@dataclass(frozen=True)
class ServiceListing:
    """One service as ``List`` / ``Subscribe`` report it."""

    key: ServiceKey
    lanes: Lanes
    stale: bool
    revision: int


def _listing(msg: pb.ProviderList) -> ServiceListing:
    key = ServiceKey.of(msg.service.interface, msg.service.version, msg.service.group)
    providers = [provider_from_pb(p) for p in msg.providers]
    return ServiceListing(key, group_by_env(providers), msg.stale, msg.revision)


class RegistryClient:
    """One channel to the registry for reads (``list_services``, ``subscribe``)."""

    def __init__(self, target: str) -> None:
        self.channel = grpc.insecure_channel(target)
        self._list = self.channel.unary_unary(
            f"/{SERVICE_NAME}/List",
            request_serializer=pb.ListRequest.SerializeToString,
            response_deserializer=pb.ListResponse.FromString,
        )
        self._subscribe = self.channel.unary_stream(
            f"/{SERVICE_NAME}/Subscribe",
            request_serializer=pb.SubscribeRequest.SerializeToString,
            response_deserializer=pb.ProviderList.FromString,
        )

    def list_services(
        self, interface: str = "", env: str = "", timeout: float = ACK_TIMEOUT
    ) -> list[ServiceListing]:
        """Every service (filtered by interface / env). Raises ``grpc.RpcError``."""
        reply = self._list(pb.ListRequest(interface=interface, env=env), timeout=timeout)
        return [_listing(m) for m in reply.services]

    def subscribe(self, key: ServiceKey) -> Iterator[ServiceListing]:
        """The service's full list now and after every change; cancel by closing the client."""
        for msg in self._subscribe(pb.SubscribeRequest(service=key_to_pb(key))):
            yield _listing(msg)

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# (request id, set when acknowledged, the items sent)
_Sent = tuple[int, threading.Event, list[tuple[ServiceKey, Provider]]]

MAX_BATCH = 1000
# why: ~150 bytes per registration keeps a batch far below gRPC's 4 MiB message limit.


def _chunks(
    items: list[tuple[ServiceKey, Provider]],
) -> Iterator[list[tuple[ServiceKey, Provider]]]:
    for start in range(0, len(items), MAX_BATCH):
        yield items[start : start + MAX_BATCH]


_CLOSE = object()  # sentinel ending one stream's request iterator
_WAKE = object()  # sentinel making the request iterator re-read the heartbeat interval


class RegistryPublisher:
    """Keeps one Publish stream open and the wanted registrations registered on it.

    ``register``/``unregister`` are thread-safe and block until the server acknowledges
    (or raise ``RegistryClientError``). ``connected`` is set while a stream is up. Each
    stream gets its own outbox, so a dying stream's request iterator can never swallow a
    request meant for its successor.
    """

    def __init__(self, target: str) -> None:
        self.target = target
        self.connected = threading.Event()
        self.heartbeat_interval = HEARTBEAT_INTERVAL
        self._wanted: dict[tuple[ServiceKey, tuple[str, str]], tuple[ServiceKey, Provider]] = {}
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._outbox: queue.Queue[object] | None = None
        self._ids = itertools.count(1)
        self._acks: dict[int, threading.Event] = {}
        self._errors: dict[int, list[tuple[int, str]]] = {}
        # Requests sent but not acknowledged: re-sent on the next stream if this one dies.
        self._unacked: dict[int, pb.PublishRequest] = {}
        self._call: grpc.Call | None = None
        self._thread = threading.Thread(target=self._run, name="laneway-publisher", daemon=True)

    def start(self) -> RegistryPublisher:
        self._thread.start()
        return self

    def __enter__(self) -> RegistryPublisher:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def register(self, key: ServiceKey, provider: Provider, timeout: float = ACK_TIMEOUT) -> None:
        """Register ``provider`` now and on every reconnect, until ``unregister``/``close``."""
        self.register_many([(key, provider)], timeout)

    def register_many(
        self, items: Iterable[tuple[ServiceKey, Provider]], timeout: float = ACK_TIMEOUT
    ) -> None:
        """Register many providers in batches of ``MAX_BATCH`` per message, then wait for
        every acknowledgement (a whole process's services cost a few round trips)."""
        items = list(items)
        with self._lock:
            for key, provider in items:
                self._wanted[(key, provider.identity)] = (key, provider)
        self._wait([self._send(chunk, True) for chunk in _chunks(items)], timeout)

    def unregister(self, key: ServiceKey, provider: Provider, timeout: float = ACK_TIMEOUT) -> None:
        """Stop publishing ``provider``; returns at once while disconnected (nothing to undo)."""
        with self._lock:
            self._wanted.pop((key, provider.identity), None)
        self._wait([self._send([(key, provider)], False)], timeout)

    def close(self) -> None:
        """End the stream (the registry drops our registrations) and join the thread."""
        self._closing.set()
        with self._lock:
            outbox, call = self._outbox, self._call
        if outbox is not None:
            outbox.put(_CLOSE)
        if call is not None:
            call.cancel()  # type: ignore[no-untyped-call]  # grpc-stubs leave it untyped
        if self._thread.is_alive():
            self._thread.join(CLOSE_TIMEOUT)

    # ---- internals ---------------------------------------------------------------------

    def _send(self, items: list[tuple[ServiceKey, Provider]], register: bool) -> _Sent | None:
        """Queue one (un)register request; None when there is nothing to wait for."""
        request_id = next(self._ids)
        done = threading.Event()
        batch = pb.Registrations(items=[registration_pb(k, p) for k, p in items])
        request = (
            pb.PublishRequest(register=batch, request_id=request_id)
            if register
            else pb.PublishRequest(unregister=batch, request_id=request_id)
        )
        with self._lock:
            outbox = self._outbox
            if outbox is None and not register:
                return None  # no stream, so nothing registered to remove
            self._acks[request_id] = done
            self._unacked[request_id] = request
            if outbox is not None:
                outbox.put(request)  # else: sent when the next stream opens
        return (request_id, done, items)

    def _wait(self, sent: list[_Sent | None], timeout: float) -> None:
        """Wait for every acknowledgement (``timeout`` in all); raise on refusal or timeout."""
        deadline = time.monotonic() + timeout
        errors = []
        for item in sent:
            if item is None:
                continue
            request_id, done, items = item
            if not done.wait(max(0.0, deadline - time.monotonic())):
                with self._lock:
                    self._acks.pop(request_id, None)
                    self._unacked.pop(request_id, None)
                key, provider = items[0]
                raise RegistryClientError(
                    f"registry {self.target} did not acknowledge {key} {provider.address}"
                    f" ({len(items)} item(s)) in {timeout}s"
                )
            with self._lock:
                refused = self._errors.pop(request_id, [])
            for index, error in refused:
                key, provider = items[index] if index < len(items) else items[0]
                errors.append(f"{key} {provider.address}: {error}")
        if errors:
            raise RegistryClientError(f"registry refused {'; '.join(errors)}")

    def _requests(self, outbox: queue.Queue[object]) -> Iterator[pb.PublishRequest]:
        with self._lock:
            wanted = list(self._wanted.values())
        for chunk in _chunks(wanted):
            batch = pb.Registrations(items=[registration_pb(k, p) for k, p in chunk])
            yield pb.PublishRequest(register=batch)
        seq = 0
        while True:
            try:
                item = outbox.get(timeout=self.heartbeat_interval)
            except queue.Empty:
                seq += 1
                yield pb.PublishRequest(heartbeat=pb.Heartbeat(seq=seq))
                continue
            if item is _CLOSE:
                return
            if isinstance(item, pb.PublishRequest):
                yield item

    def _run(self) -> None:
        backoff = RECONNECT_BACKOFF_MIN
        while not self._closing.is_set():
            outbox: queue.Queue[object] = queue.Queue()
            with self._lock:
                # Install the outbox before the stream starts, so no request can slip
                # between "the stream read the wanted set" and "requests go to the outbox".
                self._outbox = outbox
                for request in self._unacked.values():
                    outbox.put(request)
            with grpc.insecure_channel(self.target) as channel:
                publish = channel.stream_stream(
                    f"/{SERVICE_NAME}/Publish",
                    request_serializer=pb.PublishRequest.SerializeToString,
                    response_deserializer=pb.PublishResponse.FromString,
                )
                try:
                    call = publish(self._requests(outbox), wait_for_ready=True)
                    with self._lock:
                        self._call = call
                    if self._closing.is_set():
                        call.cancel()  # type: ignore[no-untyped-call]
                    for response in call:
                        self._on_response(response, outbox)
                        backoff = RECONNECT_BACKOFF_MIN
                except grpc.RpcError:
                    pass  # the stream broke: reconnect below, unless closing
                finally:
                    self.connected.clear()
                    with self._lock:
                        self._call = None
                        self._outbox = None
                    outbox.put(_CLOSE)
            if self._closing.wait(backoff):
                return
            backoff = min(backoff * 2, RECONNECT_BACKOFF_MAX)

    def _on_response(self, response: pb.PublishResponse, outbox: queue.Queue[object]) -> None:
        kind = response.WhichOneof("kind")
        if kind == "welcome":
            interval = response.welcome.heartbeat_interval_ms / 1000
            self.heartbeat_interval = interval if interval > 0 else HEARTBEAT_INTERVAL
            outbox.put(_WAKE)  # the iterator may be waiting with the old interval
            self.connected.set()
        elif kind == "ack":
            ack = response.ack
            with self._lock:
                if ack.errors:
                    self._errors[ack.request_id] = [(e.index, e.error) for e in ack.errors]
                self._unacked.pop(ack.request_id, None)
                done = self._acks.pop(ack.request_id, None)
            if done is not None:
                done.set()
