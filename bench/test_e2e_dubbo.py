"""A smoke run of the end-to-end Dubbo benchmark (``bench/e2e_dubbo.py``) with small counts.

Not part of ``make test`` (pytest's testpaths is ``tests/``) and skipped by ``make bench``
(``--benchmark-only`` skips tests without the benchmark fixture). Run it on purpose:
``.venv/bin/pytest -q -m slow bench/test_e2e_dubbo.py``. It checks that the whole fleet
starts, answers through every target, and stops; the numbers it prints are not results
(too few calls): ``make bench-e2e`` gives those.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench.e2e_dubbo import TARGETS

ROOT = Path(__file__).resolve().parent.parent
SMOKE_TIMEOUT = 300
# why: the smoke run takes ~20 s on an idle 2-core machine; the bound only catches a hang.

pytestmark = pytest.mark.slow


def test_e2e_dubbo_smoke(tmp_path: Path) -> None:
    # A missing yardstick fails the run loudly; it is never skipped.
    assert shutil.which("haproxy") or Path("/usr/sbin/haproxy").exists(), (
        "haproxy is not installed: run `make bench-deps`"
    )
    out = tmp_path / "e2e.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.e2e_dubbo",
            "--seq-calls",
            "400",
            "--rounds",
            "2",
            "--warmup",
            "100",
            "--pipe-seconds",
            "1",
            "--pipe-rounds",
            "1",
            "--pipe-warmup",
            "200",
            "--json",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        timeout=SMOKE_TIMEOUT,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    results = json.loads(out.read_text())["results"]
    assert set(results) == set(TARGETS)
    for name, r in results.items():
        assert r["p50_us"] > 0, name
        assert r["pipe"]["calls"] > 0, name
        assert r["pipe"]["errors"] == 0, name
    assert b"Target (laneway added p50" in proc.stdout
