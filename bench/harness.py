"""Plumbing shared by the end-to-end benchmarks (``bench/e2e_dubbo.py``, ``bench/e2e_grpc.py``)."""

from __future__ import annotations

import re
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

READY_TIMEOUT = 30.0
# why: a cold process on a busy 2-core machine can take seconds to print its ready line.


class BenchError(RuntimeError):
    """The benchmark could not run (a process did not start, a call failed)."""


def wait_ready_line(proc: subprocess.Popen[bytes], out: Path, pattern: str, name: str) -> str:
    regex = re.compile(pattern)
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        match = regex.search(out.read_text(errors="replace"))
        if match:
            return match.group(1)
        if proc.poll() is not None:
            break
        time.sleep(0.02)
    raise BenchError(f"{name} did not start; its output is in {out.parent}")


def rotated(items: Sequence[str], k: int) -> list[str]:
    k %= len(items)
    return [*items[k:], *items[:k]]


def drain(sock: socket.socket) -> bytes:
    """Everything a non-blocking socket holds now (the relay micro-benchmarks read the
    proxy's output this way: no event loop, no waiting)."""
    chunks = []
    while True:
        try:
            chunks.append(sock.recv(1 << 20))
        except BlockingIOError:
            return b"".join(chunks)


def native_state() -> str:
    """Whether the laneway measured runs the mypyc build (``proxy/native.py``); refuses a
    stale build, which would measure old code."""
    from proxy import native

    if native.stale():
        raise BenchError("the compiled modules are older than their sources: run `make native`")
    files = native.built()
    return f"native build ({len(native.MODULES)} modules)" if files else "interpreted"
