"""Memoised HPACK decoding for header blocks that leave the dynamic table unchanged.

A gRPC client sends nearly the same header block on every call, and once its dynamic
table is warm the block holds only indexed fields and literals *without* indexing: such a
block decodes to the same list for as long as the table does not change. Decoding through
``hpack`` costs ~12 us per block (measured in ``bench/e2e_grpc.py``); a dict lookup costs
well under 1 us.

Correctness rests on two facts of RFC 7541: only "literal with incremental indexing"
(§6.2.1) and "dynamic table size update" (§6.3) representations change the table, and
which representation a field uses is visible from its first byte. ``table_neutral`` walks
a block's representations (integer prefixes and string lengths only, no Huffman decoding)
and says whether it contains either; the memo is keyed by the block *and* a table epoch
that changes whenever a block that may modify the table is decoded.
"""

from __future__ import annotations

from collections.abc import Callable

MAX_MEMO_BLOCKS = 256
# why: a connection sees a handful of distinct blocks (requests, responses, trailers); the
# bound stops a peer that varies its headers from growing the memo.
MAX_MEMO_BLOCK_BYTES = 4096
# why: gRPC header blocks are ~10-200 bytes once indexed; big blocks are rare and not
# worth holding.

Headers = list[tuple[bytes, bytes]]


def _integer(data: bytes, pos: int, prefix_bits: int) -> tuple[int, int] | None:
    """An HPACK integer (RFC 7541 §5.1) at ``pos``; (value, next pos) or None if cut."""
    mask = (1 << prefix_bits) - 1
    value = data[pos] & mask
    pos += 1
    if value < mask:
        return value, pos
    shift = 0
    while pos < len(data):
        byte = data[pos]
        pos += 1
        value += (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos
        if shift > 28:  # no legitimate length or index needs more than 4 extension bytes
            return None
    return None


def _skip_string(data: bytes, pos: int) -> int | None:
    if pos >= len(data):
        return None
    got = _integer(data, pos, 7)
    if got is None:
        return None
    length, pos = got
    end = pos + length
    return end if end <= len(data) else None


def table_neutral(block: bytes) -> bool:
    """True when decoding ``block`` cannot change the dynamic table (and it is well formed
    enough to tell); False otherwise (the caller then decodes without the memo)."""
    pos = 0
    end = len(block)
    while pos < end:
        first = block[pos]
        if first & 0x80:  # indexed field
            got = _integer(block, pos, 7)
            if got is None:
                return False
            pos = got[1]
            continue
        if first & 0xC0 == 0x40 or first & 0xE0 == 0x20:
            return False  # literal with incremental indexing, or a table size update
        # Literal without indexing (0000) or never indexed (0001): 4-bit name index.
        got = _integer(block, pos, 4)
        if got is None:
            return False
        name_index, pos = got
        if name_index == 0:
            skipped = _skip_string(block, pos)
            if skipped is None:
                return False
            pos = skipped
        skipped = _skip_string(block, pos)
        if skipped is None:
            return False
        pos = skipped
    return True


class DecodeMemo:
    """Decode header blocks through ``decode``, remembering table-neutral ones."""

    __slots__ = ("_decode", "_epoch", "_memo", "hits")

    def __init__(self, decode: Callable[[bytes], Headers]) -> None:
        self._decode = decode
        self._epoch = 0
        self._memo: dict[bytes, tuple[int, tuple[tuple[bytes, bytes], ...]]] = {}
        self.hits = 0

    def decode(self, block: bytes) -> Headers:
        found = self._memo.get(block)
        if found is not None and found[0] == self._epoch:
            self.hits += 1
            return list(found[1])
        neutral = len(block) <= MAX_MEMO_BLOCK_BYTES and table_neutral(block)
        headers = self._decode(block)
        if not neutral:
            self._epoch += 1  # the table may have changed: every memo entry is stale
            return headers
        if len(self._memo) >= MAX_MEMO_BLOCKS:
            self._memo.clear()
        self._memo[block] = (self._epoch, tuple(headers))
        return headers
