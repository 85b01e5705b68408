"""End-to-end gRPC benchmark (issue 6): laneway against nginx and haproxy, in one run.

Every call is a 64-byte unary gRPC call to ``/demo.Greeter/Hello`` tagged ``x-env: feature-1``;
the upstream runs one server per env (``main`` and ``feature-1``), each answering with a
64-byte message that starts with its env's name. Targets:

- ``direct``   the feature-1 upstream itself (the baseline every "added" figure subtracts)
- ``laneway``  ``laneway serve`` with a gRPC listener and a routes file declaring
               ``feature-1`` with two static gRPC providers (one per env): every call is a
               routing decision on ``x-env`` and laneway re-injects the tag upstream
- ``nginx``    Debian nginx, ``map $http_x_env`` choosing the upstream, ``grpc_pass``,
               one worker (``bench/grpc_nginx.conf.tmpl``)
- ``haproxy``  Debian haproxy, HTTP/2 frontend, ``use_backend`` on ``x-env``, HTTP/2
               backends, one thread (``bench/grpc_haproxy.cfg.tmpl``)
- ``trio-raw`` a yardstick, not a proxy: ``bench/trio_relay.py --mode raw``, a bare trio
               TCP byte relay to the feature-1 upstream (one upstream connection per
               client connection, HTTP/2 passed through untouched; it cannot route). What
               any trio program pays for the extra hop before doing any work.

Upstreams (``--upstream``): ``static`` (default) is nginx answering every call with a
pre-built gRPC response (``bench/grpc_upstream_nginx.conf.tmpl``): ~30k calls/s on one
core, so the proxies are what the throughput test measures; ``grpcio`` is a grpcio aio
server (``bench/grpc_upstream.py``), a real gRPC server but ~5k calls/s on this machine.

Measured, all in one run on one machine:

1. sequential latency with a grpcio client, one call at a time on one channel, p50/p90/p99,
   in interleaved rounds (every target gets a slice of every round, so background load
   drifts into all of them alike) after a warm-up; "added" = target p50 - direct p50;
2. throughput with h2load (``-c`` connections x ``-m`` streams, ``-D`` seconds per round,
   a pre-built gRPC request body ``-d``, ``content-type: application/grpc``,
   ``te: trailers``, ``x-env``), interleaved rounds; every response is checked to carry
   the 69-byte gRPC message (h2load cannot see grpc-status: an error would come back as a
   2xx without DATA);
3. CPU microseconds each proxy process spends per call: utime+stime from
   ``/proc/PID/stat`` (nginx: master + worker, haproxy: its one process), over the
   target's own segments, in both phases.

Ratios are taken against nginx. ``--profile SECONDS`` adds a py-spy profile of laneway
under h2load load (``.venv/bin/pip install py-spy``).

Install the tools first (bench-only, not test dependencies): ``make bench-deps`` (Debian
``nginx``, ``haproxy``, ``nghttp2-client``). Run: ``.venv/bin/python -m bench.e2e_grpc``
(``--help`` for the knobs). Every process binds 127.0.0.1 and is stopped before exit.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import math
import os
import re
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

import grpc

from bench.grpc_upstream import MESSAGE_SIZE, message_for
from bench.harness import BenchError, native_state, rotated, wait_ready_line

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
NGINX_TEMPLATE = HERE / "grpc_nginx.conf.tmpl"
HAPROXY_TEMPLATE = HERE / "grpc_haproxy.cfg.tmpl"
UPSTREAM_NGINX_TEMPLATE = HERE / "grpc_upstream_nginx.conf.tmpl"
SERVICE = "demo.Greeter"
METHOD = f"/{SERVICE}/Hello"
TAG = "feature-1"
ENVS = ("main", TAG)
REQUEST = b"r" * MESSAGE_SIZE
RESPONSE_DATA = 5 + MESSAGE_SIZE
"""DATA bytes of one successful response: the 5-byte gRPC prefix and the message."""
CALL_TIMEOUT = 10.0
# why: every call carries a grpc-timeout (as real clients do) that a proxy must parse and
# forward; a call that takes this long is a failure, not slowness.
READY_TIMEOUT = 30.0
# why: laneway imports pydantic, grpc and the codecs before it listens: a few seconds on a
# loaded 2-core machine; anything past this is a failure to start.
STOP_TIMEOUT = 10.0
H2LOAD_SLACK = 30.0
# why: h2load's own -D bounds a round; past this much more it is hung and gets killed.
CLK_TCK = os.sysconf("SC_CLK_TCK")

TARGETS = ("direct", "laneway", "nginx", "haproxy", "trio-raw")
PROXY_CPU = 1
LOADGEN_CPU = 0
# why (--pin): on this 2-core machine the proxy under test gets a core of its own, the load
# generator and the upstream the other, every proxy alike.


def say(text: str) -> None:
    print(f"[e2e_grpc] {text}", file=sys.stderr, flush=True)


def code_state() -> str:
    """The laneway code measured: git HEAD and how many files under proxy/ and routing/
    differ from it (the benchmark may run on a work tree that is being changed)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, check=True
        ).stdout.decode()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "proxy", "routing"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        ).stdout.decode()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (no git)"
    changed = len(dirty.splitlines())
    if not changed:
        return f"{head.strip()}, {native_state()}"
    return f"{head.strip()} + {changed} uncommitted files in proxy/, routing/, {native_state()}"


