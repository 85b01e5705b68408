"""A real standalone ZooKeeper (Debian ``zookeeper`` 3.8) for the tests, and a cuttable relay.

``ZooKeeperServer.start()`` runs ``ZooKeeperServerMain`` on 127.0.0.1 with a free port, a
temporary data dir, the admin server off and a short tick (so tests can use sub-second
session timeouts). It raises ``ZooKeeperUnavailable`` with the reason (and the server's
log) if Java or the jars are missing or the server does not answer: the tests then FAIL.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import trio

ZOOKEEPER_JARS = Path("/usr/share/java")
# Debian's zookeeper.jar names its dependencies in its manifest Class-Path; slf4j-nop
# silences the "no binding" warning.
CLASSPATH = ("zookeeper.jar", "slf4j-nop.jar")
TICK_MS = 100  # why: min session timeout is 2 ticks, so tests can expire sessions in 200 ms
START_TIMEOUT = 30.0  # why: a cold JVM on a busy 2-core CI box can take several seconds
STOP_TIMEOUT = 10.0


class ZooKeeperUnavailable(RuntimeError):
    """The test ZooKeeper could not be started."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class ZooKeeperServer:
    """One standalone ZooKeeper process; ``hosts`` is its ``127.0.0.1:port``."""

    def __init__(self) -> None:
        self.port = 0
        self.dir = Path(tempfile.mkdtemp(prefix="laneway-zk-"))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def hosts(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> ZooKeeperServer:
        java = shutil.which("java")
        jars = [ZOOKEEPER_JARS / j for j in CLASSPATH]
        missing = [str(j) for j in jars if not j.exists()]
        if java is None or missing:
            raise ZooKeeperUnavailable(
                f"ZooKeeper cannot start: java={java}, missing jars {missing}; "
                "run tests/setup_deps.sh (Debian packages zookeeper, default-jdk-headless)"
            )
        self.port = _free_port()
        data = self.dir / "data"
        data.mkdir(exist_ok=True)
        cfg = self.dir / "zoo.cfg"
        cfg.write_text(
            f"tickTime={TICK_MS}\n"
            f"dataDir={data}\n"
            f"clientPort={self.port}\n"
            "clientPortAddress=127.0.0.1\n"
            "admin.enableServer=false\n"
            "minSessionTimeout=200\n"
            "maxSessionTimeout=60000\n"
            "4lw.commands.whitelist=ruok\n"
        )
        log = (self.dir / "server.log").open("wb")
        self.proc = subprocess.Popen(
            [
                java,
                "-Xmx256m",
                "-XX:+UseSerialGC",
                "-XX:TieredStopAtLevel=1",
                "-Djute.maxbuffer=16777216",  # Z4 writes a 10 MB node
                "-cp",
                ":".join(str(j) for j in jars),
                "org.apache.zookeeper.server.ZooKeeperServerMain",
                str(cfg),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            if self._ruok():
                return self
            time.sleep(0.05)
        self.stop()
        raise ZooKeeperUnavailable(
            f"ZooKeeper did not answer on {self.hosts} within {START_TIMEOUT}s; log:\n"
            + (self.dir / "server.log").read_text(errors="replace")[-4000:]
        )

    def _ruok(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"ruok")
                return s.recv(4) == b"imok"
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


class TcpRelay:
    """A loopback TCP relay to a target port that a test can cut and restore.

    ``cut()`` closes every relayed connection and refuses new ones (the target looks
    down); ``restore()`` accepts again. Run ``serve`` with ``nursery.start``; it reports
    the relay's port.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self._up = True
        self._conns: set[trio.CancelScope] = set()

    def cut(self) -> None:
        self._up = False
        for scope in list(self._conns):
            scope.cancel()

    def restore(self) -> None:
        self._up = True

    async def serve(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        port: int = listeners[0].socket.getsockname()[1]
        async with trio.open_nursery() as nursery:
            task_status.started(port)
            await trio.serve_listeners(self._handle, listeners, handler_nursery=nursery)

    async def _handle(self, down: trio.SocketStream) -> None:
        if not self._up:
            await down.aclose()
            return
        with trio.CancelScope() as scope:
            self._conns.add(scope)
            try:
                up = await trio.open_tcp_stream("127.0.0.1", self.target_port)
            except OSError:
                up = None
            if up is not None:
                async with up, trio.open_nursery() as nursery:
                    nursery.start_soon(_pump, down, up, nursery.cancel_scope)
                    nursery.start_soon(_pump, up, down, nursery.cancel_scope)
            self._conns.discard(scope)
        with trio.CancelScope(shield=True):
            await down.aclose()


async def _pump(src: trio.SocketStream, dst: trio.SocketStream, done: trio.CancelScope) -> None:
    """Copy until either side ends or breaks, then end the whole relayed connection."""
    with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError, OSError):
        async for chunk in src:
            await dst.send_all(chunk)
    done.cancel()
