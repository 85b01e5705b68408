"""Structured logging: one JSON object per line off a terminal, one readable line on it.

Call-level records carry their fields in ``extra={"fields": {...}}`` (trace id, env, lane,
status...); both formatters print them. Every record is exactly one line: newlines inside a
message are escaped, so one failed call is one line to grep (``laneway.calls``), and an
optional access log (``laneway.access``) writes one line per call.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import TextIO

ROOT = "laneway"
ACCESS = "laneway.access"


def _fields(record: logging.LogRecord) -> dict[str, object]:
    fields = getattr(record, "fields", None)
    return dict(fields) if isinstance(fields, dict) else {}


class JsonFormatter(logging.Formatter):
    """``{"ts": ..., "level": ..., "logger": ..., "msg": ..., <fields>}`` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        doc.update(_fields(record))
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """``12:00:01.123 WARNING laneway.calls  msg  key=value ...`` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        clock = time.strftime("%H:%M:%S", time.localtime(record.created))
        head = f"{clock}.{int(record.msecs):03d} {record.levelname:<7} {record.name}"
        text = record.getMessage()
        if record.exc_info:
            text += " | " + self.formatException(record.exc_info)
        extras = " ".join(f"{k}={v}" for k, v in _fields(record).items() if v not in ("", None))
        line = f"{head}  {text}" + (f"  {extras}" if extras else "")
        return line.replace("\r", "").replace("\n", " | ")


def configure(
    *,
    stream: TextIO | None = None,
    json_output: bool | None = None,
    level: int = logging.INFO,
) -> logging.Handler:
    """Send laneway's logs to ``stream`` (stderr): JSON unless it is a terminal, or as
    ``json_output`` says. Replaces a handler installed by an earlier call; returns it."""
    out = stream if stream is not None else sys.stderr
    as_json = not out.isatty() if json_output is None else json_output
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter() if as_json else TextFormatter())
    handler.set_name("laneway")
    logger = logging.getLogger(ROOT)
    for old in [h for h in logger.handlers if h.get_name() == "laneway"]:
        logger.removeHandler(old)
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    return handler
