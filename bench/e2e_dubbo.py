"""End-to-end Dubbo benchmark (issue 5): laneway against a pure byte relay, in one run.

Targets, each a separate process in front of one fast provider (``bench/dubbo_provider.py``):

- ``direct``       the provider itself (the baseline every "added" figure subtracts)
- ``laneway``      ``laneway serve`` with a static provider from a routes file (no registry
                   traffic); requests carry ``dubbo.tag: feature-1`` and the routes file
                   declares ``feature-1`` with no provider of the service, so every call is
                   a real routing decision that falls back to main (``--lane match`` also
                   lists the provider in ``feature-1``, so tagged calls match it), and
                   laneway re-injects the tag (``x-env`` and ``baggage`` added: the
                   attachments map is rewritten)
- ``laneway-untagged``  the same laneway process, requests without ``dubbo.tag`` (main;
                   the original bytes pass through, no rewrite)
- ``haproxy``      Debian haproxy in TCP mode, one thread (``bench/haproxy.cfg.tmpl``)
- ``trio-stream``  a bare trio byte relay on ``SocketStream`` (``bench/trio_relay.py``)
- ``trio-raw``     the same relay on raw non-blocking sockets inside trio

Measured, all in one run on one machine:

1. sequential latency: one call at a time on one connection, p50/p90/p99, in interleaved
   rounds (every target gets a slice of every round, so background load drifts into all
   of them alike); "added" = target p50 - direct p50;
2. pipelined throughput: ``--conns`` connections with ``--window`` calls in flight each;
   calls/s and calls per proxy CPU-second;
3. CPU per call of each proxy process (utime+stime from ``/proc/PID/stat``; the per-thread
   ``schedstat`` nanoseconds as a finer cross-check), of the provider and of this client.

The client is this process: blocking stdlib sockets, request frames encoded once, the request
id patched in place per call (pipelined: a pre-built ring of frames sent as slices).

Install haproxy first (bench-only, not a test dependency): ``make bench-deps`` or
``apt-get install -y haproxy``. Run: ``.venv/bin/python -m bench.e2e_dubbo`` (``--help``
for the knobs; ``--profile 8`` adds a py-spy profile of laneway under load, needs
``pip install py-spy``). Every process binds 127.0.0.1 and is stopped before exit.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import hashlib
import json
import math
import os
import re
import selectors
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench.harness import BenchError, native_state, rotated, wait_ready_line
from proxy.codecs.dubbo import HEADER_LENGTH, encode_request

ROOT = Path(__file__).resolve().parent.parent
HAPROXY_TEMPLATE = Path(__file__).resolve().parent / "haproxy.cfg.tmpl"
SERVICE = "com.acme.demo.GreeterService"
SERVICE_VERSION = "1.0.0"
TAG = "feature-1"
OK = 20
RECEIVE_SIZE = 256 * 1024
READY_TIMEOUT = 20.0
# why: laneway imports pydantic, grpc and the codecs before it listens: a few seconds on a
# loaded 2-core machine; anything past this is a failure to start, not slowness.
STOP_TIMEOUT = 10.0
DRAIN_TIMEOUT = 10.0
# why: after a pipelined run is stopped, the calls still in flight must come back before
# the connection closes (else laneway's CPU for them lands outside the measurement).
RING = 4096
# why: pipelined ids cycle through this many pre-built frames; it only has to exceed the
# window so no two calls in flight on one connection share an id.
CLK_TCK = os.sysconf("SC_CLK_TCK")

_BODY_LENGTH = struct.Struct(">I")
_REQUEST_ID = struct.Struct(">Q")

TARGETS = ("direct", "laneway", "laneway-untagged", "haproxy", "trio-stream", "trio-raw")
PROCESS = {"laneway-untagged": "laneway"}
"""The process behind a target when it is not the target's own name."""


def process_of(target: str) -> str:
    return "provider" if target == "direct" else PROCESS.get(target, target)


# -- processes -------------------------------------------------------------------------------


@dataclass
class Service:
    name: str
    proc: subprocess.Popen[bytes]
    address: str

    @property
    def pid(self) -> int:
        return self.proc.pid


