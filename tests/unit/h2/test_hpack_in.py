"""The lean HPACK decoder (``proxy.codecs.grpc.hpack_in``) against RFC 7541 and hpack.

hpack's own ``Encoder`` and ``Decoder`` are the independent reference: every block a
sequence produces must decode to exactly what ``hpack.Decoder`` returns and leave the same
dynamic table behind. The RFC 7541 Appendix C examples are typed from the RFC text.
"""

from __future__ import annotations

from collections.abc import Callable

import hpack
import pytest
from hpack.exceptions import HPACKDecodingError, OversizedHeaderListError
from hpack.hpack import encode_integer
from hpack.huffman import HuffmanEncoder
from hpack.huffman_constants import REQUEST_CODES, REQUEST_CODES_LENGTH
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.codecs.grpc.errors import ErrorCode, H2ConnectionError
from proxy.codecs.grpc.headers import HeaderListTooLarge
from proxy.codecs.grpc.hpack_in import (
    MAX_HUFFMAN_CACHED_BYTES,
    STATIC_TABLE,
    HeaderDecoder,
)

Field = tuple[bytes, bytes]
_HUFFMAN = HuffmanEncoder(REQUEST_CODES, REQUEST_CODES_LENGTH)
_STATIC_NAMES = {name: i for i, (name, _) in reversed(list(enumerate(STATIC_TABLE, 1)))}


def _hpack_decode(decoder: hpack.Decoder, block: bytes) -> list[Field]:
    out = []
    for name, value in decoder.decode(block, raw=True):
        assert isinstance(name, bytes) and isinstance(value, bytes)
        out.append((name, value))
    return out


def _same_table(ours: HeaderDecoder, ref: hpack.Decoder) -> None:
    assert ours.dynamic_entries == tuple(ref.header_table.dynamic_entries)
    assert ours.table_size == ref.header_table._current_size
    assert ours.max_table_size == ref.header_table_size


def _string(data: bytes, huffman: bool) -> bytes:
    """An RFC 7541 §5.2 string literal."""
    if not huffman:
        return bytes(encode_integer(len(data), 7)) + data
    encoded = _HUFFMAN.encode(data)
    length = encode_integer(len(encoded), 7)
    length[0] |= 0x80
    return bytes(length) + encoded


def nginx_block(headers: list[Field], huffman: bool = True) -> bytes:
    """Every field as a literal with incremental indexing (RFC 7541 §6.2.1), the name
    indexed when the static table has it: what nginx sends on every response."""
    out = bytearray()
    for name, value in headers:
        index = _STATIC_NAMES.get(name, 0)
        prefix = encode_integer(index, 6)
        prefix[0] |= 0x40
        out += prefix
        if not index:
            out += _string(name, huffman)
        out += _string(value, huffman)
    return bytes(out)


def _compression_error(call: Callable[[], object]) -> H2ConnectionError:
    with pytest.raises(H2ConnectionError) as info:
        call()
    assert info.type is H2ConnectionError  # not HeaderListTooLarge
    assert info.value.code == ErrorCode.COMPRESSION_ERROR
    assert str(info.value).startswith("HPACK: ")
    return info.value


# --- differential: hpack.Encoder blocks, nginx-style blocks, repeats, size changes ---------

NAMES = st.sampled_from(
    [b":path", b":status", b"content-type", b"date", b"server", b"x-env", b"grpc-timeout", b"te"]
)
VALUES = st.one_of(
    st.sampled_from([b"", b"200", b"application/grpc", b"v"]), st.binary(max_size=40)
)
FIELDS = st.lists(st.tuples(NAMES, VALUES), min_size=1, max_size=8)
STEP = st.one_of(
    st.tuples(st.just("hpack"), FIELDS, st.booleans(), st.booleans()),
    st.tuples(st.just("nginx"), FIELDS, st.booleans(), st.booleans()),
    st.tuples(st.just("repeat"), st.integers(0, 50), st.booleans(), st.booleans()),
    st.tuples(
        st.just("resize"),
        st.sampled_from([0, 64, 100, 256, 1000, 4096]),
        st.booleans(),
        st.booleans(),
    ),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(STEP, min_size=1, max_size=30))
