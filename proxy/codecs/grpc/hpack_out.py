"""Outbound HPACK: a lean indexing encoder built from hpack's primitives (RFC 7541).

Why not ``hpack.Encoder``: it searches its tables and logs per field, which was about
40 % of a relayed unary exchange's CPU (bench/test_h2codec.py). A proxy's header lists
repeat call after call (``:status 200``, ``content-type``, ``grpc-status 0``, the
service's ``:path``), so this encoder keeps a mirror of the peer's dynamic table as
``field -> insertion number``: a field seen before and not yet evicted is one or two
bytes (an index), a new one is a literal with incremental indexing (encoded once and
cached process-wide). Fields whose values change on every call (``grpc-timeout``...)
are sent without indexing so they do not churn the table; secrets are never indexed.
The peer's decoder then mostly meets indexed fields, its cheapest path.

Inbound blocks (the untrusted side) are decoded by :mod:`proxy.codecs.grpc.hpack_in`.
"""

from __future__ import annotations

import collections
from collections.abc import Sequence

from hpack.hpack import encode_integer
from hpack.huffman import HuffmanEncoder
from hpack.huffman_constants import REQUEST_CODES, REQUEST_CODES_LENGTH
from hpack.table import HeaderTable, table_entry_size

from proxy.codecs.grpc.limits import DEFAULT_HEADER_TABLE_SIZE

#: Process-wide cache of literal encodings; a full cache is simply cleared.
MAX_CACHED_LITERALS = 4_096
MAX_MEMO_BLOCKS = 64
# why: blocks remembered per connection (see IndexingEncoder.encode); a relay re-sends a
# handful of header tuples (a provider's response headers and trailers) call after call.
#: RFC 7541 §7.1.3: fields that must never be indexed, here or by any intermediary.
NEVER_INDEXED = frozenset({b"authorization", b"proxy-authorization", b"cookie", b"set-cookie"})
#: Fields whose value differs on nearly every call: indexing them would only evict others.
NOT_INDEXED = frozenset({b"grpc-timeout", b"content-length", b"date"})

Field = tuple[bytes, bytes]
_STATIC_COUNT = len(HeaderTable.STATIC_TABLE)
_huffman = HuffmanEncoder(REQUEST_CODES, REQUEST_CODES_LENGTH)
_STATIC_FULL: dict[tuple[bytes, bytes], int] = {}
_STATIC_NAME: dict[bytes, int] = {}
for _index, (_name, _value) in enumerate(HeaderTable.STATIC_TABLE, start=1):
    _STATIC_FULL.setdefault((_name, _value), _index)
    _STATIC_NAME.setdefault(_name, _index)


def _indexed(index: int) -> bytes:
    prefix = encode_integer(index, 7)
    prefix[0] |= 0x80
    return bytes(prefix)


