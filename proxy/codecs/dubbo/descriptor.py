"""Counting the arguments of a request from its JVM parameter-types descriptor.

A Dubbo request names its parameter types in JVM descriptor form (``Ljava/lang/String;I[J``,
``""`` for none). laneway never resolves the names: it only needs the count, to know how many
Hessian values to skip before the attachments map.
"""

from __future__ import annotations

import functools

#: JVM primitive type letters (boolean, byte, char, short, int, long, float, double, void).
_PRIMITIVES = frozenset("ZBCSIJFDV")


class DescriptorError(ValueError):
    """The descriptor is not a sequence of JVM field types."""


@functools.lru_cache(maxsize=1024)  # a service has a few dozen distinct signatures
def count_parameters(descriptor: str) -> int:
    """Number of types in ``descriptor``; raises :class:`DescriptorError` when malformed."""
    count = 0
    index = 0
    length = len(descriptor)
    while index < length:
        char = descriptor[index]
        while char == "[":
            index += 1
            if index == length:
                raise DescriptorError(f"array type without element type in {descriptor!r}")
            char = descriptor[index]
        if char == "L":
            end = descriptor.find(";", index + 1)
            if end <= index + 1:
                raise DescriptorError(f"unterminated class type in {descriptor!r}")
            index = end + 1
        elif char in _PRIMITIVES:
            index += 1
        else:
            raise DescriptorError(f"bad type letter {char!r} in {descriptor!r}")
        count += 1
    return count
