"""Dubbo 2 codec against real third-party peers (run by ``make test``).

- Provider side: npm ``sofa-rpc-node`` serving npm ``dubbo-remoting``'s Dubbo protocol
  (``tests/interop/dubbo/provider.js``, one process for the session) accepts request frames
  our :class:`ClientConnection` sends, and we decode its responses.
- Consumer side: npm ``dubbo2.js`` in direct mode (``tests/interop/dubbo/consumer.js``) calls
  a small trio server built on our :class:`ServerConnection`; we decode its request frames
  and it accepts our responses.

No peer may be missing: a missing node or package fails these tests, it never skips them.
"""

from __future__ import annotations

import json
import select
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from proxy.codecs.dubbo import (
    ClientConnection,
    Request,
    RequestReceived,
    ResponseFlag,
    ResponseReceived,
    ServerConnection,
    count_parameters,
    encode_request,
)
from proxy.codecs.hessian2 import Decoder, HessianObject
from proxy.errors import DubboStatus

pytestmark = pytest.mark.interop

HERE = Path(__file__).resolve().parent
SCRIPTS = HERE / "dubbo"
NODE_MODULES = HERE / "node" / "node_modules"
PEERS = ("sofa-rpc-node", "dubbo-remoting", "dubbo2.js")

#: How long a peer may take to start or to answer before the test fails (node starts in ~0.3 s).
PEER_TIMEOUT_S = 20.0

SERVICE = "com.laneway.interop.EchoService"
STRING = "Ljava/lang/String;"


def _node() -> str:
    node = shutil.which("node")
    assert node, "node is required for the Dubbo interop tests (tests/setup_deps.sh installs peers)"
    for package in PEERS:
        assert (NODE_MODULES / package / "package.json").is_file(), (
            f"npm package {package} missing: run `make test` (tests/setup_deps.sh) to install it"
        )
    return node


@pytest.fixture(scope="session")
def provider_port() -> Iterator[int]:
    """One sofa-rpc-node Dubbo provider for the whole session; yields its port."""
    process = subprocess.Popen(
        [_node(), str(SCRIPTS / "provider.js")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], PEER_TIMEOUT_S)
        line = process.stdout.readline() if ready else ""
        if not line:
            process.kill()
            _, err = process.communicate(timeout=PEER_TIMEOUT_S)
            pytest.fail(f"sofa-rpc-node provider did not start: {err}")
        yield int(json.loads(line)["port"])
    finally:
        process.kill()
        process.wait(timeout=PEER_TIMEOUT_S)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def _exchange(port: int, conn: ClientConnection, expected: int) -> list[ResponseReceived]:
    """Send what ``conn`` queued, read until ``expected`` responses arrived."""
    responses: list[ResponseReceived] = []
    with socket.create_connection(("127.0.0.1", port), timeout=PEER_TIMEOUT_S) as sock:
        sock.sendall(conn.data_to_send())
        while len(responses) < expected or conn.unanswered_heartbeats:
            data = sock.recv(65536)
            assert data, "the provider closed the connection"
            for event in conn.receive_data(data):
                assert isinstance(event, ResponseReceived), event
                responses.append(event)
    return responses


def _call(port: int, frame: bytes) -> ResponseReceived:
    conn = ClientConnection()
    request_id = conn.send_request(frame)
    (response,) = _exchange(port, conn, 1)
    assert response.response.request_id == request_id
    return response


def _request(method: str, types: str, args: list[object], **attachments: object) -> bytes:
    return encode_request(
        request_id=99,
        path=SERVICE,
        version="1.0.0",
        method=method,
        parameter_types=types,
        arguments=args,
        attachments={"interface": SERVICE, "version": "1.0.0", **attachments},
    )


def test_provider_accepts_our_request_and_we_decode_its_value(provider_port: int) -> None:
    """A string argument and a tagged attachments map; the value comes back."""
    frame = _request("echo", STRING, ["laneway"], **{"dubbo.tag": "feature-x"})
    body = _call(provider_port, frame).response.body()
    assert body.flag is ResponseFlag.VALUE
    assert body.value == "hello laneway"


def test_provider_reads_int_arguments(provider_port: int) -> None:
    body = _call(provider_port, _request("add", "II", [2, 40])).response.body()
    assert body.value == 42


def test_provider_sees_attachments_we_rewrote(provider_port: int) -> None:
    """Our attachments rewrite (the env tag the proxy injects) is read by a real provider."""
    original = _request("attachment", STRING, ["dubbo.tag"], group="blue")
    (event,) = ServerConnection().receive_data(original)
    assert isinstance(event, RequestReceived)
    rewritten = event.request.with_attachments({"dubbo.tag": "feature-login"})
    assert _call(provider_port, rewritten).response.body().value == "feature-login"
    (event,) = ServerConnection().receive_data(_request("attachment", STRING, ["group"], group="x"))
    assert isinstance(event, RequestReceived)
    removed = event.request.with_attachments({"dubbo.tag": "feature-login"}, remove=["group"])
    assert _call(provider_port, removed).response.body().value == "<absent>"