def loadavg() -> str:
    """The 1/5/15-minute load averages of this machine, as /proc/loadavg has them."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


# -- processes -------------------------------------------------------------------------------


@dataclass
class Service:
    name: str
    proc: subprocess.Popen[bytes]
    address: str = ""
    addresses: dict[str, str] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.proc.pid


def free_port() -> int:
    """A free loopback port (for nginx and haproxy, which cannot report one they picked)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def fill(template: Path, values: dict[str, str]) -> str:
    """``template`` with every ``@@NAME@@`` replaced (nginx and haproxy use ``$`` and ``{}``)."""
    text = template.read_text()
    for name, value in values.items():
        text = text.replace(f"@@{name}@@", value)
    if re.search(r"@@[A-Z]+@@", text):
        raise BenchError(f"{template.name}: a marker was left unfilled")
    return text


def _binary(name: str) -> str:
    binary = shutil.which(name) or f"/usr/sbin/{name}"
    if not Path(binary).exists():
        raise BenchError(f"{name} is not installed: `make bench-deps`")
    return binary


def _wait_listening(proc: subprocess.Popen[bytes], ports: Sequence[int], name: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    waiting = list(ports)
    while waiting and time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", waiting[0]), 1):
            waiting.pop(0)
            continue
        time.sleep(0.02)
    if waiting:
        raise BenchError(f"{name} did not start listening")


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

    def start_grpcio_upstream(self) -> Service:
        args = [f"--env={env}=127.0.0.1:0" for env in ENVS]
        proc, out = self._spawn("upstream", [sys.executable, "-m", "bench.grpc_upstream", *args])
        service = self.services["upstream"] = Service("upstream", proc)
        line = wait_ready_line(proc, out, r"upstream ready: (.+)\n", "upstream")
        service.addresses = dict(part.split("=", 1) for part in line.split())
        return service

    def start_static_upstream(self) -> Service:
        www = self.workdir / "www"
        www.mkdir()
        for env in ENVS:
            (www / f"{env}.bin").write_bytes(grpc_message(message_for(env)))
        (self.workdir / "upstream-tmp").mkdir()
        ports = {env: free_port() for env in ENVS}
        addresses = {env: f"127.0.0.1:{port}" for env, port in ports.items()}
        conf = self._nginx_conf(
            "upstream-nginx.conf",
            UPSTREAM_NGINX_TEMPLATE,
            {"MAIN": addresses["main"], "FEATURE": addresses[TAG]},
        )
        service = self._start_nginx("upstream", conf, list(ports.values()))
        service.addresses = addresses
        return service

    def start_laneway(self, upstreams: dict[str, str]) -> Service:
        routes = self.workdir / "routes.yaml"
        routes.write_text(routes_yaml(upstreams))
        config = self.workdir / "laneway.yaml"
        config.write_text(
            "listen: {grpc: '127.0.0.1:0', dubbo: null, registry: null}\n"
            "registry: {kind: embedded}\n"
            "routes: routes.yaml\n"
            "watch_routes: false\n"
        )
        proc, out = self._spawn(
            "laneway", [sys.executable, "-m", "proxy", "serve", "--config", str(config)]
        )
        service = self.services["laneway"] = Service("laneway", proc)
        service.address = wait_ready_line(proc, out, r"laneway ready: .*grpc=(\S+)", "laneway")
        return service

    def _nginx_conf(self, name: str, template: Path, values: dict[str, str]) -> Path:
        conf = self.workdir / name
        conf.write_text(fill(template, {"WORKDIR": str(self.workdir), **values}))
        argv = [_binary("nginx"), "-t", "-q", "-p", str(self.workdir), "-e", "stderr"]
        check = subprocess.run([*argv, "-c", str(conf)], capture_output=True, check=False)
        if check.returncode != 0:
            raise BenchError(f"nginx rejected {conf}: {check.stderr.decode(errors='replace')}")
        return conf

    def _start_nginx(self, name: str, conf: Path, ports: Sequence[int]) -> Service:
        proc, _ = self._spawn(
            name,
            [_binary("nginx"), "-p", str(self.workdir), "-e", "stderr", "-c", str(conf)],
        )
        service = self.services[name] = Service(name, proc)
        _wait_listening(proc, ports, name)
        return service

    def start_nginx(self, upstreams: dict[str, str]) -> Service:
        (self.workdir / "nginx-tmp").mkdir(exist_ok=True)
        port = free_port()
        conf = self._nginx_conf(
            "nginx.conf",
            NGINX_TEMPLATE,
            {"LISTEN": f"127.0.0.1:{port}", "MAIN": upstreams["main"], "FEATURE": upstreams[TAG]},
        )
        service = self._start_nginx("nginx", conf, [port])
        service.address = f"127.0.0.1:{port}"
        return service

    def start_haproxy(self, upstreams: dict[str, str]) -> Service:
        binary = _binary("haproxy")
        port = free_port()
        cfg = self.workdir / "haproxy.cfg"
        cfg.write_text(
            fill(
                HAPROXY_TEMPLATE,
                {
                    "LISTEN": f"127.0.0.1:{port}",
                    "MAIN": upstreams["main"],
                    "FEATURE": upstreams[TAG],
                },
            )
        )
        check = subprocess.run([binary, "-c", "-f", str(cfg)], capture_output=True, check=False)
        if check.returncode != 0:
            raise BenchError(f"haproxy rejected {cfg}: {check.stderr.decode(errors='replace')}")
        proc, _ = self._spawn("haproxy", [binary, "-db", "-f", str(cfg)])
        service = self.services["haproxy"] = Service("haproxy", proc, f"127.0.0.1:{port}")
        _wait_listening(proc, [port], "haproxy")
        return service

    def start_trio_relay(self, upstreams: dict[str, str]) -> Service:
        argv = [sys.executable, "-m", "bench.trio_relay", "--listen", "127.0.0.1:0"]
        argv += ["--upstream", upstreams[TAG], "--mode", "raw"]
        proc, out = self._spawn("trio-raw", argv)
        service = self.services["trio-raw"] = Service("trio-raw", proc)
        service.address = wait_ready_line(proc, out, r"relay ready: (\S+)", "trio-raw")
        return service

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


def routes_yaml(upstreams: dict[str, str]) -> str:
    """laneway's routes: ``feature-1`` declared, one static gRPC provider per env."""
    lines = ["main: main", "environments:", f"  {TAG}: {{}}", "providers:"]
    lines += [
        f"  - {{service: {SERVICE}, address: '{upstreams[env]}', protocol: grpc, env: {env}}}"
        for env in ENVS
    ]
    return "\n".join(lines) + "\n"


def grpc_message(payload: bytes) -> bytes:
    """One length-prefixed gRPC message (uncompressed)."""
    return b"\x00" + struct.pack(">I", len(payload)) + payload


# -- CPU accounting ----------------------------------------------------------------------------


def pin(pids: Sequence[int], cpu: int) -> None:
    """Bind every thread of ``pids`` to ``cpu`` (``--pin``)."""
    for pid in pids:
        with contextlib.suppress(OSError):
            for tid in os.listdir(f"/proc/{pid}/task"):
                os.sched_setaffinity(int(tid), {cpu})


def process_tree(pid: int) -> list[int]:
    """``pid`` and its children (nginx's master and workers), read from /proc."""
    pids = [pid]
    with contextlib.suppress(OSError):
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(child) for child in children]
    return pids


