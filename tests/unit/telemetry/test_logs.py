"""Structured logs: JSON off a terminal, readable on one, always one line per record."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from proxy import logs


class FakeTty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    yield logging.getLogger("laneway.test")
    root = logging.getLogger(logs.ROOT)
    for handler in [h for h in root.handlers if h.get_name() == "laneway"]:
        root.removeHandler(handler)


def test_json_when_not_a_terminal(logger: logging.Logger) -> None:
    out = io.StringIO()
    logs.configure(stream=out)
    logger.error("boom\nsecond line", extra={"fields": {"trace_id": "ab" * 16, "env": "f-1"}})
    (line,) = out.getvalue().splitlines()
    doc = json.loads(line)
    assert doc["level"] == "error" and doc["logger"] == "laneway.test"
    assert doc["msg"] == "boom\nsecond line"  # escaped inside the one JSON line
    assert doc["trace_id"] == "ab" * 16 and doc["env"] == "f-1"
    assert doc["ts"].endswith("Z")


def test_readable_single_line_on_a_terminal(logger: logging.Logger) -> None:
    out = FakeTty()
    logs.configure(stream=out)
    logger.warning("call failed\nwhy", extra={"fields": {"env": "f-1", "lane": ""}})
    (line,) = out.getvalue().splitlines()
    assert "WARNING" in line and "laneway.test" in line
    assert "call failed | why" in line
    assert "env=f-1" in line and "lane=" not in line  # empty fields are left out


def test_configure_twice_keeps_one_handler(logger: logging.Logger) -> None:
    out = io.StringIO()
    logs.configure(stream=io.StringIO())
    logs.configure(stream=out, json_output=False)
    logger.info("once")
    assert len(out.getvalue().splitlines()) == 1
    names = [h.get_name() for h in logging.getLogger(logs.ROOT).handlers]
    assert names.count("laneway") == 1
