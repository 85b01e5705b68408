"""A lean HPACK decoder (RFC 7541) with a memo of decoded header blocks.

Why not ``hpack.Decoder``: it costs 12-16 us per gRPC header block (a ``log.debug`` per
field, ``HeaderTuple`` objects, per-bit pure-Python Huffman on every string), ~30 us of
laneway's CPU per relayed unary call (``bench/RESULTS.md``, "HTTP/2 codec"). This module
reuses hpack's *data* (the static table) and its Huffman state machine, but decodes each
distinct Huffman string once (``_huffman``) and each distinct block once (the memo).

The memo is keyed by the block's bytes and rests on RFC 7541 facts:

- A block that references no dynamic-table entry (every index <= 61, §2.3.3) decodes to
  the same list whatever the table holds, and changes the table the same way: the same
  entries inserted (§6.2.1) and the same size updates (§6.3), in order. The memo keeps the
  list and those operations and, on a hit, *replays* the operations on the table (cheap:
  no parsing, no Huffman) and returns the list. This covers nginx, which sends every
  response field as a literal with incremental indexing, block after block.
- A block that does reference dynamic entries but changes nothing is valid for as long as
  the table is unchanged: it is remembered with the table's epoch, which moves on every
  insertion, eviction or size update.
- Anything else (dynamic references *and* table changes) is decoded afresh each time.

Protections (TESTS.md H4, H11) hold on both paths: the decoded header list size (RFC 7541
§4.1: name + value + 32 per field) is summed field by field and a block raises
:class:`HeaderListTooLarge` as soon as it passes ``max_header_list_size``, before the next
field is decoded; a memo hit re-checks the remembered size against the current limit.
Every malformed input raises :class:`H2ConnectionError` (COMPRESSION_ERROR): the HPACK
context is shared by the connection, so a failure leaves it unusable (RFC 9113 §4.3).
"""

from __future__ import annotations

from collections import deque

from hpack.exceptions import HPACKDecodingError
from hpack.huffman_table import decode_huffman
from hpack.table import HeaderTable

from proxy.codecs.grpc.errors import ErrorCode, H2ConnectionError
from proxy.codecs.grpc.headers import HeaderListTooLarge
from proxy.codecs.grpc.limits import DEFAULT_HEADER_TABLE_SIZE, MAX_HEADER_LIST_SIZE

MAX_MEMO_BLOCKS = 256
# why: a connection sees a handful of distinct blocks (requests, responses, trailers); the
# bound stops a peer that varies its headers from growing the memo (full: cleared).
MAX_MEMO_BLOCK_BYTES = 4096
# why: gRPC header blocks are ~10-200 bytes; big blocks are rare and not worth holding.
MAX_MEMO_DECODED_BYTES = 262_144
# why: a 4 KiB block can decode to a 64 KiB list (indexes of big entries); this caps what
# the memo of one connection pins, whatever the blocks expand to (reached: cleared).
MAX_HUFFMAN_CACHE = 1024
# why: distinct Huffman strings a process remembers (values repeat call after call: paths,
# content types, dates); a peer sending new strings only makes the cache start over.
MAX_HUFFMAN_CACHED_BYTES = 256
# why: header names and values worth remembering are short; a long string is decoded
# each time instead of pinning up to 1.6x its size in the cache.
MAX_INTEGER_EXTENSION_BYTES = 4
# why: RFC 7541 §5.1 lets integers grow without bound and says to reject what exceeds
# the implementation's limits; 4 continuation bytes carry 28 bits, more than any index,
# string length (a block is < 100 KiB) or table size (<= 4096) we accept needs.

#: RFC 7541 §4.1: the per-entry overhead counted in table and header list sizes.
ENTRY_OVERHEAD = 32
#: RFC 7541 Appendix A, as hpack ships it (index 1 is element 0).
STATIC_TABLE: tuple[tuple[bytes, bytes], ...] = HeaderTable.STATIC_TABLE
_STATIC_LEN = len(STATIC_TABLE)

Field = tuple[bytes, bytes]
Headers = tuple[Field, ...]
#: A table operation a block performed: an inserted field or a size update.
TableOp = Field | int

# Huffman-decoded strings by their encoded bytes (pure function, shared by connections).
_huffman_cache: dict[bytes, bytes] = {}


def _error(message: str) -> H2ConnectionError:
    return H2ConnectionError(ErrorCode.COMPRESSION_ERROR, f"HPACK: {message}")