def free_port() -> int:
    """A free loopback port (for haproxy, which cannot report a port it picked itself)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait_listening(proc: subprocess.Popen[bytes], port: int, name: str, logs: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1.0):
            return
        time.sleep(0.02)
    raise BenchError(f"{name} did not start listening; its output is in {logs}")


class Fleet:
    """Every process the benchmark starts; ``stop_all`` ends them (also on errors)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.services: dict[str, Service] = {}

    def _spawn(self, name: str, argv: Sequence[str]) -> tuple[subprocess.Popen[bytes], Path]:
        out = self.workdir / f"{name}.out"
        err = self.workdir / f"{name}.err"
        with out.open("wb") as stdout, err.open("wb") as stderr:
            proc = subprocess.Popen(
                list(argv), cwd=ROOT, stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL
            )
        return proc, out

    def start_python(self, name: str, module: str, args: Sequence[str], pattern: str) -> Service:
        proc, out = self._spawn(name, [sys.executable, "-m", module, *args])
        self.services[name] = Service(name, proc, "")
        address = wait_ready_line(proc, out, pattern, name)
        self.services[name].address = address
        return self.services[name]

    def start_provider(self) -> Service:
        return self.start_python(
            "provider",
            "bench.dubbo_provider",
            ["--listen", "127.0.0.1:0"],
            r"provider ready: (\S+)",
        )

    def start_relay(self, name: str, upstream: str, mode: str) -> Service:
        args = ["--listen", "127.0.0.1:0", "--upstream", upstream, "--mode", mode]
        return self.start_python(name, "bench.trio_relay", args, r"relay ready: (\S+)")

    def start_laneway(self, upstream: str, lane: str) -> Service:
        routes = self.workdir / "routes.yaml"
        routes.write_text(routes_yaml(upstream, lane))
        config = self.workdir / "laneway.yaml"
        config.write_text(
            "listen: {dubbo: '127.0.0.1:0', registry: null}\n"
            "registry: {kind: embedded}\n"
            "routes: routes.yaml\n"
        )
        return self.start_python(
            "laneway",
            "proxy",
            ["serve", "--config", str(config)],
            r"laneway ready: dubbo=(\S+)",
        )

    def start_haproxy(self, upstream: str) -> Service:
        binary = shutil.which("haproxy") or "/usr/sbin/haproxy"
        if not Path(binary).exists():
            raise BenchError(
                "haproxy is not installed: `make bench-deps` or `apt-get install -y haproxy`"
            )
        port = free_port()
        cfg = self.workdir / "haproxy.cfg"
        cfg.write_text(
            HAPROXY_TEMPLATE.read_text().format(listen=f"127.0.0.1:{port}", upstream=upstream)
        )
        check = subprocess.run([binary, "-c", "-f", str(cfg)], capture_output=True, check=False)
        if check.returncode != 0:
            raise BenchError(f"haproxy rejected {cfg}: {check.stderr.decode(errors='replace')}")
        proc, _ = self._spawn("haproxy", [binary, "-db", "-f", str(cfg)])
        self.services["haproxy"] = Service("haproxy", proc, f"127.0.0.1:{port}")
        _wait_listening(proc, port, "haproxy", self.workdir)
        return self.services["haproxy"]

    def stop(self, name: str) -> None:
        """SIGTERM one service and wait for it (laneway drains, then exits)."""
        proc = self.services[name].proc
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(STOP_TIMEOUT)

    def stop_all(self) -> None:
        for service in self.services.values():
            if service.proc.poll() is None:
                service.proc.send_signal(signal.SIGTERM)
        for service in self.services.values():
            try:
                service.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                service.proc.kill()
                service.proc.wait(STOP_TIMEOUT)


def routes_yaml(upstream: str, lane: str) -> str:
    """The routes file laneway runs with: ``feature-1`` declared; the one static provider in
    main (``fallback``: tagged calls fall back to main), or (``match``) listed in feature-1
    and in main (tagged calls match feature-1, untagged ones still have main)."""
    envs = ["main"] if lane == "fallback" else [TAG, "main"]
    providers = "".join(
        f"  - {{service: {SERVICE}, version: {SERVICE_VERSION}, address: '{upstream}', "
        f"protocol: dubbo, env: {env}, methods: [sayHello]}}\n"
        for env in envs
    )
    return f"main: main\nenvironments:\n  {TAG}: {{}}\nproviders:\n{providers}"


# -- CPU accounting ----------------------------------------------------------------------------