def test_differential_against_hpack(steps: list[tuple[str, object, bool, bool]]) -> None:
    """Block after block on one connection: same fields and same table as hpack.Decoder,
    whatever mix of indexing, Huffman, never-indexed fields, size updates and replays."""
    encoder = hpack.Encoder()
    ours = HeaderDecoder()
    ref = hpack.Decoder()
    sent: list[bytes] = []
    for kind, arg, huffman, sensitive in steps:
        if kind == "resize":
            assert isinstance(arg, int)
            encoder.header_table_size = arg  # a size update starts the next hpack block
            continue
        if kind == "repeat":
            if not sent:
                continue
            assert isinstance(arg, int)
            block = sent[arg % len(sent)]  # may name other entries now: same for both
        elif kind == "hpack":
            assert isinstance(arg, list)
            fields = [(n, v, sensitive and i == 0) for i, (n, v) in enumerate(arg)]
            block = encoder.encode(fields, huffman=huffman)
        else:
            assert isinstance(arg, list)
            # Inserts the encoder does not know of: later hpack blocks may name other
            # entries than it meant, but both decoders see the same bytes.
            block = nginx_block(arg, huffman)
        sent.append(block)
        try:
            expected = _hpack_decode(ref, block)
        except HPACKDecodingError:
            with pytest.raises(H2ConnectionError):
                ours.decode(block)
            return
        assert list(ours.decode(block)) == expected
        _same_table(ours, ref)


@settings(max_examples=200, deadline=None)
@given(st.lists(FIELDS, min_size=1, max_size=12), st.booleans())
def test_nginx_style_blocks_replayed_from_the_memo(lists: list[list[Field]], huffman: bool) -> None:
    """Blocks that only insert (no dynamic reference) answer from the memo in any table
    state, and the replayed inserts leave the table exactly as a fresh decode would."""
    ours = HeaderDecoder()
    ref = hpack.Decoder()
    blocks = [nginx_block(fields, huffman) for fields in lists]
    for block in blocks + blocks[::-1] + blocks:
        assert list(ours.decode(block)) == _hpack_decode(ref, block)
        _same_table(ours, ref)
    assert ours.hits >= 2 * len(blocks)


# --- RFC 7541 Appendix C -------------------------------------------------------------------

