from __future__ import annotations

import subprocess
import sys

from proxy import __version__


def test_version_command() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "proxy", "version"],
        check=True,
        capture_output=True,
        text=True,
    )
    assert out.stdout.strip() == f"laneway {__version__}"


def test_help_lists_commands() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "proxy", "--help"],
        check=True,
        capture_output=True,
        text=True,
    )
    assert "version" in out.stdout