def _huffman(encoded: bytes) -> bytes:
    """RFC 7541 §5.2 / Appendix B: decode through hpack's state machine, once per string."""
    found = _huffman_cache.get(encoded)
    if found is not None:
        return found
    try:
        decoded = decode_huffman(encoded)
    except HPACKDecodingError as exc:  # bad code, EOS inside, or bad padding
        raise _error(str(exc)) from exc
    if len(encoded) <= MAX_HUFFMAN_CACHED_BYTES:
        if len(_huffman_cache) >= MAX_HUFFMAN_CACHE:
            _huffman_cache.clear()
        _huffman_cache[encoded] = decoded
    return decoded


def _integer(block: bytes, pos: int, value: int) -> tuple[int, int]:
    """The rest of an RFC 7541 §5.1 integer whose ``value``-saturated prefix ended at
    ``pos``; returns (value, next pos)."""
    end = len(block)
    shift = 0
    for _ in range(MAX_INTEGER_EXTENSION_BYTES):
        if pos >= end:
            raise _error("truncated integer")
        byte = block[pos]
        pos += 1
        value += (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
    raise _error(f"integer longer than {MAX_INTEGER_EXTENSION_BYTES} continuation bytes")


def _string(block: bytes, pos: int) -> tuple[bytes, int]:
    """An RFC 7541 §5.2 string literal at ``pos``; returns (octets, next pos)."""
    if pos >= len(block):
        raise _error("truncated block: string literal expected")
    first = block[pos]
    length = first & 0x7F
    pos += 1
    if length == 0x7F:
        length, pos = _integer(block, pos, 0x7F)
    stop = pos + length
    if stop > len(block):
        raise _error(f"string literal of {length} bytes runs past the block")
    if first & 0x80:
        return _huffman(block[pos:stop]), stop
    return block[pos:stop], stop


class MemoEntry:
    """One remembered block: its fields, the table operations it performed, its header
    list size, and ``checks``, where the caller keeps pure results about these fields
    (validation by kind) for as long as the entry lives."""

    __slots__ = ("checks", "epoch", "headers", "ops", "size")

    def __init__(self, epoch: int, headers: Headers, ops: tuple[TableOp, ...], size: int) -> None:
        #: -1 when the block references no dynamic entry (valid in any table state).
        self.epoch = epoch
        self.headers = headers
        self.ops = ops
        self.size = size
        self.checks: dict[int, int | None] = {}


class HeaderDecoder:
    """Decodes the header blocks of one connection (RFC 7541), owning its dynamic table.

    ``decode`` returns the fields as a tuple of ``(name, value)`` byte pairs (what
    ``hpack.Decoder.decode(block, raw=True)`` returns, as a tuple). Raises
    :class:`HeaderListTooLarge` (ENHANCE_YOUR_CALM) past ``max_header_list_size`` and
    :class:`H2ConnectionError` (COMPRESSION_ERROR) for any malformed block.
    ``max_allowed_table_size`` is the SETTINGS_HEADER_TABLE_SIZE we announced (and the
    peer acknowledged), as in ``hpack.Decoder``: a size update above it is an error, and so
    is a table still larger than it at the end of a block.
    """

    __slots__ = (
        "_entries",
        "_epoch",
        "_memo",
        "_memo_bytes",
        "_size",
        "hits",
        "last_memo",
        "max_allowed_table_size",
        "max_header_list_size",
        "max_table_size",
    )

    def __init__(self, max_header_list_size: int = MAX_HEADER_LIST_SIZE) -> None:
        self.max_header_list_size = max_header_list_size
        self.max_allowed_table_size = DEFAULT_HEADER_TABLE_SIZE
        #: The table's current maximum (RFC 7541 §4.2), as the peer last set it.
        self.max_table_size = DEFAULT_HEADER_TABLE_SIZE
        self._entries: deque[Field] = deque()  # newest first: dynamic index 62 is [0]
        self._size = 0
        self._epoch = 0
        self._memo: dict[bytes, MemoEntry] = {}
        self._memo_bytes = 0
        #: Blocks answered from the memo (for tests and benchmarks).
        self.hits = 0
        #: The memo entry of the last decoded block, None when it was not remembered.
        self.last_memo: MemoEntry | None = None

    @property
    def dynamic_entries(self) -> tuple[Field, ...]:
        """The dynamic table, newest entry first (index 62 first)."""
        return tuple(self._entries)

    @property
    def table_size(self) -> int:
        """The dynamic table's current size (RFC 7541 §4.1)."""
        return self._size

    def decode(self, block: bytes) -> Headers:
        """Decode one complete header block (``bytes``: it keys the memo)."""
        entry = self._memo.get(block)
        if entry is not None and (entry.epoch < 0 or entry.epoch == self._epoch):
            if entry.size > self.max_header_list_size:
                raise self._too_large()
            for op in entry.ops:
                if isinstance(op, int):
                    self._resize(op)
                else:
                    self._insert(op)
            self._check_table_size()
            self.hits += 1
            self.last_memo = entry
            return entry.headers
        self.last_memo = None
        return self._decode(block)

    def _decode(self, block: bytes) -> Headers:
        headers: list[Field] = []
        ops: list[TableOp] = []
        dynamic_ref = False
        size = 0
        limit = self.max_header_list_size
        pos = 0
        end = len(block)
        while pos < end:
            first = block[pos]
            if first & 0x80:  # §6.1 indexed field
                index = first & 0x7F
                pos += 1
                if index == 0x7F:
                    index, pos = _integer(block, pos, 0x7F)
                if index > _STATIC_LEN:
                    dynamic_ref = True
                field = self._field(index)
            elif first & 0xE0 == 0x20:  # §6.3 dynamic table size update
                if headers:
                    raise _error("table size update after a header field")
                new_size = first & 0x1F
                pos += 1
                if new_size == 0x1F:
                    new_size, pos = _integer(block, pos, 0x1F)
                self._resize(new_size)
                ops.append(new_size)
                continue
            else:
                # A literal: with incremental indexing (§6.2.1, 01, 6-bit name index),
                # without indexing (§6.2.2, 0000) or never indexed (§6.2.3, 0001; 4 bits).
                indexing = first & 0x40
                mask = 0x3F if indexing else 0x0F
                index = first & mask
                pos += 1
                if index == mask:
                    index, pos = _integer(block, pos, mask)
                if index:
                    dynamic_ref = dynamic_ref or index > _STATIC_LEN
                    name = self._field(index)[0]
                else:
                    name, pos = _string(block, pos)
                value, pos = _string(block, pos)
                field = (name, value)
                if indexing:
                    self._insert(field)
                    ops.append(field)
            headers.append(field)
            size += len(field[0]) + len(field[1]) + ENTRY_OVERHEAD
            if size > limit:
                raise self._too_large()
        self._check_table_size()
        result = tuple(headers)
        if end <= MAX_MEMO_BLOCK_BYTES and not (dynamic_ref and ops):
            epoch = self._epoch if dynamic_ref else -1
            self._remember(block, MemoEntry(epoch, result, tuple(ops), size))
        return result

    def _remember(self, block: bytes, entry: MemoEntry) -> None:
        full = len(self._memo) >= MAX_MEMO_BLOCKS
        if full or self._memo_bytes + entry.size > MAX_MEMO_DECODED_BYTES:
            self._memo.clear()
            self._memo_bytes = 0
        old = self._memo.get(block)
        if old is not None:  # an epoch-stale entry for the same bytes
            self._memo_bytes -= old.size
        self._memo[block] = entry
        self._memo_bytes += entry.size
        self.last_memo = entry

    def _field(self, index: int) -> Field:
        """The table entry at ``index`` (RFC 7541 §2.3.3: static 1-61, then dynamic)."""
        if 0 < index <= _STATIC_LEN:
            return STATIC_TABLE[index - 1]
        dynamic = index - _STATIC_LEN - 1
        if index == 0 or dynamic >= len(self._entries):
            raise _error(f"table index {index} out of range")
        return self._entries[dynamic]

    def _insert(self, field: Field) -> None:
        """RFC 7541 §4.4: add ``field``, evicting the oldest entries to make room."""
        self._epoch += 1
        size = len(field[0]) + len(field[1]) + ENTRY_OVERHEAD
        entries = self._entries
        if size > self.max_table_size:
            entries.clear()  # an entry larger than the table empties it
            self._size = 0
            return
        entries.appendleft(field)
        size += self._size
        while size > self.max_table_size:
            old = entries.pop()
            size -= len(old[0]) + len(old[1]) + ENTRY_OVERHEAD
        self._size = size

    def _resize(self, new_size: int) -> None:
        """RFC 7541 §6.3 / §4.3: a size update, bounded by what we announced."""
        if new_size > self.max_allowed_table_size:
            raise _error(f"table size update to {new_size} > {self.max_allowed_table_size}")
        self._epoch += 1
        self.max_table_size = new_size
        entries = self._entries
        size = self._size
        while size > new_size:
            old = entries.pop()
            size -= len(old[0]) + len(old[1]) + ENTRY_OVERHEAD
        self._size = size

    def _check_table_size(self) -> None:
        # RFC 7541 §4.2: after we lowered SETTINGS_HEADER_TABLE_SIZE, the peer's next block
        # must start with a size update to within it.
        if self.max_table_size > self.max_allowed_table_size:
            raise _error(
                f"table size {self.max_table_size} > announced {self.max_allowed_table_size}"
            )

    def _too_large(self) -> HeaderListTooLarge:
        return HeaderListTooLarge(
            ErrorCode.ENHANCE_YOUR_CALM,
            f"a header list larger than {self.max_header_list_size} has been received",
        )
