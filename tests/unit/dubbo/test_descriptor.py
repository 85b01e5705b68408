"""Counting arguments from a JVM parameter-types descriptor."""

from __future__ import annotations

import pytest

from proxy.codecs.dubbo import DescriptorError, count_parameters


@pytest.mark.parametrize(
    ("descriptor", "count"),
    [
        ("", 0),
        ("I", 1),
        ("Ljava/lang/String;", 1),
        ("Ljava/lang/String;I[J", 3),
        ("[[Ljava/lang/Object;Z", 2),
        ("Ljava/lang/String;[Ljava/lang/String;[Ljava/lang/Object;", 3),  # $invoke
        ("ZBCSIJFD", 8),
    ],
)
def test_counts(descriptor: str, count: int) -> None:
    assert count_parameters(descriptor) == count


@pytest.mark.parametrize(
    "descriptor", ["Q", "Ljava/lang/String", "[", "L;", "I ", "java.lang.String"]
)
def test_malformed(descriptor: str) -> None:
    with pytest.raises(DescriptorError):
        count_parameters(descriptor)