def cpu_seconds(pids: Sequence[int]) -> tuple[float, float]:
    """(utime + stime, stime) summed over ``pids`` (all threads), seconds (clock ticks)."""
    total = kernel = 0
    for pid in pids:
        text = Path(f"/proc/{pid}/stat").read_text()
        fields = text.rsplit(")", 1)[1].split()  # fields[0] is field 3 (state)
        total += int(fields[11]) + int(fields[12])
        kernel += int(fields[12])
    return total / CLK_TCK, kernel / CLK_TCK


@dataclass
class CpuMeter:
    """CPU spent by named process groups (and this client) between ``start`` and ``stop``,
    accumulated over several segments."""

    groups: dict[str, list[int]]
    total: dict[str, float] = field(default_factory=dict)
    kernel: dict[str, float] = field(default_factory=dict)
    _t0: dict[str, tuple[float, float]] = field(default_factory=dict)

    def _read(self) -> dict[str, tuple[float, float]]:
        now = {name: cpu_seconds(pids) for name, pids in self.groups.items()}
        t = os.times()
        now["client"] = (t.user + t.system, t.system)
        return now

    def start(self) -> None:
        self._t0 = self._read()

    def stop(self) -> None:
        for name, (total, kernel) in self._read().items():
            total0, kernel0 = self._t0[name]
            self.total[name] = self.total.get(name, 0.0) + total - total0
            self.kernel[name] = self.kernel.get(name, 0.0) + kernel - kernel0

    def per_call(self, calls: int) -> CpuPerCall:
        n = max(1, calls)
        return CpuPerCall(
            total={name: s / n * 1e6 for name, s in self.total.items()},
            kernel={name: s / n * 1e6 for name, s in self.kernel.items()},
        )


