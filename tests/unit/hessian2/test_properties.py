"""Property tests (TESTS.md D11): 200 examples each.

- ``decode(any bytes)`` (and ``skip``) raise only ``DecodeError``;
- ``decode(encode(v)) == v`` and encoding is canonical (``encode(decode(b)) == b``);
- in a stream, any value decodes the same whether the values before it were read or skipped
  (references into skipped values included).
"""

from __future__ import annotations

import contextlib
import math
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.codecs.hessian2 import (
    DecodeError,
    Decoder,
    Encoder,
    HessianDate,
    HessianList,
    HessianLong,
    HessianMap,
    HessianObject,
    decode,
    encode,
)

EXAMPLES = settings(max_examples=200, deadline=None)

INT32 = st.integers(-(2**31), 2**31 - 1)
INT64 = st.integers(-(2**63), 2**63 - 1)
# Strings without surrogate code points: Python cannot tell a joined pair from two halves.
TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=40) | st.sampled_from(
    ["", "x" * 40_000, "中" * 33_000, "\U0001f600" * 17_000, "a" * 0x7FFF + "\U0001f600"]
)
TYPE_NAMES = st.sampled_from(["[int", "[string", "java.util.ArrayList", "com.example.Pojo", "[B"])
KEYS = st.none() | st.booleans() | INT32 | st.text(max_size=8, alphabet="abcxyz中")

SCALARS = (
    st.none()
    | st.booleans()
    | INT32
    | INT64.map(HessianLong)
    | st.floats(allow_nan=False)
    | st.sampled_from([0.0, 1.0, -128.0, 32767.0, 12.25, 0.001, 2147483.647, 1e300, math.inf])
    | INT64.map(HessianDate)
    | TEXT
    | st.binary(max_size=40)
    | st.sampled_from([b"\x01" * 5000, b""])
)


def _objects(children: st.SearchStrategy[Any]) -> st.SearchStrategy[HessianObject]:
    fields = st.lists(st.sampled_from(["a", "b", "name", "cause", "中"]), unique=True, max_size=4)
    return st.builds(
        lambda type_name, names, values: HessianObject(type_name, zip(names, values, strict=False)),
        st.sampled_from(["example.Car", "com.x.Pojo", "java.lang.Runtime"]),
        fields,
        st.lists(children, min_size=4, max_size=4),
    )


VALUES = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=9)
        | st.builds(HessianList, TYPE_NAMES, st.lists(children, max_size=9))
        | st.dictionaries(KEYS, children, max_size=5)
        | st.builds(
            HessianMap,
            st.sampled_from(["java.util.LinkedHashMap", "java.util.TreeMap"]),
            st.dictionaries(KEYS, children, max_size=5),
        )
        | _objects(children)
    ),
    max_leaves=25,
)


@EXAMPLES
@given(st.binary(max_size=200))
def test_decode_any_bytes_raises_only_decode_error(data: bytes) -> None:
    for action in (decode, lambda d: Decoder(d).skip(), lambda d: Decoder(d).read_string()):
        with contextlib.suppress(DecodeError):
            action(data)


@EXAMPLES
@given(VALUES, st.binary(max_size=8), st.integers(0, 400))
def test_mutated_valid_streams_raise_only_decode_error(value: Any, junk: bytes, at: int) -> None:
    wire = encode(value)
    at = min(at, len(wire))
    for data in (wire[:at] + junk + wire[at:], wire[:at] + junk, wire[:at] + wire[at + 1 :]):
        dec = Decoder(data)
        with contextlib.suppress(DecodeError):
            while not dec.at_end():
                dec.read()
        with contextlib.suppress(DecodeError):
            Decoder(data).skip()


@EXAMPLES
@given(VALUES)
def test_round_trip(value: Any) -> None:
    wire = encode(value)
    got = decode(wire)
    assert got == value
    assert encode(got) == wire  # canonical: what we decode, we write back byte for byte
    skipper = Decoder(wire)
    skipper.skip()
    assert skipper.at_end()


@EXAMPLES
@given(st.lists(VALUES, min_size=1, max_size=6), st.data())
def test_skip_then_read_equals_read(values: list[Any], data: st.DataObject) -> None:
    """Values after skipped ones decode identically, even when they refer into skipped ones."""
    # Repeat some earlier containers by identity: the encoder writes them as references.
    containers = [v for v in values if isinstance(v, list | dict | HessianObject)]
    if containers:
        extra = data.draw(st.lists(st.sampled_from(containers), max_size=3))
        values = values + [[c] for c in extra]
    enc = Encoder()
    for value in values:
        enc.write(value)
    wire = enc.getvalue()
    skip = data.draw(st.lists(st.booleans(), min_size=len(values), max_size=len(values)))
    dec = Decoder(wire)
    for value, skipped in zip(values, skip, strict=True):
        if skipped:
            dec.skip()
        else:
            assert dec.read() == value
    assert dec.at_end()
