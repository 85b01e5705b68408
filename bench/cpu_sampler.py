"""Run ``laneway`` (``proxy.cli``) under a CPU-time sampling profiler; write folded stacks.

``setitimer(ITIMER_PROF)`` raises SIGPROF after every ``--interval`` seconds of CPU the
process uses (user + system, all threads); the handler records the Python stack the main
thread is at. Samples are therefore weighted by CPU time, never by wall time: a thread
sleeping in ``epoll_wait`` is not sampled, and time spent inside a C call (``send``,
``recv``, ``epoll.poll``) is charged to the Python line that made the call (the handler
runs as soon as the call returns). That is what the benchmark wants to know: where
laneway's CPU per call goes. py-spy (``--profiler py-spy``) samples wall-clock stacks from
outside and, on this VM, charges far more to the syscall frames than /proc's stime shows.

Sampling starts when the process receives SIGUSR1 (each SIGUSR1 starts it afresh), so
imports and warm-up stay out of the profile. trio wakes up for every signal (its wakeup
fd): at the default 2 ms of CPU per sample that is one extra scheduler pass per ~10
sequential calls, a small, known perturbation.

Output (at exit, e.g. after SIGTERM drained the proxy): one line per distinct stack,
``outer;...;inner count``, frames as ``qualname (path:line)`` — py-spy's ``raw`` format.

Run: ``.venv/bin/python -m bench.cpu_sampler --out FILE [--interval 0.002] -- serve
--config laneway.yaml``.
"""

from __future__ import annotations

import argparse
import atexit
import signal
import sys
from collections import Counter
from pathlib import Path
from types import FrameType

MAX_DEPTH = 64
# why: trio task stacks are ~20 frames deep; deeper ones are cut at the outer end.


class Sampler:
    def __init__(self, out: Path, interval: float) -> None:
        self.out = out
        self.interval = interval
        self.stacks: Counter[tuple[str, ...]] = Counter()

    def install(self) -> None:
        """Arm SIGUSR1 (start sampling) and the write at exit; sample nothing yet."""
        signal.signal(signal.SIGPROF, self._sample)
        signal.signal(signal.SIGUSR1, self._start)
        atexit.register(self.write)

    def _start(self, _signum: int, _frame: FrameType | None) -> None:
        self.stacks.clear()
        signal.setitimer(signal.ITIMER_PROF, self.interval, self.interval)

    def _sample(self, _signum: int, frame: FrameType | None) -> None:
        names: list[str] = []
        while frame is not None and len(names) < MAX_DEPTH:
            code = frame.f_code
            names.append(f"{code.co_qualname} ({code.co_filename}:{frame.f_lineno})")
            frame = frame.f_back
        names.reverse()
        self.stacks[tuple(names)] += 1

    def write(self) -> None:
        signal.setitimer(signal.ITIMER_PROF, 0, 0)
        lines = [f"{';'.join(stack)} {count}" for stack, count in self.stacks.items()]
        self.out.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, required=True, help="folded stacks go here")
    parser.add_argument("--interval", type=float, default=0.002, help="CPU seconds per sample")
    parser.add_argument("laneway_args", nargs=argparse.REMAINDER, help="-- then laneway's args")
    args = parser.parse_args(argv)
    rest = list(args.laneway_args)
    if rest[:1] == ["--"]:
        rest = rest[1:]
    Sampler(args.out, args.interval).install()
    from proxy.cli import main as laneway_main

    sys.argv = ["laneway", *rest]
    try:
        laneway_main()
    except SystemExit as exc:
        return int(exc.code or 0) if not isinstance(exc.code, str) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