@dataclass
class CpuPerCall:
    """Microseconds of CPU per call, by process group: utime+stime and stime."""

    total: dict[str, float] = field(default_factory=dict)
    kernel: dict[str, float] = field(default_factory=dict)

    def text(self, group: str) -> str:
        """``total, k% sys`` for one process group."""
        total = self.total.get(group, 0.0)
        if total <= 0:
            return "-"
        return f"{total:.0f}, {100 * self.kernel.get(group, 0.0) / total:.0f}% sys"


# -- sequential latency (grpcio client) ------------------------------------------------------


def unary(channel: grpc.Channel) -> grpc.UnaryUnaryMultiCallable[bytes, bytes]:
    return channel.unary_unary(METHOD, None, None)


def check_routing(name: str, address: str) -> None:
    """A tagged call must reach feature-1 and (through a proxy) an untagged one main."""
    cases: list[tuple[str | None, str]] = [(TAG, TAG)]
    if name not in ("direct", "trio-raw"):  # (the relay cannot route: it only forwards)
        cases.append((None, "main"))
    with grpc.insecure_channel(address) as channel:
        stub = unary(channel)
        for tag, want in cases:
            metadata = (("x-env", tag),) if tag else ()
            try:
                got = stub(REQUEST, metadata=metadata, timeout=CALL_TIMEOUT)
            except grpc.RpcError as exc:
                raise BenchError(f"{name}: a call tagged {tag!r} failed: {exc}") from exc
            if got != message_for(want):
                raise BenchError(f"{name}: a call tagged {tag!r} got {got[:20]!r}")


def sequential(stub: grpc.UnaryUnaryMultiCallable[bytes, bytes], calls: int) -> list[int]:
    """``calls`` calls one after the other; the latency of each in nanoseconds."""
    latencies: list[int] = []
    append = latencies.append
    clock = time.perf_counter_ns
    metadata = (("x-env", TAG),)
    expected = message_for(TAG)
    for _ in range(calls):
        t0 = clock()
        try:
            got = stub(REQUEST, metadata=metadata, timeout=CALL_TIMEOUT)
        except grpc.RpcError as exc:
            raise BenchError(f"a call failed: {exc}") from exc
        append(clock() - t0)
        if got != expected:
            raise BenchError(f"bad answer: {got[:20]!r}")
    return latencies


# -- throughput (h2load) -------------------------------------------------------------------------


@dataclass
class LoadResult:
    done: int = 0
    succeeded: int = 0
    data_bytes: int = 0
    seconds: float = 0.0

    def add(self, other: LoadResult) -> None:
        self.done += other.done
        self.succeeded += other.succeeded
        self.data_bytes += other.data_bytes
        self.seconds += other.seconds

    @property
    def rate(self) -> float:
        return self.succeeded / self.seconds if self.seconds > 0 else float("nan")


