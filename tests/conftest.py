"""Session-wide guard: never test a stale mypyc build of the HTTP/2 codec.

A compiled module shadows its ``.py`` at import (``proxy/native.py``); after an edit to a
codec source, the old build would run instead of the edited code. ``make test`` rebuilds
first; a bare ``pytest`` run on stale modules stops here and says what to do.
"""

from __future__ import annotations

import pytest

from proxy import native


def pytest_sessionstart(session: pytest.Session) -> None:
    if native.stale():
        pytest.exit(
            "the compiled HTTP/2 codec is older than its sources: run `make native` "
            "(or `.venv/bin/python -m proxy.native --clean` to test the pure-Python codec)",
            returncode=3,
        )