def test_provider_error_status_decodes_to_message(provider_port: int) -> None:
    response = _call(provider_port, _request("fail", STRING, ["boom"])).response
    assert response.status == DubboStatus.SERVER_ERROR
    assert response.body().error_message == "boom"


def test_pipelined_requests_and_heartbeat_on_one_connection(provider_port: int) -> None:
    """Several frames in one write, answered by id; the heartbeat answer is consumed."""
    conn = ClientConnection()
    conn.send_heartbeat()
    sent = {conn.send_request(_request("echo", STRING, [f"n{i}"])): f"hello n{i}" for i in range(5)}
    responses = _exchange(provider_port, conn, len(sent))
    got = {r.response.request_id: r.response.body().value for r in responses}
    assert got == sent
    assert conn.unanswered_heartbeats == 0
    assert conn.in_flight == frozenset()


# -- consumer side ---------------------------------------------------------------------


def _arguments(request: Request) -> list[object]:
    """Decode the arguments (the codec only skips them) for the test's own checks."""
    decoder = Decoder(request.frame, 16)
    for _ in range(5):
        decoder.read()
    return [decoder.read() for _ in range(count_parameters(request.parameter_types))]


def _answer(conn: ServerConnection, request: Request) -> None:
    rid = request.request_id
    if request.method == "greet":
        conn.send_value(rid, f"hello {_arguments(request)[0]}")
    elif request.method == "add":
        conn.send_value(rid, 42)
    elif request.method == "withAttachments":
        conn.send_value(rid, "with attachments", attachments={"server": "laneway"})
    elif request.method == "nothing":
        conn.send_value(rid, None)
    elif request.method == "fails":
        exception = HessianObject(
            "java.lang.RuntimeException",
            {"detailMessage": "boom", "suppressedExceptions": [], "stackTrace": []},
        )
        conn.send_exception(rid, exception)
    else:
        conn.send_error(rid, DubboStatus.SERVICE_NOT_FOUND, f"no provider of {request.path}")


async def _serve(listener: trio.SocketListener, seen: list[Request]) -> None:
    async with trio.open_nursery() as nursery:
        while True:
            stream = await listener.accept()
            nursery.start_soon(_serve_connection, stream, seen)


async def _serve_connection(stream: trio.SocketStream, seen: list[Request]) -> None:
    conn = ServerConnection()
    async with stream:
        while True:
            data = await stream.receive_some(65536)
            for event in conn.receive_data(data):
                if isinstance(event, RequestReceived):
                    seen.append(event.request)
                    _answer(conn, event.request)
            if not data:
                return
            out = conn.data_to_send()
            if out:
                await stream.send_all(out)


async def test_dubbo2js_consumer_calls_our_server() -> None:
    """dubbo2.js's request and heartbeat frames decode; our value, null, attachments,
    exception, error-status and heartbeat responses are accepted by it."""
    node = _node()
    (listener,) = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listener.socket.getsockname()[1]
    seen: list[Request] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_serve, listener, seen)
        with trio.fail_after(PEER_TIMEOUT_S):
            result = await trio.run_process(
                [node, str(SCRIPTS / "consumer.js"), str(port)],
                capture_stdout=True,
                capture_stderr=True,
                check=False,
            )
        nursery.cancel_scope.cancel()
    await listener.aclose()
    assert result.returncode == 0, result.stderr.decode()
    lines = {line["call"]: line for line in map(json.loads, result.stdout.decode().splitlines())}
    # dubbo2.js's heartbeat (id 0, body N) was answered inside our codec.
    assert lines["heartbeat"] == {
        "call": "heartbeat",
        "ok": True,
        "value": "dabb2214" + "00" * 8 + "00000001" + "4e",
    }
    assert lines["greet"] == {"call": "greet", "ok": True, "value": "hello laneway"}
    assert lines["add"]["value"] == 42
    assert lines["withAttachments"]["value"] == "with attachments"
    assert lines["nothing"] == {"call": "nothing", "ok": True, "value": None}
    assert not lines["fails"]["ok"] and "boom" in lines["fails"]["error"]
    assert not lines["missing"]["ok"]
    assert "no provider of com.laneway.interop.GreetingService" in lines["missing"]["error"]

    by_method = {r.method: r for r in seen}
    assert set(by_method) == set(lines) - {"heartbeat"}
    greet = by_method["greet"]
    assert (greet.path, greet.version, greet.dubbo_version) == (
        "com.laneway.interop.GreetingService",
        "1.0.0",
        "2.0.2",
    )
    assert greet.parameter_types == STRING
    assert _arguments(greet) == ["laneway"]
    assert by_method["add"].parameter_types == "II"
    assert greet.group == "blue"
    assert greet.attachments["interface"] == "com.laneway.interop.GreetingService"
    assert greet.attachments["timeout"] == 3000
    # The env-tag injection works on a real consumer's frame: other entries kept as they were.
    (tagged,) = ServerConnection().receive_data(greet.with_attachments({"dubbo.tag": "env-a"}))
    assert isinstance(tagged, RequestReceived)
    assert dict(tagged.request.attachments) == {**greet.attachments, "dubbo.tag": "env-a"}
    assert _arguments(tagged.request) == ["laneway"]