_REQUESTS = re.compile(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded")
_FINISHED = re.compile(r"finished in ([\d.]+)(ms|s)")
_DATA = re.compile(r"traffic: .*?, ([\d.]+\w*) \((\d+)\) data")


def h2load(
    body: Path, address: str, args: argparse.Namespace, *, duration: float, calls: int = 0
) -> LoadResult:
    """One h2load run against ``address``: ``calls`` calls, or for ``duration`` seconds."""
    argv = [
        _binary("h2load"),
        "-c",
        str(args.conns),
        "-m",
        str(args.streams),
        "-t",
        "1",
        "-d",
        str(body),
        "-H",
        "content-type: application/grpc",
        "-H",
        "te: trailers",
        "-H",
        f"x-env: {TAG}",
        "-H",
        "grpc-timeout: 10S",
    ]
    argv += ["-n", str(calls)] if calls else ["-D", f"{duration:g}"]
    argv.append(f"http://{address}{METHOD}")
    limit = (duration or 60.0) + H2LOAD_SLACK
    try:
        done = subprocess.run(argv, capture_output=True, timeout=limit, check=False)
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"h2load against {address} ran past {limit:.0f} s") from exc
    out = done.stdout.decode(errors="replace")
    requests, finished, data = _REQUESTS.search(out), _FINISHED.search(out), _DATA.search(out)
    if done.returncode != 0 or not requests or not finished or not data:
        raise BenchError(f"h2load against {address} failed: {out[-800:]} {done.stderr!r}")
    seconds = float(finished.group(1)) / (1000 if finished.group(2) == "ms" else 1)
    result = LoadResult(
        done=int(requests.group(3)),
        succeeded=int(requests.group(4)),
        data_bytes=int(data.group(2)),
        seconds=seconds,
    )
    if result.succeeded == 0 or result.succeeded < result.done:
        raise BenchError(f"h2load against {address}: failed calls: {out[-800:]}")
    if result.data_bytes < RESPONSE_DATA * result.succeeded:
        raise BenchError(
            f"h2load against {address}: {result.data_bytes} DATA bytes for "
            f"{result.succeeded} calls (a gRPC error has none): {out[-800:]}"
        )
    return result


# -- the run -----------------------------------------------------------------------------------


@dataclass
class TargetResult:
    name: str
    latencies_ns: list[int] = field(default_factory=list)
    seq_cpu: CpuPerCall = field(default_factory=CpuPerCall)
    load: LoadResult = field(default_factory=LoadResult)
    load_cpu: CpuPerCall = field(default_factory=CpuPerCall)

    def pct(self, q: float) -> float:
        """Latency percentile ``q`` (0..100) in microseconds."""
        ordered = sorted(self.latencies_ns)
        if not ordered:
            return float("nan")
        index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))
        return ordered[index] / 1000


def group_of(target: str) -> str:
    return "upstream" if target == "direct" else target


def start_all(args: argparse.Namespace, fleet: Fleet) -> dict[str, str]:
    """Every process; the address of each target."""
    if args.upstream == "static":
        upstreams = fleet.start_static_upstream().addresses
    else:
        upstreams = fleet.start_grpcio_upstream().addresses
    addresses = {"direct": upstreams[TAG]}
    starters = {
        "laneway": fleet.start_laneway,
        "nginx": fleet.start_nginx,
        "haproxy": fleet.start_haproxy,
        "trio-raw": fleet.start_trio_relay,
    }
    for target in args.targets:
        if target in starters:
            addresses[target] = starters[target](upstreams).address
    return addresses