C3_C4_HEADERS = [
    [(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/"),
     (b":authority", b"www.example.com")],
    [(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/"),
     (b":authority", b"www.example.com"), (b"cache-control", b"no-cache")],
    [(b":method", b"GET"), (b":scheme", b"https"), (b":path", b"/index.html"),
     (b":authority", b"www.example.com"), (b"custom-key", b"custom-value")],
]  # fmt: skip
C3_C4_TABLES = [
    ((b":authority", b"www.example.com"),),
    ((b"cache-control", b"no-cache"), (b":authority", b"www.example.com")),
    ((b"custom-key", b"custom-value"), (b"cache-control", b"no-cache"),
     (b":authority", b"www.example.com")),
]  # fmt: skip
C3_C4_SIZES = [57, 110, 164]
C3 = [
    "828684410f7777772e6578616d706c652e636f6d",
    "828684be58086e6f2d6361636865",
    "828785bf400a637573746f6d2d6b65790c637573746f6d2d76616c7565",
]
C4 = [
    "828684418cf1e3c2e5f23a6ba0ab90f4ff",
    "828684be5886a8eb10649cbf",
    "828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf",
]
DATE1 = b"Mon, 21 Oct 2013 20:13:21 GMT"
DATE2 = b"Mon, 21 Oct 2013 20:13:22 GMT"
LOCATION = b"https://www.example.com"
COOKIE = b"foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1"
C5_C6_HEADERS = [
    [(b":status", b"302"), (b"cache-control", b"private"), (b"date", DATE1),
     (b"location", LOCATION)],
    [(b":status", b"307"), (b"cache-control", b"private"), (b"date", DATE1),
     (b"location", LOCATION)],
    [(b":status", b"200"), (b"cache-control", b"private"), (b"date", DATE2),
     (b"location", LOCATION), (b"content-encoding", b"gzip"), (b"set-cookie", COOKIE)],
]  # fmt: skip
C5_C6_TABLES = [
    ((b"location", LOCATION), (b"date", DATE1), (b"cache-control", b"private"),
     (b":status", b"302")),
    ((b":status", b"307"), (b"location", LOCATION), (b"date", DATE1),
     (b"cache-control", b"private")),
    ((b"set-cookie", COOKIE), (b"content-encoding", b"gzip"), (b"date", DATE2)),
]  # fmt: skip
C5_C6_SIZES = [222, 222, 215]
C5 = [
    "4803333032580770726976617465611d4d6f6e2c203231204f637420323031332032303a31333a3231"
    "20474d546e1768747470733a2f2f7777772e6578616d706c652e636f6d",
    "4803333037c1c0bf",
    "88c1611d4d6f6e2c203231204f637420323031332032303a31333a323220474d54c05a04677a6970"
    "7738666f6f3d4153444a4b48514b425a584f5157454f50495541585157454f49553b206d61782d61"
    "67653d333630303b2076657273696f6e3d31",
]
C6 = [
    "488264025885aec3771a4b6196d07abe941054d444a8200595040b8166e082a62d1bff6e919d29ad"
    "171863c78f0b97c8e9ae82ae43d3",
    "4883640effc1c0bf",
    "88c16196d07abe941054d444a8200595040b8166e084a62d1bffc05a839bd9ab77ad94e7821dd7f2"
    "e6c7b335dfdfcd5b3960d5af27087f3672c1ab270fb5291f9587316065c003ed4ee5b1063d5007",
]


@pytest.mark.parametrize("blocks", [C3, C4], ids=["C.3", "C.4"])
def test_rfc7541_request_examples(blocks: list[str]) -> None:
    """RFC 7541 C.3 (no Huffman) and C.4 (Huffman): three requests on one connection."""
    decoder = HeaderDecoder()
    for block, headers, table, size in zip(
        blocks, C3_C4_HEADERS, C3_C4_TABLES, C3_C4_SIZES, strict=True
    ):
        assert list(decoder.decode(bytes.fromhex(block))) == headers
        assert decoder.dynamic_entries == table
        assert decoder.table_size == size


@pytest.mark.parametrize("blocks", [C5, C6], ids=["C.5", "C.6"])
def test_rfc7541_response_examples(blocks: list[str]) -> None:
    """RFC 7541 C.5 / C.6: three responses with a 256-octet table (evictions)."""
    decoder = HeaderDecoder()
    decoder.max_allowed_table_size = decoder.max_table_size = 256
    for block, headers, table, size in zip(
        blocks, C5_C6_HEADERS, C5_C6_TABLES, C5_C6_SIZES, strict=True
    ):
        assert list(decoder.decode(bytes.fromhex(block))) == headers
        assert decoder.dynamic_entries == table
        assert decoder.table_size == size


def test_rfc7541_responses_replayed_from_the_memo() -> None:
    """C.5.1 inserts only (no dynamic reference): decoded again after C.5.3, the memo
    replays its four inserts and the 256-octet table evicts as a fresh decode would."""
    decoder = HeaderDecoder()
    ref = hpack.Decoder()
    decoder.max_allowed_table_size = decoder.max_table_size = 256
    ref.max_allowed_table_size = ref.header_table_size = 256
    blocks = [bytes.fromhex(b) for b in C5] + [bytes.fromhex(C5[0])] * 2
    for block in blocks:
        assert list(decoder.decode(block)) == _hpack_decode(ref, block)
        _same_table(decoder, ref)
    assert decoder.hits == 2
    assert decoder.dynamic_entries == C5_C6_TABLES[0]


# --- malformed blocks ----------------------------------------------------------------------

MALFORMED = {
    "truncated integer": b"\xff",
    "truncated integer continuation": b"\xff\x80",
    "index 0": b"\x80",
    "index out of range": b"\xbe",
    "big index out of range": b"\xff\x80\x01",
    "name index out of range (incremental)": b"\x7e\x01a",
    "name index out of range (without indexing)": b"\x0f\x2f\x01a",
    "name index out of range (never indexed)": b"\x1f\x2f\x01a",
    "string past the end": b"\x00\x05ab",
    "value past the end": b"\x40\x01a\x05ab",
    "name expected": b"\x40",
    "value expected": b"\x00\x01a",
    "value expected after an indexed name": b"\x44",
    "huge string length": b"\x00\x7f\xff\xff\xff\x7f",
    "Huffman with EOS": b"\x00\x84\xff\xff\xff\xff\x01a",
    "Huffman padding longer than 7 bits": b"\x00\x82\x1f\xff\x01a",
    "Huffman padding not EOS prefix": b"\x00\x81\x18\x01a",
    "size update above the allowed max": b"\x3f\xe2\x1f",
    "size update above the max, then within it": b"\x3f\xe2\x1f\x20\x82",
    "size update not at block start": b"\x82\x20",
    "size update after a literal": b"\x00\x01a\x01b\x3f\x01",
    "integer overflow": b"\xff" + b"\x80" * 10 + b"\x01",
    "five continuation bytes": b"\xff\xff\xff\xff\xff\x0f",
}


@pytest.mark.parametrize("block", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_blocks_are_compression_errors(block: bytes) -> None:
    with pytest.raises(HPACKDecodingError):
        hpack.Decoder().decode(block, raw=True)  # the reference rejects it too
    _compression_error(lambda: HeaderDecoder().decode(block))


def test_table_above_a_lowered_maximum_is_an_error() -> None:
    """RFC 7541 §4.2: after we lowered SETTINGS_HEADER_TABLE_SIZE, a block that does not
    start with a size update within it is an error; one that does is fine."""
    decoder = HeaderDecoder()
    decoder.max_allowed_table_size = 0
    _compression_error(lambda: decoder.decode(b"\x82"))
    decoder = HeaderDecoder()
    decoder.max_allowed_table_size = 0
    assert decoder.decode(b"\x20\x82") == ((b":method", b"GET"),)
    assert decoder.max_table_size == 0


def test_size_updates_at_the_start_evict_and_are_remembered() -> None:
    decoder = HeaderDecoder()
    decoder.decode(nginx_block([(b"x-a", b"1"), (b"x-b", b"2")]))
    assert decoder.table_size == 2 * (3 + 1 + 32)
    block = b"\x20\x3f\x09" + b"\x82"  # size 0 (empties), then 40, then :method GET
    assert decoder.decode(block) == ((b":method", b"GET"),)
    assert (len(decoder.dynamic_entries), decoder.max_table_size) == (0, 40)
    decoder.decode(nginx_block([(b"x-a", b"1")]))
    assert list(decoder.dynamic_entries) == [(b"x-a", b"1")]
    assert decoder.decode(block) == ((b":method", b"GET"),)  # replayed: empties again
    assert decoder.hits == 1
    assert (len(decoder.dynamic_entries), decoder.max_table_size) == (0, 40)
    decoder.max_allowed_table_size = 30
    _compression_error(lambda: decoder.decode(block))  # the replay checks the bound too


# --- header list size (H4, H11) ------------------------------------------------------------


def test_hpack_bomb_stops_before_the_rest_of_the_block() -> None:
    """One 4 KB dynamic entry referenced 10,000 times: the limit trips on the 17th field,
    before the decoder reaches the malformed byte placed right after it."""
    name, value = b"x-bomb", b"v" * 4000
    entry = nginx_block([(name, value)], huffman=False)
    poisoned = entry + b"\xbe" * 16 + b"\x80" + b"\xbe" * 10_000
    with pytest.raises(HeaderListTooLarge) as info:
        HeaderDecoder().decode(poisoned)
    assert info.value.code == ErrorCode.ENHANCE_YOUR_CALM
    with pytest.raises(OversizedHeaderListError):  # the reference agrees on where
        hpack.Decoder().decode(poisoned, raw=True)
    fits = entry + b"\xbe" * 15  # 16 fields of 4,038 bytes: 64,608 <= 65,536
    assert len(HeaderDecoder().decode(fits)) == 16


def test_the_limit_holds_on_memo_hits() -> None:
    block = nginx_block([(b"x-big", b"v" * 1000)])
    decoder = HeaderDecoder(max_header_list_size=2000)
    assert decoder.decode(block) == ((b"x-big", b"v" * 1000),)
    assert decoder.decode(block) == ((b"x-big", b"v" * 1000),)
    assert decoder.hits == 1
    decoder.max_header_list_size = 1000
    with pytest.raises(HeaderListTooLarge):
        decoder.decode(block)


# --- Huffman cache -------------------------------------------------------------------------


def test_long_huffman_strings_decode_without_the_cache() -> None:
    value = b"a" * (2 * MAX_HUFFMAN_CACHED_BYTES)
    block = nginx_block([(b"x-long", value)])
    decoder = HeaderDecoder()
    assert decoder.decode(block) == ((b"x-long", value),)
    bad = b"\x00\x82\x1f\xff\x01a"
    for _ in range(2):  # a failed string is not remembered as anything
        _compression_error(lambda: HeaderDecoder().decode(bad))
