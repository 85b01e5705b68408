"""The HPACK decode memo returns exactly what a fresh decoder would, block after block."""

from __future__ import annotations

from collections.abc import Iterable

import hpack
from hpack.hpack import encode_integer
from hyperframe.frame import RstStreamFrame
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.codecs.grpc import events as ev
from proxy.codecs.grpc import headers as hd
from proxy.codecs.grpc.errors import ErrorCode
from proxy.codecs.grpc.hpack_in import (
    MAX_MEMO_BLOCK_BYTES,
    MAX_MEMO_BLOCKS,
    MAX_MEMO_DECODED_BYTES,
    HeaderDecoder,
)
from tests.unit.h2.helpers import REQUEST, server
from tests.unit.h2.test_hpack_in import nginx_block

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
    memo = HeaderDecoder()
    blocks = [encoder.encode(h, huffman=huff) for h in lists]
    # Replay every block twice: the second time the memo may answer.
    for block in blocks + blocks:
        assert list(memo.decode(block)) == _raw(plain.decode(block, raw=True))
        assert memo.dynamic_entries == tuple(plain.header_table.dynamic_entries)


def test_repeated_indexed_blocks_hit_the_memo() -> None:
    encoder = hpack.Encoder()
    memo = HeaderDecoder()
    headers = [(b":path", b"/demo.Greeter/Hello"), (b"x-env", b"feature-1")]
    first = encoder.encode(headers)  # literals with incremental indexing
    again = encoder.encode(headers)  # now fully indexed: dynamic references
    assert list(memo.decode(first)) == headers
    for _ in range(5):
        assert list(memo.decode(again)) == headers
    assert memo.hits == 4


def test_a_table_change_invalidates_the_memo() -> None:
    encoder = hpack.Encoder()
    plain = hpack.Decoder()
    memo = HeaderDecoder()

    def both(block: bytes) -> list[tuple[bytes, bytes]]:
        got = list(memo.decode(block))
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


def test_an_inserting_block_is_replayed_from_any_table_state() -> None:
    """A block with incremental indexing and no dynamic reference, decoded twice from
    different table states: right fields, and the table as a fresh decode leaves it."""
    response = nginx_block([(b":status", b"200"), (b"server", b"nginx/1.22.1")])
    other = nginx_block([(b"x-other", b"o" * 100)])
    memo = HeaderDecoder()
    plain = hpack.Decoder()
    for block in (response, other, other, response):
        assert list(memo.decode(block)) == _raw(plain.decode(block, raw=True))
        assert memo.dynamic_entries == tuple(plain.header_table.dynamic_entries)
        assert memo.table_size == plain.header_table._current_size
    assert memo.hits == 2
    assert memo.dynamic_entries[:2] == ((b"server", b"nginx/1.22.1"), (b":status", b"200"))


def test_a_referencing_and_inserting_block_is_never_remembered() -> None:
    """Index 62 then an insert: what the block means depends on the table and changes it,
    so each arrival is decoded afresh (the same bytes name a new entry every time)."""
    memo = HeaderDecoder()
    memo.decode(nginx_block([(b"x-n", b"0")]))
    block = b"\xbe" + nginx_block([(b"x-n", b"1")])
    assert memo.decode(block) == ((b"x-n", b"0"), (b"x-n", b"1"))
    assert memo.decode(block) == ((b"x-n", b"1"), (b"x-n", b"1"))
    assert memo.last_memo is None and memo.hits == 0


def test_the_memo_is_bounded() -> None:
    memo = HeaderDecoder()
    for i in range(MAX_MEMO_BLOCKS + 10):  # literals without indexing: all remembered
        assert memo.decode(b"\x00\x01a\x02" + i.to_bytes(2, "big"))[0][1] == i.to_bytes(2, "big")
        assert len(memo._memo) <= MAX_MEMO_BLOCKS
    value = b"v" * MAX_MEMO_BLOCK_BYTES
    length = encode_integer(len(value), 7)
    big = b"\x00\x01b" + bytes(length) + value
    assert memo.decode(big) == ((b"b", value),)
    assert big not in memo._memo and memo.last_memo is None
    # Small blocks that expand (indexes of one big entry) count by their decoded size.
    memo = HeaderDecoder()
    memo.decode(nginx_block([(b"x-big", b"v" * 3000)], huffman=False))
    for n in range(1, 200):
        memo.decode(b"\xbe" * (n % 15 + 1) + b"\x82" * (n // 15))
        assert memo._memo_bytes <= MAX_MEMO_DECODED_BYTES
        assert memo._memo_bytes == sum(entry.size for entry in memo._memo.values())
    assert memo.hits == 0 and len(memo._memo) < 100


def test_a_malformed_block_from_the_memo_is_rejected_every_time() -> None:
    """Validation results are remembered only for lists that pass: an uppercase name in a
    remembered block is a stream error on every stream that sends it, with its own id."""
    peer = server()
    bad = [*REQUEST, (b"X-Env", b"feature-1")]
    good = [*REQUEST, (b"x-env", b"feature-1")]
    for sid in (1, 3, 5, 7):
        peer.feed(peer.f.headers(sid, bad, end_stream=True))
        resets = [f for f in peer.out() if isinstance(f, RstStreamFrame)]
        assert [(f.stream_id, f.error_code) for f in resets] == [(sid, ErrorCode.PROTOCOL_ERROR)]
    assert peer.conn._decoder.hits >= 2
    hits = peer.conn._decoder.hits
    for sid in (9, 11, 13, 15):
        events = peer.feed(peer.f.headers(sid, good, end_stream=True))
        received = [e for e in events if isinstance(e, ev.RequestReceived)]
        assert [(e.stream_id, list(e.headers)) for e in received] == [(sid, good)]
    assert peer.conn._decoder.hits >= hits + 2
    last = peer.conn._decoder.last_memo
    assert last is not None and last.checks == {hd.REQUEST: None}  # passed: remembered