#: Indexed representations for every index a 4 KiB table can reach (>= 32 bytes per entry).
_INDEXED = [_indexed(i) for i in range(_STATIC_COUNT + DEFAULT_HEADER_TABLE_SIZE // 32 + 2)]


def _string(data: bytes, huffman: bool = True) -> bytes:
    """RFC 7541 §5.2 string literal, Huffman-coded when asked and shorter."""
    coded = _huffman.encode(data) if huffman else data
    if len(coded) < len(data):
        prefix = encode_integer(len(coded), 7)
        prefix[0] |= 0x80
        return bytes(prefix) + coded
    return bytes(encode_integer(len(data), 7)) + data


def literal(name: bytes, value: bytes, kind: int) -> bytes:
    """A literal field: ``kind`` 0x40 incremental indexing, 0x00 without, 0x10 never indexed.

    Values sent without indexing are short and per call: they are not Huffman-coded, so
    the peer decodes them by slicing (Huffman decoding is the slow path of a decoder).
    """
    huffman = kind == 0x40
    index = _STATIC_NAME.get(name)
    if index is None:
        return bytes([kind]) + _string(name, huffman) + _string(value, huffman)
    prefix = encode_integer(index, 6 if kind == 0x40 else 4)
    prefix[0] |= kind
    return bytes(prefix) + _string(value, huffman)


_literals: dict[tuple[bytes, bytes, int], bytes] = {}


def _cached_literal(name: bytes, value: bytes, kind: int) -> bytes:
    key = (name, value, kind)
    encoded = _literals.get(key)
    if encoded is None:
        if len(_literals) >= MAX_CACHED_LITERALS:
            _literals.clear()
        encoded = _literals[key] = literal(name, value, kind)
    return encoded


class IndexingEncoder:
    """One connection's outbound HPACK context; see the module docstring."""

    __slots__ = (
        "_entries",
        "_inserted",
        "_max_size",
        "_memo",
        "_pending_update",
        "_seq",
        "_size",
    )

    def __init__(self) -> None:
        #: field -> its insertion number (0, 1, 2...); the newest has the highest.
        self._seq: dict[tuple[bytes, bytes], int] = {}
        #: (field, size) oldest first, mirroring the peer's dynamic table.
        self._entries: collections.deque[tuple[tuple[bytes, bytes], int]] = collections.deque()
        self._inserted = 0
        self._size = 0
        self._max_size = DEFAULT_HEADER_TABLE_SIZE
        self._pending_update: int | None = None
        #: id(header tuple) -> (that tuple, insertions when encoded, block): a tuple that
        #: was encoded without inserting anything encodes to the same bytes until the next
        #: insertion or eviction (indexes are relative to the newest entry).
        self._memo: dict[int, tuple[Sequence[Field], int, bytes]] = {}

    def set_max_size(self, peer_setting: int) -> None:
        """The peer's SETTINGS_HEADER_TABLE_SIZE changed: use at most that, never > 4 KiB.

        RFC 7541 §4.2: a change is announced at the start of the next block.
        """
        new = min(peer_setting, DEFAULT_HEADER_TABLE_SIZE)
        if new != self._max_size:
            self._max_size = new
            self._pending_update = new
            self._memo.clear()
            self._evict(0)

    def encode(self, headers: Sequence[Field]) -> bytes:
        """The header block for ``headers`` (names must already be lowercase).

        A *tuple* encoded before is answered from the memo while the table has not moved
        (a relayed provider's response headers and trailers are the same decoded tuple
        call after call: ``hpack_in``'s memo)."""
        found = self._memo.get(id(headers))
        if found is not None and found[0] is headers and found[1] == self._inserted:
            return found[2]
        inserted = self._inserted
        plain = self._pending_update is None  # (a size update is sent once, not memoised)
        block = self._encode(headers)
        if plain and self._inserted == inserted and isinstance(headers, tuple):
            if len(self._memo) >= MAX_MEMO_BLOCKS:
                self._memo.clear()
            self._memo[id(headers)] = (headers, inserted, block)
        return block

    def _encode(self, headers: Sequence[Field]) -> bytes:
        parts: list[bytes] = []
        if self._pending_update is not None:
            prefix = encode_integer(self._pending_update, 5)
            prefix[0] |= 0x20
            parts.append(bytes(prefix))
            self._pending_update = None
        seq = self._seq
        for field in headers:
            static = _STATIC_FULL.get(field)
            if static is not None:
                parts.append(_INDEXED[static])
                continue
            number = seq.get(field)
            if number is not None:
                parts.append(_INDEXED[_STATIC_COUNT + self._inserted - number])
                continue
            name, value = field
            if name in NEVER_INDEXED:
                parts.append(_cached_literal(name, value, 0x10))
            elif name in NOT_INDEXED:
                parts.append(_cached_literal(name, value, 0x00))
            else:
                size = table_entry_size(name, value)
                if size > self._max_size:
                    parts.append(_cached_literal(name, value, 0x00))
                    continue
                parts.append(_cached_literal(name, value, 0x40))
                self._evict(size)
                self._entries.append((field, size))
                self._size += size
                seq[field] = self._inserted
                self._inserted += 1
        return b"".join(parts)

    def _evict(self, room: int) -> None:
        """Drop the oldest entries until ``room`` more bytes fit (RFC 7541 §4.4)."""
        entries = self._entries
        while entries and self._size + room > self._max_size:
            self._memo.clear()  # (only reached when an entry goes: indexes move)
            field, size = entries.popleft()
            self._size -= size
            if self._seq.get(field) == self._inserted - len(entries) - 1:
                del self._seq[field]
