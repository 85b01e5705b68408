"""The outbound HPACK encoder against hpack's decoder (an independent implementation)."""

from __future__ import annotations

from hpack import Decoder
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.codecs.grpc.hpack_out import IndexingEncoder

_names = st.sampled_from(
    [b":path", b":status", b"content-type", b"x-env", b"grpc-timeout", b"authorization",
     b"te", b"user-agent", b"x-a", b"x-much-longer-custom-name"]
)  # fmt: skip
_values = st.binary(min_size=0, max_size=300).filter(lambda v: b"\r" not in v)
_blocks = st.lists(st.lists(st.tuples(_names, _values), max_size=12), min_size=1, max_size=12)


@settings(max_examples=200, deadline=None)
@given(_blocks, st.lists(st.sampled_from([0, 64, 256, 4096, 100_000]), max_size=3))
def test_encoder_round_trips_through_hpack(
    blocks: list[list[tuple[bytes, bytes]]], sizes: list[int]
) -> None:
    """Every block decodes to the same list, whatever the table size changes (RFC 7541 §4.2)."""
    encoder = IndexingEncoder()
    decoder = Decoder()
    for i, block in enumerate(blocks):
        if i < len(sizes):
            encoder.set_max_size(sizes[i])
            decoder.max_allowed_table_size = min(sizes[i], 4096)
        assert decoder.decode(encoder.encode(block), raw=True) == block


def test_repeated_fields_become_indexed() -> None:
    """The second time a header list is sent, each field is a one-byte index."""
    encoder = IndexingEncoder()
    fields = [(b":status", b"200"), (b"content-type", b"application/grpc"), (b"x-env", b"dev")]
    first = encoder.encode(fields)
    second = encoder.encode(fields)
    assert len(second) == 3 < len(first)


def test_volatile_and_secret_fields_are_not_indexed() -> None:
    """grpc-timeout is sent without indexing, authorization never indexed (§7.1.3)."""
    encoder = IndexingEncoder()
    block = encoder.encode([(b"grpc-timeout", b"5S"), (b"authorization", b"Bearer x")])
    assert block[0] == 0x00
    assert encoder.encode([(b"authorization", b"Bearer x")])[0] & 0xF0 == 0x10
    assert encoder._size == 0


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.lists(st.tuples(_names, _values), max_size=6), min_size=1, max_size=4),
    st.lists(st.tuples(st.integers(0, 3), st.sampled_from([None, 0, 64, 256, 4096])), max_size=30),
)
def test_remembered_tuples_stay_correct_as_the_table_moves(
    pool: list[list[tuple[bytes, bytes]]], steps: list[tuple[int, int | None]]
) -> None:
    """The same tuple objects sent again and again (answered from the encoder's memo while
    the table is still), interleaved with table size changes: every block still decodes
    to its fields through hpack."""
    tuples = [tuple(fields) for fields in pool]
    encoder = IndexingEncoder()
    decoder = Decoder()
    for which, size in steps:
        if size is not None:
            encoder.set_max_size(size)
            decoder.max_allowed_table_size = min(size, 4096)
        fields = tuples[which % len(tuples)]
        assert decoder.decode(encoder.encode(fields), raw=True) == list(fields)


def test_a_repeated_tuple_is_answered_from_the_memo_until_an_insertion() -> None:
    encoder = IndexingEncoder()
    decoder = Decoder()
    response = ((b":status", b"200"), (b"content-type", b"application/grpc"))
    first = encoder.encode(response)  # inserts content-type
    second = encoder.encode(response)  # all indexed now: remembered
    assert encoder.encode(response) is second != first
    other = encoder.encode(((b"x-new", b"1"),))  # an insertion shifts the dynamic indexes
    third = encoder.encode(response)
    assert third != second
    for block in (first, second, second, other, third):
        decoder.decode(block, raw=True)
    assert decoder.decode(third, raw=True) == list(response)
