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
