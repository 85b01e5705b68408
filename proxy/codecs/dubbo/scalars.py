"""Which Hessian 2 values can be cut out of, or written into, a stream on their own.

A value is *self-contained* when it neither defines nor uses stream-wide state: null, booleans,
numbers, dates, strings and binaries. Lists, maps and objects take a slot in the value-ref
table, objects need class definitions and typed values may use the type table; moving such a
value would renumber what comes after it. The attachments rewrite only ever removes or adds
self-contained values, so the rest of the stream keeps its meaning byte for byte.
"""

from __future__ import annotations

from collections.abc import Iterable


def _ranges(*spans: tuple[int, int]) -> Iterable[int]:
    for low, high in spans:
        yield from range(low, high + 1)


#: First bytes of self-contained values (Hessian 2.0 grammar).
SCALAR_TAGS: frozenset[int] = frozenset(
    _ranges(
        (0x00, 0x1F),  # compact string
        (0x20, 0x2F),  # compact binary
        (0x30, 0x33),  # medium string
        (0x34, 0x37),  # medium binary
        (0x38, 0x3F),  # 3-byte long
        (0x41, 0x42),  # binary chunks 'A', 'B'
        (0x44, 0x44),  # 'D' double
        (0x46, 0x46),  # 'F' false
        (0x49, 0x49),  # 'I' int
        (0x4A, 0x4B),  # dates
        (0x4C, 0x4C),  # 'L' long
        (0x4E, 0x4E),  # 'N' null
        (0x52, 0x53),  # string chunks 'R', 'S'
        (0x54, 0x54),  # 'T' true
        (0x59, 0x59),  # 32-bit long
        (0x5B, 0x5F),  # compact doubles
        (0x80, 0xFF),  # compact ints and longs
    )
)

#: Python types the attachments rewrite may write (they encode to self-contained values).
SCALAR_TYPES: tuple[type, ...] = (str, bool, int, float, bytes, type(None))
