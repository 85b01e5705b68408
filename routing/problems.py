"""Problems found in a routes file, each pinned to ``file:line:col``.

A loader never stops at the first problem: it collects them all and raises one
``RoutesError`` carrying every error (and the warnings seen on the way), so ``laneway
check`` reports everything in one run and a proxy reload can log exactly why the old table
stays live.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Severity(enum.StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Problem:
    """One error or warning. ``line`` and ``col`` are 1-based, as editors count."""

    file: str
    line: int
    col: int
    severity: Severity
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}: {self.severity.value}: {self.message}"

    def to_dict(self) -> dict[str, str | int]:
        return {
            "file": self.file,
            "line": self.line,
            "col": self.col,
            "severity": self.severity.value,
            "message": self.message,
        }


class RoutesError(Exception):
    """A routes (or providers) file was rejected. ``errors`` is never empty."""

    def __init__(self, errors: tuple[Problem, ...], warnings: tuple[Problem, ...] = ()) -> None:
        assert errors, "RoutesError needs at least one error"
        super().__init__("\n".join(str(p) for p in errors))
        self.errors = errors
        self.warnings = warnings
