"""A small Dubbo 2 consumer on trio: `laneway call`, the demo and the tests use it.

Not on the proxy's data path (that is ``proxy.net.dubbo_upstream``); this one opens a
connection, sends requests encoded from Python values, and decodes the answers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import trio

from proxy.codecs.dubbo import (
    DEFAULT_DUBBO_VERSION,
    ClientConnection,
    ConnectionClosed,
    ReadOnlyReceived,
    ResponseReceived,
    encode_request,
)
from proxy.codecs.hessian2 import HessianList, HessianLong, HessianMap, HessianObject
from proxy.errors import DubboStatus
from proxy.registry.model import split_address

RECEIVE_SIZE = 64 * 1024
# why: a response is usually small; big ones arrive over several reads anyway.


@dataclass(frozen=True)
class CallResult:
    """What the provider (or laneway, on its behalf) answered."""

    status: int
    value: object = None
    exception: object = None
    attachments: Mapping[str, object] = field(default_factory=dict)
    error_message: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == DubboStatus.OK and self.exception is None


def java_type_of(value: object) -> str:
    """The JVM descriptor Dubbo consumers send for a Python argument."""
    if isinstance(value, bool):
        return "Z"
    if isinstance(value, HessianLong):
        return "J"
    if isinstance(value, int):
        return "I" if -(2**31) <= value < 2**31 else "J"
    if isinstance(value, float):
        return "D"
    if isinstance(value, str):
        return "Ljava/lang/String;"
    if isinstance(value, bytes):
        return "[B"
    if isinstance(value, HessianObject):
        return "L" + value.type_name.replace(".", "/") + ";"
    if isinstance(value, list | HessianList):
        return "Ljava/util/List;"
    if isinstance(value, dict | HessianMap):
        return "Ljava/util/Map;"
    return "Ljava/lang/Object;"


def descriptor_of(types: Sequence[str]) -> str:
    """JVM descriptor from Java type names (``java.lang.String``, ``int``, ``long[]``...)."""
    primitives = {
        "boolean": "Z",
        "byte": "B",
        "char": "C",
        "short": "S",
        "int": "I",
        "long": "J",
        "float": "F",
        "double": "D",
    }
    parts = []
    for name in types:
        dims = 0
        while name.endswith("[]"):
            dims += 1
            name = name[:-2]
        base = primitives.get(name) or "L" + name.replace(".", "/") + ";"
        parts.append("[" * dims + base)
    return "".join(parts)


class DubboClient:
    """One connection to a Dubbo endpoint; ``call`` may be used concurrently."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self._stream = stream
        self._codec = ClientConnection()
        self._waiters: dict[int, trio.MemorySendChannel[CallResult]] = {}
        self._send_lock = trio.Lock()
        self.readonly_seen = 0

    @classmethod
    async def connect(cls, address: str) -> DubboClient:
        host, port = split_address(address)
        return cls(await trio.open_tcp_stream(host, port))

    async def aclose(self) -> None:
        await self._stream.aclose()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Read responses until the connection closes; run it in a nursery."""
        task_status.started()
        try:
            while True:
                data = bytes(await self._stream.receive_some(RECEIVE_SIZE))
                for event in self._codec.receive_data(data):
                    if isinstance(event, ResponseReceived):
                        self._deliver(event.response.request_id, _result(event))
                    elif isinstance(event, ConnectionClosed):
                        self._fail_all("connection closed")
                        return
                    elif isinstance(event, ReadOnlyReceived):
                        self.readonly_seen += 1
                await self._flush()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self._fail_all("connection broken")

    async def call(
        self,
        path: str,
        method: str,
        args: Sequence[object] = (),
        *,
        parameter_types: str | None = None,
        version: str = "0.0.0",
        attachments: Mapping[str, object] | None = None,
    ) -> CallResult:
        types = parameter_types
        if types is None:
            types = "".join(java_type_of(a) for a in args)
        frame = encode_request(
            request_id=0,
            path=path,
            method=method,
            parameter_types=types,
            arguments=args,
            attachments={"path": path, **(attachments or {})},
            version=version,
        )
        send, receive = trio.open_memory_channel[CallResult](1)
        request_id = self._codec.send_request(frame, DEFAULT_DUBBO_VERSION)
        self._waiters[request_id] = send
        await self._flush()
        return await receive.receive()

    async def send_raw(self, data: bytes) -> None:
        await self._stream.send_all(data)

    async def _flush(self) -> None:
        async with self._send_lock:
            data = self._codec.data_to_send()
            if data:
                await self._stream.send_all(data)

    def _deliver(self, request_id: int, result: CallResult) -> None:
        send = self._waiters.pop(request_id, None)
        if send is not None:
            send.send_nowait(result)

    def _fail_all(self, why: str) -> None:
        for request_id in list(self._waiters):
            self._deliver(
                request_id, CallResult(status=DubboStatus.SERVER_ERROR, error_message=why)
            )


def _result(event: ResponseReceived) -> CallResult:
    response = event.response
    body = response.body()
    return CallResult(
        status=response.status,
        value=body.value,
        exception=body.exception,
        attachments=body.attachments,
        error_message=body.error_message,
    )


async def call_once(
    address: str,
    path: str,
    method: str,
    args: Sequence[object] = (),
    *,
    parameter_types: str | None = None,
    version: str = "0.0.0",
    attachments: Mapping[str, object] | None = None,
) -> CallResult:
    """Connect, make one call, close. Bound it with ``trio.fail_after``."""
    client = await DubboClient.connect(address)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(client.run)
            result = await client.call(
                path,
                method,
                args,
                parameter_types=parameter_types,
                version=version,
                attachments=attachments,
            )
            nursery.cancel_scope.cancel()
    finally:
        await trio.aclose_forcefully(client._stream)
    return result
