"""The HPACK decode memo returns exactly what a fresh decoder would, block after block."""

from __future__ import annotations

from collections.abc import Iterable

import hpack
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.codecs.grpc.hpack_in import DecodeMemo, table_neutral

NAMES = st.sampled_from([b"x-env", b"baggage", b"grpc-timeout", b"te", b"x-user", b":path"])
VALUES = st.binary(min_size=0, max_size=20)
HEADER_LISTS = st.lists(st.lists(st.tuples(NAMES, VALUES), min_size=1, max_size=6), max_size=25)


def _raw(headers: Iterable[tuple[bytes | str, bytes | str]]) -> list[tuple[bytes, bytes]]:
    out = []
    for n, v in headers:
        assert isinstance(n, bytes) and isinstance(v, bytes)  # raw=True decodes to bytes
        out.append((n, v))
    return out


@settings(max_examples=200, deadline=None)
@given(HEADER_LISTS, st.booleans())
def test_memo_matches_a_plain_decoder(lists: list[list[tuple[bytes, bytes]]], huff: bool) -> None:
    """D11-style property: identical output whatever mix of indexing the blocks use."""
    encoder = hpack.Encoder()
    plain = hpack.Decoder()
    mirror = hpack.Decoder()
    memo = DecodeMemo(lambda block: _raw(mirror.decode(block, raw=True)))
    blocks = [encoder.encode(h, huffman=huff) for h in lists]
    # Replay every block twice: the second time the memo may answer.
    for block in blocks + blocks:
        assert memo.decode(block) == _raw(plain.decode(block, raw=True))


def test_repeated_indexed_blocks_hit_the_memo() -> None:
    encoder = hpack.Encoder()
    decoder = hpack.Decoder()
    memo = DecodeMemo(lambda block: _raw(decoder.decode(block, raw=True)))
    headers = [(b":path", b"/demo.Greeter/Hello"), (b"x-env", b"feature-1")]
    first = encoder.encode(headers)  # literals with incremental indexing
    assert not table_neutral(first)
    again = encoder.encode(headers)  # now fully indexed
    assert table_neutral(again)
    assert memo.decode(first) == headers
    for _ in range(5):
        assert memo.decode(again) == headers
    assert memo.hits == 4


def test_a_table_change_invalidates_the_memo() -> None:
    encoder = hpack.Encoder()
    decoder = hpack.Decoder()
    plain = hpack.Decoder()
    memo = DecodeMemo(lambda block: _raw(decoder.decode(block, raw=True)))

    def both(block: bytes) -> list[tuple[bytes, bytes]]:
        got = memo.decode(block)
        assert got == _raw(plain.decode(block, raw=True))
        return got

    a = [(b"x-env", b"a")]
    both(encoder.encode(a))
    indexed = encoder.encode(a)
    both(indexed)
    both(indexed)
    assert memo.hits == 1
    both(encoder.encode([(b"x-user", b"new")]))  # an insertion: the epoch moves
    # The same bytes now name the newer entry (dynamic index 62): the memo must not answer
    # with what they meant before.
    assert both(indexed) == [(b"x-user", b"new")]
    assert memo.hits == 1


def test_truncated_or_odd_blocks_are_not_called_neutral() -> None:
    assert not table_neutral(b"\x00\x05ab")  # string longer than the block
    assert not table_neutral(b"\xff")  # integer cut short
    assert not table_neutral(b"\x20")  # size update
    assert table_neutral(b"\x82\x86")  # two static indexed fields