def cpu_times(pid: int) -> tuple[float, float]:
    """(utime, stime) of the whole process (all threads), seconds (clock-tick resolution)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text.rsplit(")", 1)[1].split()  # fields[0] is field 3 (state)
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


def cpu_ns(pid: int) -> int:
    """Time on CPU of every thread of ``pid`` (``/proc/PID/task/*/schedstat``), nanoseconds."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):  # a thread that just ended
            total += int((task / "schedstat").read_text().split()[0])
    return total


@dataclass
class CpuMeter:
    """CPU spent by a set of processes (and this client) between ``start`` and ``stop``,
    accumulated over several segments."""

    pids: dict[str, int]
    ticks: dict[str, float] = field(default_factory=dict)  # utime + stime, seconds
    kernel: dict[str, float] = field(default_factory=dict)  # stime, seconds
    nanos: dict[str, int] = field(default_factory=dict)
    _t0: dict[str, tuple[float, float]] = field(default_factory=dict)
    _n0: dict[str, int] = field(default_factory=dict)

    def _read(self) -> tuple[dict[str, tuple[float, float]], dict[str, int]]:
        ticks = {name: cpu_times(pid) for name, pid in self.pids.items()}
        nanos = {name: cpu_ns(pid) for name, pid in self.pids.items()}
        t = os.times()
        ticks["client"] = (t.user, t.system)
        nanos["client"] = time.process_time_ns()
        return ticks, nanos

    def start(self) -> None:
        self._t0, self._n0 = self._read()

    def stop(self) -> None:
        ticks, nanos = self._read()
        for name, (user, system) in ticks.items():
            user0, system0 = self._t0[name]
            self.ticks[name] = self.ticks.get(name, 0.0) + user + system - user0 - system0
            self.kernel[name] = self.kernel.get(name, 0.0) + system - system0
        for name, ns in nanos.items():
            self.nanos[name] = self.nanos.get(name, 0) + ns - self._n0[name]

    def per_call(self, calls: int) -> CpuPerCall:
        return CpuPerCall(
            total={name: self.ticks[name] / calls * 1e6 for name in self.ticks},
            kernel={name: self.kernel[name] / calls * 1e6 for name in self.kernel},
            sched={name: self.nanos[name] / calls / 1000 for name in self.nanos},
        )


@dataclass
class CpuPerCall:
    """Microseconds of CPU per call, by process: /proc stat total and stime, schedstat."""

    total: dict[str, float] = field(default_factory=dict)
    kernel: dict[str, float] = field(default_factory=dict)
    sched: dict[str, float] = field(default_factory=dict)

    def text(self, process: str) -> str:
        """``total (schedstat) k% kernel`` for one process."""
        total = self.total.get(process, 0.0)
        if total <= 0:
            return "-"
        kernel = 100 * self.kernel.get(process, 0.0) / total
        return f"{total:.0f} ({self.sched.get(process, 0.0):.0f}), {kernel:.0f}% sys"


# -- client ------------------------------------------------------------------------------------


def request_frame(tag: str | None = TAG) -> bytes:
    """sayHello("world") as a Java consumer in env ``tag`` (None: untagged) sends it."""
    attachments: dict[str, object] = {
        "path": SERVICE,
        "interface": SERVICE,
        "version": SERVICE_VERSION,
        "timeout": "3000",
    }
    if tag is not None:
        attachments["dubbo.tag"] = tag
    return encode_request(
        request_id=0,
        path=SERVICE,
        method="sayHello",
        parameter_types="Ljava/lang/String;",
        arguments=["world"],
        attachments=attachments,
        version=SERVICE_VERSION,
    )


def connect(address: str) -> socket.socket:
    host, _, port = address.rpartition(":")
    sock = socket.create_connection((host, int(port)), timeout=10.0)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def sequential(sock: socket.socket, frame: bytearray, calls: int, first_id: int) -> list[int]:
    """``calls`` calls one after the other; the latency of each in nanoseconds."""
    latencies: list[int] = []
    append = latencies.append
    pack_id = _REQUEST_ID.pack_into
    send, recv = sock.sendall, sock.recv
    unpack_length = _BODY_LENGTH.unpack_from
    clock = time.perf_counter_ns
    for request_id in range(first_id, first_id + calls):
        pack_id(frame, 4, request_id)
        t0 = clock()
        send(frame)
        data = recv(RECEIVE_SIZE)
        while len(data) < HEADER_LENGTH or len(data) < HEADER_LENGTH + unpack_length(data, 12)[0]:
            more = recv(RECEIVE_SIZE)
            if not more:
                raise BenchError("connection closed mid-call")
            data += more
        append(clock() - t0)
        if data[3] != OK or _REQUEST_ID.unpack_from(data, 4)[0] != request_id:
            raise BenchError(f"bad answer: status {data[3]}, {len(data)} bytes")
    return latencies


@dataclass
class PipeResult:
    calls: int = 0  # completed before the stop (throughput)
    drained: int = 0  # completed after the stop (CPU accounting only)
    seconds: float = 0.0
    errors: int = 0


def _ring(frame: bytes) -> bytes:
    template = bytearray(frame)
    parts = []
    for request_id in range(RING):
        _REQUEST_ID.pack_into(template, 4, request_id)
        parts.append(bytes(template))
    return b"".join(parts)


def _count_responses(buf: bytearray) -> tuple[int, int, int]:
    """(complete responses, of which not OK, bytes used) at the start of ``buf``."""
    n = errors = pos = 0
    end_of_data = len(buf)
    unpack_length = _BODY_LENGTH.unpack_from
    while end_of_data - pos >= HEADER_LENGTH:
        end = pos + HEADER_LENGTH + unpack_length(buf, pos + 12)[0]
        if end > end_of_data:
            break
        if buf[pos + 3] != OK:
            errors += 1
        n += 1
        pos = end
    return n, errors, pos


def pipelined(
    address: str, ring: bytes, frame_length: int, conns: int, window: int, calls: int, limit: float
) -> PipeResult:
    """``conns`` connections, ``window`` calls in flight on each, until ``calls`` calls have
    completed or ``limit`` seconds have passed; then the calls in flight are drained."""
    socks = [connect(address) for _ in range(conns)]
    sel = selectors.DefaultSelector()
    positions = [0] * conns
    buffers = [bytearray() for _ in range(conns)]
    in_flight = [0] * conns
    result = PipeResult()
    view = memoryview(ring)

    def send(i: int, n: int) -> None:
        start = positions[i]
        stop = start + n
        if stop <= RING:
            socks[i].sendall(view[start * frame_length : stop * frame_length])
        else:
            socks[i].sendall(view[start * frame_length :])
            socks[i].sendall(view[: (stop - RING) * frame_length])
        positions[i] = stop % RING
        in_flight[i] += n

    try:
        for i, sock in enumerate(socks):
            sel.register(sock, selectors.EVENT_READ, i)
        sent = 0
        t0 = time.perf_counter()
        deadline = t0 + limit
        for i in range(conns):
            n = min(window, calls - sent)
            if n > 0:
                send(i, n)
                sent += n
        stopped = False
        drain_deadline = 0.0
        while any(in_flight):
            now = time.perf_counter()
            if not stopped and (result.calls >= calls or now >= deadline):
                stopped = True
                result.seconds = now - t0
                drain_deadline = now + DRAIN_TIMEOUT
            if stopped and now >= drain_deadline:
                raise BenchError(f"{sum(in_flight)} calls never came back from {address}")
            for key, _ in sel.select(timeout=1.0):
                i = key.data
                data = socks[i].recv(RECEIVE_SIZE)
                if not data:
                    raise BenchError(f"{address} closed a pipelined connection")
                buf = buffers[i]
                buf += data
                n, errors, used = _count_responses(buf)
                del buf[:used]
                in_flight[i] -= n
                result.errors += errors
                if stopped:
                    result.drained += n
                    continue
                result.calls += n
                refill = min(n, calls - sent)
                if refill > 0:
                    send(i, refill)
                    sent += refill
        if not stopped:
            result.seconds = time.perf_counter() - t0
    finally:
        sel.close()
        for sock in socks:
            sock.close()
    return result


# -- the run -----------------------------------------------------------------------------------


@dataclass
class TargetResult:
    name: str
    latencies_ns: list[int] = field(default_factory=list)
    seq_cpu: CpuPerCall = field(default_factory=CpuPerCall)
    pipe: PipeResult = field(default_factory=PipeResult)
    pipe_cpu: CpuPerCall = field(default_factory=CpuPerCall)

    def pct(self, q: float) -> float:
        """Latency percentile ``q`` (0..100) in microseconds."""
        ordered = sorted(self.latencies_ns)
        if not ordered:
            return float("nan")
        index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))
        return ordered[index] / 1000


def run(args: argparse.Namespace, fleet: Fleet) -> dict[str, TargetResult]:
    targets = [t for t in TARGETS if t in args.targets]
    provider = fleet.start_provider()
    upstream = provider.address
    addresses = {"direct": upstream}
    if "laneway" in targets or "laneway-untagged" in targets:
        addresses["laneway"] = fleet.start_laneway(upstream, args.lane).address
        addresses["laneway-untagged"] = addresses["laneway"]
    addresses["haproxy"] = fleet.start_haproxy(upstream).address
    for mode in ("stream", "raw"):
        if f"trio-{mode}" in targets:
            addresses[f"trio-{mode}"] = fleet.start_relay(f"trio-{mode}", upstream, mode).address
    pids = {name: s.pid for name, s in fleet.services.items()}
    results = {t: TargetResult(t) for t in targets}
    tagged, untagged = request_frame(), request_frame(None)
    frames = {t: bytearray(untagged if t == "laneway-untagged" else tagged) for t in targets}
    say(f"processes: { {n: s.pid for n, s in fleet.services.items()} }")

    # 1. sequential latency, interleaved rounds.
    socks = {t: connect(addresses[t]) for t in targets}
    try:
        for t in targets:  # warm-up: connections, laneway's upstream, caches
            sequential(socks[t], frames[t], args.warmup, 1)
        per_round = max(1, args.seq_calls // args.rounds)
        next_id = 1_000_000
        seq_deadline = time.monotonic() + args.seq_seconds
        meters = {t: CpuMeter(pids) for t in targets}
        gc.disable()
        for r in range(args.rounds):
            for t in rotated(targets, r):
                meters[t].start()
                results[t].latencies_ns += sequential(socks[t], frames[t], per_round, next_id)
                meters[t].stop()
                next_id += per_round
            if time.monotonic() > seq_deadline:
                say(f"sequential phase stopped after {r + 1} rounds (time bound)")
                break
        gc.enable()
        for t in targets:
            results[t].seq_cpu = meters[t].per_call(len(results[t].latencies_ns))
        say(
            "sequential done: " + ", ".join(f"{t} p50 {results[t].pct(50):.0f} us" for t in targets)
        )
    finally:
        for sock in socks.values():
            sock.close()

    # 2. pipelined throughput, interleaved rounds.
    rings = {t: _ring(bytes(frames[t])) for t in targets}
    for t in targets:  # warm-up
        length = len(frames[t])
        pipelined(addresses[t], rings[t], length, args.conns, args.window, args.pipe_warmup, 10)
    pipe_meters = {t: CpuMeter(pids) for t in targets}
    per_round = max(1, args.pipe_calls // args.pipe_rounds)
    limit = args.pipe_seconds / args.pipe_rounds
    for r in range(args.pipe_rounds):
        for t in rotated(targets, r):
            pipe_meters[t].start()
            got = pipelined(
                addresses[t], rings[t], len(frames[t]), args.conns, args.window, per_round, limit
            )
            pipe_meters[t].stop()
            acc = results[t].pipe
            acc.calls += got.calls
            acc.drained += got.drained
            acc.seconds += got.seconds
            acc.errors += got.errors
    for t in targets:
        acc = results[t].pipe
        if acc.errors:
            raise BenchError(f"{t}: {acc.errors} pipelined calls answered with an error status")
        results[t].pipe_cpu = pipe_meters[t].per_call(acc.calls + acc.drained)
    say("pipelined done")
    return results


# -- profile -----------------------------------------------------------------------------------


def _load(mode: str, address: str, args: argparse.Namespace, seconds: float) -> int:
    """Pipelined or sequential tagged calls to ``address`` for ``seconds``; calls made."""
    frame = bytearray(request_frame())
    if mode == "pipelined":
        ring = _ring(bytes(frame))
        got = pipelined(address, ring, len(frame), args.conns, args.window, 10**9, seconds)
        return got.calls + got.drained
    end = time.monotonic() + seconds
    calls = 0
    with contextlib.closing(connect(address)) as sock:
        while time.monotonic() < end:
            sequential(sock, frame, 200, calls + 1)
            calls += 200
    return calls


def profile_laneway(args: argparse.Namespace, fleet: Fleet) -> str:
    """Profile laneway under pipelined, then sequential, load; a text summary of each.

    ``sampler`` (default): a fresh laneway per mode under ``bench/cpu_sampler.py`` (CPU-time
    weighted samples, written when SIGTERM ends it). ``py-spy``: py-spy attached to the
    measured laneway process (wall-clock samples of busy threads)."""
    if "laneway" not in fleet.services:
        return "(laneway was not among the targets: nothing to profile)"
    sections = []
    for mode in ("pipelined", "sequential"):
        raw = fleet.workdir / f"profile-{mode}.txt"
        if args.profiler == "sampler":
            name = f"laneway-profiled-{mode}"
            config = fleet.workdir / "laneway.yaml"
            sampler_args = ["--out", str(raw), "--interval", str(args.profile_interval)]
            service = fleet.start_python(
                name,
                "bench.cpu_sampler",
                [*sampler_args, "--", "serve", "--config", str(config)],
                r"laneway ready: dubbo=(\S+)",
            )
            _load(mode, service.address, args, 1.0)  # warm-up
            service.proc.send_signal(signal.SIGUSR1)  # the sampler starts now
            meter = CpuMeter({"laneway": service.pid})
            meter.start()
            calls = _load(mode, service.address, args, args.profile)
            meter.stop()
            fleet.stop(name)
            error = f"the sampler wrote nothing; see {fleet.workdir}/{name}.err"
        else:
            spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
            if not Path(spy).exists():
                return "(py-spy not installed: `.venv/bin/pip install py-spy`)"
            service = fleet.services["laneway"]
            spy_proc = subprocess.Popen(
                [
                    *(spy, "record", "--pid", str(service.pid), "--format", "raw"),
                    *("--rate", str(args.profile_rate), "--output", str(raw)),
                    *("--duration", str(math.ceil(args.profile))),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            meter = CpuMeter({"laneway": service.pid})
            try:
                time.sleep(0.5)  # py-spy attaches
                meter.start()
                calls = _load(mode, service.address, args, args.profile + 1.0)
                meter.stop()
                _, err = spy_proc.communicate(timeout=args.profile + 30)
            finally:
                if spy_proc.poll() is None:
                    spy_proc.kill()
                    spy_proc.wait()
            error = f"py-spy failed: {err.decode(errors='replace')[-500:]}"
        if not raw.exists():
            sections.append(f"{mode}: {error}")
            continue
        us_per_call = meter.per_call(max(1, calls)).total["laneway"]
        text = raw.read_text(errors="replace")
        sections.append(summarize_profile(mode, text, args.profile_top, us_per_call))
    return "\n\n".join(sections)


_LINE_SUFFIX = re.compile(r":\d+\)$")


def _function(frame: str) -> str:
    """``name (path:line)`` -> ``name (short/path)``: samples aggregate per function."""
    frame = _LINE_SUFFIX.sub(")", frame.strip())
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    for marker in ("site-packages/", "/lib/python3", "/work/main/"):
        if marker in where:
            where = where.split(marker, 1)[1]
    return f"{name} ({where})" if where else name


def _area(func: str) -> str:
    """The part of laneway (or of what it runs on) a leaf frame's self time belongs to."""
    if func.startswith("_SocketType._nonblocking_helper"):
        return "in send/recv (syscall, or BlockingIOError raised and caught)"
    if func.startswith("EpollIOManager.get_events"):
        return "in epoll_wait (trio's scheduler asking for I/O)"
    for needle, area in (
        ("anyio/", "watchfiles thread (routes watcher)"),
        ("opentelemetry/", "telemetry (opentelemetry SDK)"),
        ("proxy/telemetry", "telemetry (proxy/telemetry)"),
        ("trio/", "trio runtime (scheduling, cancel scopes, tasks, locks)"),
        ("proxy/codecs/hessian2", "hessian2 codec"),
        ("proxy/codecs/dubbo", "dubbo codec"),
        ("proxy/net/", "proxy/net (connection tasks)"),
        ("proxy/forward", "proxy/forward"),
        ("proxy/router", "proxy/router"),
        ("proxy/serve", "proxy/serve (Lookup)"),
        ("proxy/health", "proxy/health"),
        ("proxy/call", "proxy/call"),
        ("routing/", "routing (decide)"),
        ("contextlib", "contextlib"),
        ("<string>", "dataclass __init__"),
        ("attrs generated", "attrs __init__ (trio objects)"),
    ):
        if needle in func:
            return area
    return "other"


_WRAPPERS = (
    "typer/",
    "runpy",
    "proxy/cli/",
    "proxy/__main__",
    "_run_module_as_main",
    "bench/cpu_sampler",
)
_RUN_LOOP = ("run (trio/_core/_run.py)", "unrolled_run (trio/_core/_run.py)")


def summarize_profile(mode: str, folded: str, top: int, us_per_call: float) -> str:
    """Self time by area and the top functions of a py-spy ``--format raw`` profile, with
    shares turned into microseconds per call using the CPU measured while it ran."""
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    areas: Counter[str] = Counter()
    callers: Counter[tuple[str, str]] = Counter()
    total = other_threads = 0
    for line in folded.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_function(f) for f in stack.split(";") if f.strip()]
        if not frames:
            continue
        if any(f.startswith("Thread._bootstrap") for f in frames):
            # The routes watcher's worker thread: py-spy counts its wait inside Rust as
            # busy, but /proc/PID/task shows it uses ~0 CPU. Left out of the shares.
            other_threads += count
            continue
        total += count
        leaf = frames[-1]
        self_time[leaf] += count
        callers[leaf, frames[-2] if len(frames) > 1 else "-"] += count
        areas[_area(leaf)] += count
        for func in set(frames):
            if not func.startswith(_RUN_LOOP) and not any(w in func for w in _WRAPPERS):
                inclusive[func] += count
    if total == 0:
        return f"{mode}: no samples"

    def row(n: int, what: str) -> str:
        return f"  {100 * n / total:5.1f}%  {n / total * us_per_call:6.1f} us  {what}"

    lines = [
        f"### laneway profile, {mode} load: {total} busy samples of the main thread "
        f"({other_threads} of the watcher thread left out), "
        f"laneway CPU {us_per_call:.0f} us/call while profiled",
        "",
        "self time by area (share, us per call):",
    ]
    lines += [row(n, area) for area, n in areas.most_common()]
    lines += ["", f"top {top} functions by self time:"]
    for func, n in self_time.most_common(top):
        by = Counter({caller: k for (leaf, caller), k in callers.items() if leaf == func})
        caller, k = by.most_common(1)[0]
        lines.append(f"{row(n, func)}  <- {caller.split(' (')[0]} ({100 * k // n}%)")
    lines += ["", f"top {top} functions by inclusive time (run loop and CLI frames left out):"]
    lines += [row(n, func) for func, n in inclusive.most_common(top)]
    return "\n".join(lines)


# -- report ------------------------------------------------------------------------------------


def say(text: str) -> None:
    print(f"[e2e_dubbo] {text}", file=sys.stderr, flush=True)


def code_state() -> str:
    """Which laneway was measured: the commit, and whether proxy/ or routing/ had
    uncommitted changes (with a content hash of their .py files, to tell runs apart)."""

    def git(*argv: str) -> str:
        done = subprocess.run(["git", *argv], cwd=ROOT, capture_output=True, check=False)
        return done.stdout.decode(errors="replace").strip() if done.returncode == 0 else "?"

    digest = hashlib.sha256()
    for path in sorted([*ROOT.glob("proxy/**/*.py"), *ROOT.glob("routing/**/*.py")]):
        digest.update(path.relative_to(ROOT).as_posix().encode())
        digest.update(path.read_bytes())
    dirty = git("status", "--porcelain", "--", "proxy", "routing")
    state = "with uncommitted changes in proxy/ or routing/" if dirty else "clean"
    head = git("rev-parse", "--short", "HEAD")
    return f"commit {head}, {state}, sources {digest.hexdigest()[:12]}, {native_state()}"


def report(results: dict[str, TargetResult], args: argparse.Namespace, load: list[str]) -> str:
    base = results["direct"].pct(50)
    base99 = results["direct"].pct(99)
    h_added = results["haproxy"].pct(50) - base
    h_cpu = results["haproxy"].pipe_cpu.total.get("haproxy", 0.0)
    out = [
        f"laneway measured: {code_state()}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"load average (1/5/15 min): {load[0]} at start, {load[-1]} at end; "
        f"{args.seq_calls} sequential calls per target in {args.rounds} interleaved rounds "
        f"(+{args.warmup} warm-up); pipelined: {args.conns} connections x {args.window} in "
        f"flight, {args.pipe_seconds:g} s per target in {args.pipe_rounds} rounds; "
        f"laneway lane: {args.lane}",
        "",
        "Sequential (one call at a time, one connection):",
        "",
        "| target | p50 us | p90 us | p99 us | added p50 | added p99 | added p50 vs haproxy | "
        "proxy CPU us/call (schedstat), kernel share |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        p50, p90, p99 = r.pct(50), r.pct(90), r.pct(99)
        if name == "direct":
            out.append(f"| {name} | {p50:.0f} | {p90:.0f} | {p99:.0f} | - | - | - | - |")
            continue
        added = p50 - base
        ratio = f"{added / h_added:.2f}x" if h_added > 0 else "-"
        out.append(
            f"| {name} | {p50:.0f} | {p90:.0f} | {p99:.0f} | {added:.0f} | {p99 - base99:.0f} | "
            f"{ratio} | {r.seq_cpu.text(process_of(name))} |"
        )
    out += [
        "",
        "Pipelined (many calls in flight):",
        "",
        "| target | calls/s | proxy CPU us/call (schedstat), kernel share | "
        "calls per proxy CPU-second | proxy CPU vs haproxy | provider CPU us/call | "
        "client CPU us/call |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        rate = r.pipe.calls / r.pipe.seconds if r.pipe.seconds else float("nan")
        process = process_of(name)
        proxy_cpu = r.pipe_cpu.total.get(process, 0.0) if name != "direct" else 0.0
        per_core = f"{1e6 / proxy_cpu:,.0f}" if proxy_cpu > 0 else "-"
        vs = f"{proxy_cpu / h_cpu:.1f}x" if proxy_cpu > 0 and h_cpu > 0 else "-"
        cpu_text = r.pipe_cpu.text(process) if name != "direct" else "-"
        out.append(
            f"| {name} | {rate:,.0f} | {cpu_text} | {per_core} | {vs} | "
            f"{r.pipe_cpu.total.get('provider', 0):.1f} | {r.pipe_cpu.total.get('client', 0):.1f} |"
        )
    out += [
        "",
        "CPU: utime+stime from /proc/PID/stat over the target's own segments, per call "
        "(schedstat ns of all threads in parentheses; sys = stime share).",
    ]
    if "laneway" in results and h_added > 0:
        l_added = results["laneway"].pct(50) - base
        verdict = "MET" if l_added <= 2 * h_added else "NOT MET"
        out.append(
            f"Target (laneway added p50 <= 2x haproxy TCP mode added p50): laneway adds "
            f"{l_added:.0f} us, haproxy {h_added:.0f} us: {l_added / h_added:.2f}x, {verdict}"
        )
    return "\n".join(out)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="End-to-end Dubbo benchmark (issue 5).")
    p.add_argument("--seq-calls", type=int, default=5000, help="sequential calls per target")
    p.add_argument("--rounds", type=int, default=5, help="interleaved sequential rounds")
    p.add_argument("--warmup", type=int, default=1000, help="sequential warm-up calls")
    p.add_argument("--seq-seconds", type=float, default=120.0, help="sequential time bound")
    p.add_argument("--pipe-seconds", type=float, default=6.0, help="pipelined seconds per target")
    p.add_argument(
        "--pipe-calls", type=int, default=5_000_000, help="pipelined calls per target, at most"
    )
    p.add_argument("--pipe-rounds", type=int, default=2)
    p.add_argument("--pipe-warmup", type=int, default=5000)
    p.add_argument("--conns", type=int, default=2, help="pipelined connections")
    p.add_argument("--window", type=int, default=32, help="calls in flight per connection")
    p.add_argument("--lane", choices=("fallback", "match"), default="fallback")
    p.add_argument("--targets", nargs="+", choices=TARGETS, default=list(TARGETS))
    p.add_argument("--profile", type=float, default=0.0, help="seconds per load mode (0: off)")
    p.add_argument("--profiler", choices=("sampler", "py-spy"), default="sampler")
    p.add_argument(
        "--profile-interval", type=float, default=0.002, help="sampler: CPU seconds per sample"
    )
    p.add_argument("--profile-rate", type=int, default=250, help="py-spy: samples per second")
    p.add_argument("--profile-top", type=int, default=25)
    p.add_argument("--json", type=Path, help="also write the raw numbers here")
    p.add_argument("--keep", action="store_true", help="keep the work dir (logs, profiles)")
    args = p.parse_args(argv)
    for needed in ("direct", "haproxy"):
        if needed not in args.targets:
            p.error(f"--targets must include {needed} (every ratio is taken against it)")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        say(f"laneway runs: {native_state()}")  # (refuses a stale build before measuring)
    except BenchError as exc:
        say(f"failed: {exc}")
        return 1
    workdir = Path(tempfile.mkdtemp(prefix="laneway-e2e-"))
    fleet = Fleet(workdir)
    load = [" ".join(f"{x:.2f}" for x in os.getloadavg())]
    try:
        results = run(args, fleet)
        load.append(" ".join(f"{x:.2f}" for x in os.getloadavg()))
        profile = profile_laneway(args, fleet) if args.profile > 0 else ""
    except BenchError as exc:
        say(f"failed: {exc}")
        return 1
    finally:
        fleet.stop_all()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    print(report(results, args, load))
    if profile:
        print()
        print(profile)
    if args.json is not None:
        data = {
            name: {
                "p50_us": r.pct(50),
                "p90_us": r.pct(90),
                "p99_us": r.pct(99),
                "seq_cpu_us_per_call": asdict(r.seq_cpu),
                "pipe": asdict(r.pipe),
                "pipe_cpu_us_per_call": asdict(r.pipe_cpu),
            }
            for name, r in results.items()
        }
        args.json.write_text(json.dumps({"load": load, "results": data}, indent=2))
    if args.keep:
        say(f"work dir kept: {workdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