def run(
    args: argparse.Namespace, fleet: Fleet, addresses: dict[str, str]
) -> dict[str, TargetResult]:
    targets = [t for t in TARGETS if t in args.targets]
    groups = {name: process_tree(s.pid) for name, s in fleet.services.items()}
    say(f"processes: {groups}")
    if args.pin:
        # The proxies share one core; the client, h2load (our child) and the upstream the
        # other: each proxy keeps its caches warm, as with nginx's worker_cpu_affinity.
        for name, pids in groups.items():
            pin(pids, LOADGEN_CPU if name == "upstream" else PROXY_CPU)
        pin([os.getpid()], LOADGEN_CPU)
    results = {t: TargetResult(t) for t in targets}
    for t in targets:
        check_routing(t, addresses[t])

    # 1. sequential latency, interleaved rounds.
    channels = {t: grpc.insecure_channel(addresses[t]) for t in targets}
    try:
        stubs = {t: unary(channels[t]) for t in targets}
        for t in targets:  # warm-up: connections, upstream connections, caches
            sequential(stubs[t], args.warmup)
        per_round = max(1, args.seq_calls // args.rounds)
        deadline = time.monotonic() + args.seq_seconds
        meters = {t: CpuMeter(groups) for t in targets}
        gc.disable()
        try:
            for r in range(args.rounds):
                for t in rotated(targets, r):
                    meters[t].start()
                    results[t].latencies_ns += sequential(stubs[t], per_round)
                    meters[t].stop()
                if time.monotonic() > deadline:
                    say(f"sequential phase stopped after {r + 1} rounds (time bound)")
                    break
        finally:
            gc.enable()
        for t in targets:
            results[t].seq_cpu = meters[t].per_call(len(results[t].latencies_ns))
        say("sequential: " + ", ".join(f"{t} p50 {results[t].pct(50):.0f} us" for t in targets))
    finally:
        for channel in channels.values():
            channel.close()

    # 2. h2load throughput, interleaved rounds.
    body = fleet.workdir / "request.bin"
    body.write_bytes(grpc_message(REQUEST))
    for t in targets:  # warm-up
        h2load(body, addresses[t], args, duration=0, calls=args.load_warmup)
    load_meters = {t: CpuMeter(groups) for t in targets}
    for r in range(args.load_rounds):
        for t in rotated(targets, r):
            load_meters[t].start()
            got = h2load(body, addresses[t], args, duration=args.load_seconds)
            load_meters[t].stop()
            results[t].load.add(got)
    for t in targets:
        results[t].load_cpu = load_meters[t].per_call(results[t].load.done)
    say("h2load: " + ", ".join(f"{t} {results[t].load.rate:,.0f}/s" for t in targets))
    return results


# -- profile -----------------------------------------------------------------------------------


def profile_laneway(args: argparse.Namespace, fleet: Fleet, address: str) -> str:
    """py-spy on laneway while h2load runs against it; a text summary."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        return "(py-spy not installed: `.venv/bin/pip install py-spy`)"
    laneway = fleet.services["laneway"]
    raw = fleet.workdir / "profile.txt"
    body = fleet.workdir / "request.bin"
    spy_argv = [spy, "record", "--pid", str(laneway.pid), "--rate", str(args.profile_rate)]
    spy_argv += ["--duration", str(math.ceil(args.profile)), "--format", "raw"]
    spy_argv += ["--nonblocking", "--output", str(raw)]
    spy_proc = subprocess.Popen(spy_argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    meter = CpuMeter({"laneway": [laneway.pid]})
    try:
        time.sleep(0.5)  # py-spy attaches
        meter.start()
        got = h2load(body, address, args, duration=args.profile)
        meter.stop()
        _, err = spy_proc.communicate(timeout=args.profile + 30)
    finally:
        if spy_proc.poll() is None:
            spy_proc.kill()
            spy_proc.wait()
    if not raw.exists():
        return f"py-spy failed: {err.decode(errors='replace')[-500:]}"
    us_per_call = meter.per_call(got.done).total["laneway"]
    return summarize_profile(raw.read_text(errors="replace"), args.profile_top, us_per_call)


_LINE_SUFFIX = re.compile(r":\d+\)$")


def _function(frame: str) -> str:
    """``name (path:line)`` -> ``name (short/path)``: samples aggregate per function."""
    frame = _LINE_SUFFIX.sub(")", frame.strip())
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    for marker in ("site-packages/", "/lib/python3.11/", "/work/main/"):
        if marker in where:
            where = where.split(marker, 1)[1]
    return f"{name} ({where})" if where else name


_AREAS = (
    ("hpack/", "hpack (header blocks)"),
    ("hyperframe/", "hyperframe (frame objects)"),
    ("proxy/codecs/grpc/", "laneway HTTP/2 codec (proxy/codecs/grpc)"),
    ("proxy/net/grpc_downstream", "downstream connection (proxy/net/grpc_downstream)"),
    ("proxy/net/h2_upstream", "upstream connection (proxy/net/h2_upstream)"),
    ("proxy/grpc_forward", "call relay (proxy/grpc_forward)"),
    ("proxy/router", "routing glue (proxy/router)"),
    ("routing/", "decide() (routing/)"),
    ("proxy/", "other proxy/"),
    ("trio/", "trio runtime (scheduling, channels, cancel scopes)"),
    ("socket", "socket calls"),
    ("<string>", "generated __init__ (dataclasses)"),
    ("attrs generated", "generated __init__ (attrs, trio objects)"),
)


def _area(func: str) -> str:
    if "_nonblocking_helper" in func or func.startswith(("send ", "recv ")):
        return "send/recv (syscalls, BlockingIOError)"
    if "get_events" in func or "epoll" in func:
        return "epoll_wait (trio asking for I/O)"
    for needle, area in _AREAS:
        if needle in func:
            return area
    return "other"


_SKIP_INCLUSIVE = ("runpy", "typer/", "proxy/cli/", "proxy/__main__", "_run_module_as_main")
_RUN_LOOP = ("run (trio/_core/_run.py)", "unrolled_run (trio/_core/_run.py)")


def summarize_profile(folded: str, top: int, us_per_call: float) -> str:
    """Self time by area and the top functions of a py-spy ``--format raw`` profile, with
    shares turned into microseconds per call using the CPU measured while it ran."""
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    areas: Counter[str] = Counter()
    total = other_threads = 0
    for line in folded.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_function(f) for f in stack.split(";") if f.strip()]
        if not frames:
            continue
        if any(f.startswith("Thread._bootstrap") or "_bootstrap (threading" in f for f in frames):
            other_threads += count  # helper threads: idle waits counted as busy by py-spy
            continue
        total += count
        leaf = frames[-1]
        self_time[leaf] += count
        areas[_area(leaf)] += count
        for func in set(frames):
            if not func.startswith(_RUN_LOOP) and not any(s in func for s in _SKIP_INCLUSIVE):
                inclusive[func] += count
    if total == 0:
        return "profile: no samples"

    def row(n: int, what: str) -> str:
        return f"  {100 * n / total:5.1f}%  {n / total * us_per_call:6.1f} us  {what}"

    lines = [
        f"### laneway profile under h2load: {total} samples of the main thread "
        f"({other_threads} of helper threads left out), laneway CPU {us_per_call:.0f} us/call "
        "while profiled (py-spy --nonblocking; idle time is not sampled)",
        "",
        "self time by area (share, us per call):",
    ]
    lines += [row(n, area) for area, n in areas.most_common()]
    lines += ["", f"top {top} functions by self time:"]
    lines += [row(n, func) for func, n in self_time.most_common(top)]
    lines += ["", f"top {top} functions by inclusive time (run loop and CLI frames left out):"]
    lines += [row(n, func) for func, n in inclusive.most_common(top)]
    return "\n".join(lines)


# -- report ------------------------------------------------------------------------------------


def _ratio(value: float, base: float) -> str:
    return f"{value / base:.2f}x" if base > 0 and value == value else "-"


def report(results: dict[str, TargetResult], args: argparse.Namespace, load: list[str]) -> str:
    base, base99 = results["direct"].pct(50), results["direct"].pct(99)
    n_added = results["nginx"].pct(50) - base
    n_cpu = results["nginx"].load_cpu.total.get("nginx", 0.0)
    n_seq_cpu = results["nginx"].seq_cpu.total.get("nginx", 0.0)
    n_rate = results["nginx"].load.rate
    calls = len(results["direct"].latencies_ns)
    out = [
        f"laneway code: {code_state()}; "
        f"load average (1/5/15 min): {load[0]} at start, {load[1]} after the sequential phase, "
        f"{load[2]} at end; upstream: {args.upstream}; sequential: {calls} calls per target "
        f"in {args.rounds} interleaved rounds (+{args.warmup} warm-up); h2load: -c {args.conns} "
        f"-m {args.streams} -t 1, {args.load_rounds} rounds of {args.load_seconds:g} s per target; "
        + (
            f"pinned: proxies on CPU {PROXY_CPU}, client and upstream on CPU {LOADGEN_CPU}"
            if args.pin
            else "not pinned"
        ),
        "",
        "Sequential (grpcio client, one call at a time on one channel):",
        "",
        "| target | p50 us | p90 us | p99 us | added p50 | added p99 | added p50 vs nginx | "
        "proxy CPU us/call, sys share | CPU vs nginx |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        p50, p90, p99 = r.pct(50), r.pct(90), r.pct(99)
        if name == "direct":
            out.append(f"| {name} | {p50:.0f} | {p90:.0f} | {p99:.0f} | - | - | - | - | - |")
            continue
        added = p50 - base
        cpu = r.seq_cpu.total.get(name, 0.0)
        out.append(
            f"| {name} | {p50:.0f} | {p90:.0f} | {p99:.0f} | {added:.0f} | {p99 - base99:.0f} | "
            f"{_ratio(added, n_added)} | {r.seq_cpu.text(name)} | {_ratio(cpu, n_seq_cpu)} |"
        )
    out += [
        "",
        "Throughput (h2load):",
        "",
        "| target | calls/s | vs nginx | proxy CPU us/call, sys share | CPU vs nginx | "
        "calls per proxy CPU-second | upstream CPU us/call |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        cpu = r.load_cpu.total.get(name, 0.0) if name != "direct" else 0.0
        out.append(
            f"| {name} | {r.load.rate:,.0f} | {_ratio(r.load.rate, n_rate)} | "
            f"{r.load_cpu.text(name) if name != 'direct' else '-'} | "
            f"{_ratio(cpu, n_cpu) if cpu else '-'} | {f'{1e6 / cpu:,.0f}' if cpu else '-'} | "
            f"{r.load_cpu.total.get('upstream', 0.0):.0f} |"
        )
    out += [
        "",
        "CPU: utime+stime from /proc/PID/stat over the target's own segments, per call "
        "(nginx: master + worker; sys = stime share; clock-tick resolution).",
    ]
    if "laneway" in results and n_added > 0 and n_cpu > 0:
        l_added = results["laneway"].pct(50) - base
        l_cpu = results["laneway"].load_cpu.total.get("laneway", 0.0)
        for what, mine, theirs, unit in (
            ("CPU per call under h2load", l_cpu, n_cpu, "us"),
            ("added p50", l_added, n_added, "us"),
        ):
            verdict = "MET" if mine <= 3 * theirs else "NOT MET"
            out.append(
                f"Target (laneway {what} <= 3x nginx's): laneway {mine:.0f} {unit}, nginx "
                f"{theirs:.0f} {unit}: {mine / theirs:.2f}x, {verdict}"
            )
    return "\n".join(out)


def laneway_errors(path: Path) -> str:
    """What laneway logged on stderr (one line per failed call), counted by kind."""
    if not path.exists():
        return ""
    kinds: Counter[str] = Counter()
    for line in path.read_text(errors="replace").splitlines():
        text = line.strip()
        if text.startswith("{"):  # a JSON log record: its message and status
            with contextlib.suppress(ValueError, AttributeError):
                record = json.loads(text)
                text = f"{record.get('level', '')}: {record.get('msg', text)}"
        if text:
            kinds[re.sub(r"\d+\.\d+\.\d+\.\d+:\d+", "ADDR", text)] += 1
    if not kinds:
        return ""
    lines = [f"laneway's stderr ({sum(kinds.values())} lines):"]
    lines += [f"  {n:6d}  {kind[:160]}" for kind, n in kinds.most_common(8)]
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="End-to-end gRPC benchmark (issue 6).")
    p.add_argument("--upstream", choices=("static", "grpcio"), default="static")
    p.add_argument("--seq-calls", type=int, default=5000, help="sequential calls per target")
    p.add_argument("--rounds", type=int, default=5, help="interleaved sequential rounds")
    p.add_argument("--warmup", type=int, default=1000, help="sequential warm-up calls")
    p.add_argument("--seq-seconds", type=float, default=180.0, help="sequential time bound")
    p.add_argument("--conns", type=int, default=4, help="h2load connections (-c)")
    p.add_argument("--streams", type=int, default=16, help="h2load streams per connection (-m)")
    p.add_argument("--load-seconds", type=float, default=4.0, help="h2load -D per round")
    p.add_argument("--load-rounds", type=int, default=2)
    p.add_argument("--load-warmup", type=int, default=3000, help="h2load warm-up calls")
    p.add_argument("--targets", nargs="+", choices=TARGETS, default=list(TARGETS))
    p.add_argument("--profile", type=float, default=0.0, help="py-spy seconds (0: off)")
    p.add_argument("--profile-rate", type=int, default=250)
    p.add_argument("--profile-top", type=int, default=25)
    p.add_argument(
        "--pin",
        action="store_true",
        help=f"pin every proxy to CPU {PROXY_CPU}, the client and upstream to CPU {LOADGEN_CPU}",
    )
    p.add_argument("--json", type=Path, help="also write the raw numbers here")
    p.add_argument("--keep", action="store_true", help="keep the work dir (logs, profile)")
    args = p.parse_args(argv)
    for needed in ("direct", "nginx"):
        if needed not in args.targets:
            p.error(f"--targets must include {needed} (every ratio is taken against it)")
    if args.profile > 0 and "laneway" not in args.targets:
        p.error("--profile needs the laneway target")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        say(f"laneway runs: {native_state()}")  # (refuses a stale build before measuring)
    except BenchError as exc:
        say(f"failed: {exc}")
        return 1
    workdir = Path(tempfile.mkdtemp(prefix="laneway-grpc-"))
    workdir.chmod(0o755)  # nginx workers run as www-data and read the static responses
    fleet = Fleet(workdir)
    load = [loadavg()]
    profile = ""
    try:
        addresses = start_all(args, fleet)
        results = run(args, fleet, addresses)
        load.append(loadavg())
        if args.profile > 0:
            profile = profile_laneway(args, fleet, addresses["laneway"])
        load.append(loadavg())
    except BenchError as exc:
        say(f"failed: {exc}")
        return 1
    finally:
        fleet.stop_all()
        errors = laneway_errors(workdir / "laneway.err")
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    if len(load) == 2:
        load.append(load[1])
    print(report(results, args, load))
    if errors:
        print()
        print(errors)
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
                "load": asdict(r.load),
                "load_cpu_us_per_call": asdict(r.load_cpu),
            }
            for name, r in results.items()
        }
        args.json.write_text(json.dumps({"load": load, "results": data}, indent=2))
    if args.keep:
        say(f"work dir kept: {workdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
