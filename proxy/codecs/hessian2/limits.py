"""Decoder limits: each a named constant with the reason it exists (DESIGN.md §7, TESTS.md §8)."""

from __future__ import annotations

from dataclasses import dataclass

#: Nesting of lists, maps and objects. Real payloads nest < 20; a 10,000-deep list bomb
#: (TESTS.md D6) must fail fast instead of exhausting the Python stack. protobuf uses 100.
MAX_DEPTH = 64

#: Class definitions per stream. Each costs a table entry that lives as long as the stream;
#: real Dubbo bodies carry a handful.
MAX_CLASS_DEFS = 256

#: Fields per class definition. Generated Java beans reach a few hundred; more is abuse.
MAX_CLASS_FIELDS = 4096

#: Type names (typed lists/maps) per stream; same reasoning as class definitions.
MAX_TYPES = 1024


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-decoder limits. Declared lengths are never trusted: nothing is allocated for a
    length before the bytes it announces are there (a count must fit the bytes left)."""

    max_depth: int = MAX_DEPTH
    max_class_defs: int = MAX_CLASS_DEFS
    max_class_fields: int = MAX_CLASS_FIELDS
    max_types: int = MAX_TYPES


DEFAULT_LIMITS = Limits()
