"""Hessian 2.0 decoder and skip-walker (sans-IO, no class is ever looked up or instantiated).

One :class:`Decoder` reads a stream of values that share their class-definition, type and
value-reference tables (a Dubbo body is one such stream). ``skip()`` steps over a value
without building it but keeps those tables right, so values read after it decode as if
everything had been read: a reference into a skipped value is resolved by decoding that
value from its recorded offset when (and only if) it is needed.

Safety (TESTS.md D6-D9): nesting is capped (``Limits.max_depth``), class definitions and
types are capped, every declared count or length is checked against the bytes that are
actually left before anything is allocated for it, a value reference must name a value
already seen, and every failure is a :class:`DecodeError`. The tag dispatch is one table.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any, cast

from . import _text
from .errors import (
    DecodeError,
    LimitExceededError,
    MalformedError,
    TruncatedError,
    UnexpectedTypeError,
)
from .limits import DEFAULT_LIMITS, Limits
from .values import HessianDate, HessianList, HessianLong, HessianMap, HessianObject, MapEntries

_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_I64 = struct.Struct(">q")
_F64 = struct.Struct(">d")

_END = 0x5A  # 'Z': end of a variable-length list or of a map

# Parsed class definitions by the bytes of their 'C' + type name: value (name, whole
# definition bytes, field names). A memo of a pure function, shared by all decoders; bounded
# (cleared when full) so hostile streams cannot grow it.
_CLASS_DEF_CACHE: dict[bytes, tuple[str, bytes, tuple[str, ...]]] = {}
_CLASS_DEF_CACHE_SIZE = 1024
_CLASS_DEF_CACHE_MAX_BYTES = 4096

# Exceptions that must never escape: turned into MalformedError at the public boundary.
_FOREIGN = (
    IndexError,
    KeyError,
    struct.error,
    UnicodeError,
    ValueError,
    TypeError,
    OverflowError,
    RecursionError,
    MemoryError,
)


# A list/map/object that skip() stepped over stands in the reference table as a tuple
# (offset, class definitions then, types then): decoding never produces a tuple.


class _Replay:
    """A window on a decoder table for re-decoding a skipped value (see ``_resolve``).

    It shows the table up to where the skipped value began; what the replay registers is
    written over the entries the skip registered (placeholders, or equal definitions).
    """

    __slots__ = ("_items", "_next")

    def __init__(self, items: list[Any], start: int) -> None:
        self._items = items
        self._next = start

    def __len__(self) -> int:
        return self._next

    def __getitem__(self, index: int) -> Any:
        if not 0 <= index < self._next:
            raise IndexError(index)
        return self._items[index]

    def __setitem__(self, index: int, value: Any) -> None:
        self._items[index] = value

    def append(self, value: Any) -> None:
        if self._next >= len(self._items):
            raise MalformedError("a skipped value reads differently when replayed")
        self._items[self._next] = value
        self._next += 1


def _is_string_tag(tag: int) -> bool:
    return tag < 0x20 or 0x30 <= tag <= 0x33 or tag == 0x52 or tag == 0x53


def _is_int_tag(tag: int) -> bool:
    return 0x80 <= tag <= 0xD7 or tag == 0x49


class Decoder:
    """Reads consecutive Hessian values from ``data[pos:end]``.

    After any :class:`DecodeError` the decoder's state is undefined: drop it.
    """

    __slots__ = (
        "_classes",
        "_data",
        "_depth",
        "_end",
        "_limits",
        "_max_depth",
        "_pos",
        "_refs",
        "_types",
    )

    def __init__(
        self,
        data: bytes | bytearray | memoryview,
        pos: int = 0,
        end: int | None = None,
        limits: Limits = DEFAULT_LIMITS,
    ) -> None:
        if not isinstance(data, bytes):
            data = bytes(data)
        size = len(data)
        if end is None or end > size:
            end = size
        if not 0 <= pos <= end:
            raise ValueError(f"pos {pos} outside 0..{end}")
        self._data: bytes = data
        self._pos = pos
        self._end = end
        self._limits = limits
        self._max_depth = limits.max_depth
        self._depth = 0
        self._refs: list[Any] = []
        self._classes: list[tuple[str, tuple[str, ...]]] = []
        self._types: list[str] = []

    # ----------------------------------------------------------------- public surface

    @property
    def pos(self) -> int:
        """Offset of the next unread byte in ``data``."""
        return self._pos

    @property
    def end(self) -> int:
        return self._end

    def at_end(self) -> bool:
        return self._pos >= self._end

    @property
    def class_defs(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """The class definitions seen so far: ``(type_name, field_names)``, in wire order."""
        return tuple(self._classes)

    @property
    def type_names(self) -> tuple[str, ...]:
        """The list/map type names seen so far, in wire order (what type refs index)."""
        return tuple(self._types)

    @property
    def ref_count(self) -> int:
        """How many lists, maps and objects (read or skipped) value refs can name so far."""
        return len(self._refs)

    def read(self) -> Any:
        """Decode the next value."""
        try:
            return self._read()
        except DecodeError:
            raise
        except _FOREIGN as exc:
            raise MalformedError(f"undecodable Hessian ({type(exc).__name__}: {exc})") from None

    def skip(self) -> None:
        """Step over the next value without building it (tables are kept right)."""
        try:
            self._skip()
        except DecodeError:
            raise
        except _FOREIGN as exc:
            raise MalformedError(f"undecodable Hessian ({type(exc).__name__}: {exc})") from None

    def read_string(self) -> str:
        """The next value, which must be a (non-null) string."""
        data = self._data
        pos = self._pos
        tag = data[pos] if pos < self._end else -1
        if 0 <= tag < 0x20:  # the common case: a short ASCII string, one slice
            stop = pos + 1 + tag
            if stop <= self._end:
                seg = data[pos + 1 : stop]
                if seg.isascii():
                    self._pos = stop
                    return seg.decode()
        value = self.read_nullable_string()
        if value is None:
            raise UnexpectedTypeError("expected a string, got null")
        return value

    def read_nullable_string(self) -> str | None:
        """The next value, which must be a string or null."""
        pos = self._pos
        if pos >= self._end:
            raise TruncatedError("expected a string, got the end of the data")
        tag = self._data[pos]
        if tag == 0x4E:
            self._pos = pos + 1
            return None
        if not _is_string_tag(tag):
            raise UnexpectedTypeError(f"expected a string, got tag 0x{tag:02x}")
        try:
            return self._string(tag)
        except DecodeError:
            raise
        except _FOREIGN as exc:
            raise MalformedError(f"undecodable string ({type(exc).__name__}: {exc})") from None

    def read_int(self) -> int:
        """The next value, which must be an int or a long (as Java's ``readInt`` allows)."""
        pos = self._pos
        if pos >= self._end:
            raise TruncatedError("expected an int, got the end of the data")
        tag = self._data[pos]
        if 0x80 <= tag <= 0xBF:
            self._pos = pos + 1
            return tag - 0x90
        if _is_int_tag(tag) or tag >= 0xD8 or 0x38 <= tag <= 0x3F or tag in (0x59, 0x4C):
            return int(self._read())
        raise UnexpectedTypeError(f"expected an int, got tag 0x{tag:02x}")

    # ----------------------------------------------------------------- reading

    def _read(self) -> Any:
        pos = self._pos
        if pos >= self._end:
            raise TruncatedError("expected a value, got the end of the data")
        tag = self._data[pos]
        if tag < 0x20:  # compact string: inlined, it is most of a Dubbo body
            stop = pos + 1 + tag
            if stop <= self._end:
                seg = self._data[pos + 1 : stop]
                if seg.isascii():
                    self._pos = stop
                    return seg.decode()
        return _READERS[tag](self, tag)

    def _need(self, pos: int, size: int) -> None:
        if pos + size > self._end:
            raise TruncatedError(f"value needs {size} bytes at offset {pos}, data ends first")

    def _invalid(self, tag: int) -> Any:
        raise MalformedError(f"invalid tag 0x{tag:02x} at offset {self._pos}")

    # --- scalars ---

    def _null(self, tag: int) -> None:
        self._pos += 1

    def _true(self, tag: int) -> bool:
        self._pos += 1
        return True

    def _false(self, tag: int) -> bool:
        self._pos += 1
        return False

    def _int1(self, tag: int) -> int:
        self._pos += 1
        return tag - 0x90

    def _int2(self, tag: int) -> int:
        pos = self._pos
        self._need(pos, 2)
        self._pos = pos + 2
        return ((tag - 0xC8) << 8) | self._data[pos + 1]

    def _int3(self, tag: int) -> int:
        pos = self._pos
        self._need(pos, 3)
        self._pos = pos + 3
        data = self._data
        return ((tag - 0xD4) << 16) | (data[pos + 1] << 8) | data[pos + 2]

    def _int4(self, tag: int) -> int:
        pos = self._pos
        self._need(pos, 5)
        self._pos = pos + 5
        return int(_I32.unpack_from(self._data, pos + 1)[0])

    def _long1(self, tag: int) -> HessianLong:
        self._pos += 1
        return HessianLong(tag - 0xE0)

    def _long2(self, tag: int) -> HessianLong:
        pos = self._pos
        self._need(pos, 2)
        self._pos = pos + 2
        return HessianLong(((tag - 0xF8) << 8) | self._data[pos + 1])

    def _long3(self, tag: int) -> HessianLong:
        pos = self._pos
        self._need(pos, 3)
        self._pos = pos + 3
        data = self._data
        return HessianLong(((tag - 0x3C) << 16) | (data[pos + 1] << 8) | data[pos + 2])

    def _long4(self, tag: int) -> HessianLong:
        pos = self._pos
        self._need(pos, 5)
        self._pos = pos + 5
        return HessianLong(_I32.unpack_from(self._data, pos + 1)[0])

    def _long8(self, tag: int) -> HessianLong:
        pos = self._pos
        self._need(pos, 9)
        self._pos = pos + 9
        return HessianLong(_I64.unpack_from(self._data, pos + 1)[0])

    def _double_zero(self, tag: int) -> float:
        self._pos += 1
        return 0.0

    def _double_one(self, tag: int) -> float:
        self._pos += 1
        return 1.0

    def _double_byte(self, tag: int) -> float:
        pos = self._pos
        self._need(pos, 2)
        self._pos = pos + 2
        b = self._data[pos + 1]
        return float(b - 256 if b >= 128 else b)

    def _double_short(self, tag: int) -> float:
        pos = self._pos
        self._need(pos, 3)
        self._pos = pos + 3
        return float(_I16.unpack_from(self._data, pos + 1)[0])

    def _double_mill(self, tag: int) -> float:
        pos = self._pos
        self._need(pos, 5)
        self._pos = pos + 5
        # Java: 0.001 * mills (not mills / 1000.0: the last bit can differ).
        mills: int = _I32.unpack_from(self._data, pos + 1)[0]
        return 0.001 * mills

    def _double8(self, tag: int) -> float:
        pos = self._pos
        self._need(pos, 9)
        self._pos = pos + 9
        return float(_F64.unpack_from(self._data, pos + 1)[0])

    def _date8(self, tag: int) -> HessianDate:
        pos = self._pos
        self._need(pos, 9)
        self._pos = pos + 9
        return HessianDate(_I64.unpack_from(self._data, pos + 1)[0])

    def _date4(self, tag: int) -> HessianDate:
        pos = self._pos
        self._need(pos, 5)
        self._pos = pos + 5
        return HessianDate(_I32.unpack_from(self._data, pos + 1)[0] * 60000)

    # --- strings and binary ---

    def _string(self, tag: int) -> str:
        """A string starting with ``tag`` at ``self._pos``, chunks included."""
        data = self._data
        end = self._end
        pos = self._pos + 1
        parts: list[str] | None = None
        surrogates = False
        while True:
            if tag < 0x20:
                units = tag
                final = True
            elif 0x30 <= tag <= 0x33:
                if pos >= end:
                    raise TruncatedError("string length runs past the end of the data")
                units = ((tag - 0x30) << 8) | data[pos]
                pos += 1
                final = True
            elif tag == 0x53 or tag == 0x52:  # 'S' final chunk, 'R' more chunks follow
                if pos + 2 > end:
                    raise TruncatedError("string length runs past the end of the data")
                units = (data[pos] << 8) | data[pos + 1]
                pos += 2
                final = tag == 0x53
            else:
                raise MalformedError(f"expected a string chunk, got tag 0x{tag:02x}")
            stop = pos + units
            if stop <= end and (seg := data[pos:stop]).isascii():
                text = seg.decode()
                pos = stop
            else:
                start = pos
                text, pos = _text.decode_units(data, pos, units, end)
                if not surrogates and b"\xed" in data[start:pos]:
                    surrogates = True
            if final:
                self._pos = pos
                if parts is not None:
                    parts.append(text)
                    text = "".join(parts)
                return _text.join_surrogates(text) if surrogates else text
            if parts is None:
                parts = []
            parts.append(text)
            if pos >= end:
                raise TruncatedError("chunked string runs past the end of the data")
            tag = data[pos]
            pos += 1

    def _binary(self, tag: int) -> bytes:
        data = self._data
        end = self._end
        pos = self._pos + 1
        parts: list[bytes] | None = None
        while True:
            if 0x20 <= tag <= 0x2F:
                size = tag - 0x20
                final = True
            elif 0x34 <= tag <= 0x37:
                if pos >= end:
                    raise TruncatedError("binary length runs past the end of the data")
                size = ((tag - 0x34) << 8) | data[pos]
                pos += 1
                final = True
            elif tag == 0x42 or tag == 0x41:  # 'B' final chunk, 'A' more chunks follow
                if pos + 2 > end:
                    raise TruncatedError("binary length runs past the end of the data")
                size = (data[pos] << 8) | data[pos + 1]
                pos += 2
                final = tag == 0x42
            else:
                raise MalformedError(f"expected a binary chunk, got tag 0x{tag:02x}")
            stop = pos + size
            if stop > end:
                raise TruncatedError(f"binary of {size} bytes runs past the end of the data")
            chunk = data[pos:stop]
            pos = stop
            if final:
                self._pos = pos
                if parts is None:
                    return chunk
                parts.append(chunk)
                return b"".join(parts)
            if parts is None:
                parts = []
            parts.append(chunk)
            if pos >= end:
                raise TruncatedError("chunked binary runs past the end of the data")
            tag = data[pos]
            pos += 1

    # --- helpers for counts, types and definitions ---

    def _int_value(self, what: str) -> int:
        """A 32-bit int (a length, a count or an index)."""
        pos = self._pos
        if pos >= self._end:
            raise TruncatedError(f"expected {what}, got the end of the data")
        tag = self._data[pos]
        if 0x80 <= tag <= 0xBF:
            self._pos = pos + 1
            return tag - 0x90
        if tag == 0x49:
            return self._int4(tag)
        if tag <= 0xCF and tag >= 0xC0:
            return self._int2(tag)
        if 0xD0 <= tag <= 0xD7:
            return self._int3(tag)
        raise MalformedError(f"expected {what} (an int), got tag 0x{tag:02x}")

    def _count(self, what: str) -> int:
        """A declared element count, checked against the bytes left (one byte per element
        at least), so a lying length is refused before anything is allocated (D7)."""
        n = self._int_value(what)
        if n < 0:
            raise MalformedError(f"negative {what}: {n}")
        if n > self._end - self._pos:
            raise TruncatedError(
                f"{what} {n} exceeds the {self._end - self._pos} bytes left (length lie?)"
            )
        return n

    def _type(self) -> str:
        """A list/map type: a string (added to the type table) or an int naming one."""
        pos = self._pos
        if pos >= self._end:
            raise TruncatedError("expected a type, got the end of the data")
        tag = self._data[pos]
        if _is_string_tag(tag):
            name = self._string(tag)
            if len(self._types) >= self._limits.max_types:
                raise LimitExceededError(f"more than {self._limits.max_types} type names")
            self._types.append(name)
            return name
        if _is_int_tag(tag):
            index = self._int_value("a type reference")
            if not 0 <= index < len(self._types):
                raise MalformedError(f"type reference {index} but {len(self._types)} types seen")
            return self._types[index]
        raise MalformedError(f"expected a type, got tag 0x{tag:02x}")

    def _class_def(self) -> None:
        """'C' type-name field-count field-names: add a class definition.

        The same definitions arrive in request after request (a POJO argument's class), so
        a parsed definition is remembered by its exact bytes: a definition whose bytes match
        one seen before costs one name read and one comparison.
        """
        data = self._data
        end = self._end
        start = self._pos
        pos = start + 1
        if pos >= end:
            raise TruncatedError("class definition runs past the end of the data")
        tag = data[pos]
        if not _is_string_tag(tag):
            raise MalformedError(f"class name must be a string, got tag 0x{tag:02x}")
        self._pos = pos
        name = self._string(tag)
        prefix = data[start : self._pos]
        known = _CLASS_DEF_CACHE.get(prefix)
        if known is not None and known[0] == name and data.startswith(known[1], start):
            stop = start + len(known[1])
            if stop <= end:
                self._add_class(name, known[2])
                self._pos = stop
                return
        count = self._count("field count")
        if count > self._limits.max_class_fields:
            raise LimitExceededError(
                f"class {name!r} has {count} fields, limit {self._limits.max_class_fields}"
            )
        fields = []
        pos = self._pos
        for _ in range(count):
            if (
                pos < end
                and (tag := data[pos]) < 0x20
                and (stop := pos + 1 + tag) <= end
                and (seg := data[pos + 1 : stop]).isascii()
            ):
                fields.append(seg.decode())
                pos = stop
                continue
            if pos >= end:
                raise TruncatedError("class definition runs past the end of the data")
            tag = data[pos]
            if not _is_string_tag(tag):
                raise MalformedError(f"field name must be a string, got tag 0x{tag:02x}")
            self._pos = pos
            fields.append(self._string(tag))
            pos = self._pos
        self._pos = pos
        names = tuple(fields)
        self._add_class(name, names)
        if pos - start <= _CLASS_DEF_CACHE_MAX_BYTES:
            if len(_CLASS_DEF_CACHE) >= _CLASS_DEF_CACHE_SIZE:
                _CLASS_DEF_CACHE.clear()
            _CLASS_DEF_CACHE[prefix] = (name, data[start:pos], names)

    def _add_class(self, name: str, fields: tuple[str, ...]) -> None:
        limits = self._limits
        if len(fields) > limits.max_class_fields:
            raise LimitExceededError(
                f"class {name!r} has {len(fields)} fields, limit {limits.max_class_fields}"
            )
        if len(self._classes) >= limits.max_class_defs:
            raise LimitExceededError(f"more than {limits.max_class_defs} class definitions")
        self._classes.append((name, fields))

    def _class_defs(self) -> None:
        """Consume consecutive definitions (a loop: a run of 'C's must not recurse)."""
        data = self._data
        while True:
            self._class_def()
            pos = self._pos
            if pos >= self._end or data[pos] != 0x43:
                return

    def _class_then_value(self, tag: int) -> Any:
        """'C' is not a value: definitions precede the object (or any value) they serve."""
        self._class_defs()
        return self._read()

    def _enter(self) -> None:
        self._depth += 1
        if self._depth > self._max_depth:
            raise LimitExceededError(f"nesting deeper than {self._max_depth}")

    # --- containers ---

    def _list_items(self, items: list[Any], count: int) -> None:
        read = self._read
        append = items.append
        for _ in range(count):
            append(read())

    def _list_until_end(self, items: list[Any]) -> None:
        data = self._data
        read = self._read
        append = items.append
        while True:
            pos = self._pos
            if pos >= self._end:
                raise TruncatedError("list runs past the end of the data")
            if data[pos] == _END:
                self._pos = pos + 1
                return
            append(read())

    def _list_compact_untyped(self, tag: int) -> list[Any]:
        self._pos += 1
        self._enter()
        items: list[Any] = []
        self._refs.append(items)
        self._list_items(items, tag - 0x78)
        self._depth -= 1
        return items

    def _list_compact_typed(self, tag: int) -> HessianList:
        self._pos += 1
        items = HessianList(self._type())
        self._enter()
        self._refs.append(items)
        self._list_items(items, tag - 0x70)
        self._depth -= 1
        return items

    def _list_fixed_untyped(self, tag: int) -> list[Any]:  # 'X' int value*
        self._pos += 1
        count = self._count("list length")
        self._enter()
        items: list[Any] = []
        self._refs.append(items)
        self._list_items(items, count)
        self._depth -= 1
        return items

    def _list_fixed_typed(self, tag: int) -> HessianList:  # 'V' type int value*
        self._pos += 1
        items = HessianList(self._type())
        count = self._count("list length")
        self._enter()
        self._refs.append(items)
        self._list_items(items, count)
        self._depth -= 1
        return items

    def _list_variable_untyped(self, tag: int) -> list[Any]:  # 'W' value* 'Z'
        self._pos += 1
        self._enter()
        items: list[Any] = []
        self._refs.append(items)
        self._list_until_end(items)
        self._depth -= 1
        return items

    def _list_variable_typed(self, tag: int) -> HessianList:  # 'U' type value* 'Z'
        self._pos += 1
        items = HessianList(self._type())
        self._enter()
        self._refs.append(items)
        self._list_until_end(items)
        self._depth -= 1
        return items

    def _map(self, tag: int) -> Any:  # 'H' (k v)* 'Z'  |  'M' type (k v)* 'Z'
        self._pos += 1
        result: dict[Any, Any] = {} if tag == 0x48 else HessianMap(self._type())
        self._enter()
        index = len(self._refs)
        self._refs.append(result)
        data = self._data
        end = self._end
        read = self._read
        while True:
            # Short ASCII keys and values (all of a Dubbo attachments map) are read inline.
            pos = self._pos
            if pos >= end:
                raise TruncatedError("map runs past the end of the data")
            tag = data[pos]
            if tag == _END:
                self._pos = pos + 1
                break
            if (
                tag < 0x20
                and (stop := pos + 1 + tag) <= end
                and (seg := data[pos + 1 : stop]).isascii()
            ):
                key: Any = seg.decode()
                self._pos = pos = stop
            else:
                key = read()
                pos = self._pos
            if (
                pos < end
                and (tag := data[pos]) < 0x20
                and (stop := pos + 1 + tag) <= end
                and (seg := data[pos + 1 : stop]).isascii()
            ):
                value: Any = seg.decode()
                self._pos = stop
            else:
                value = read()
            try:
                result[key] = value
            except TypeError:  # unhashable key (a list, map or object): keep pairs instead
                self._depth -= 1
                return self._map_entries(result, index, key, value)
        self._depth -= 1
        return result

    def _map_entries(self, partial: dict[Any, Any], index: int, key: Any, value: Any) -> MapEntries:
        type_name = partial.type_name if isinstance(partial, HessianMap) else None
        entries = MapEntries(type_name, partial.items())
        entries.entries.append((key, value))
        self._refs[index] = entries
        self._enter()
        data = self._data
        while True:
            pos = self._pos
            if pos >= self._end:
                raise TruncatedError("map runs past the end of the data")
            if data[pos] == _END:
                self._pos = pos + 1
                break
            key = self._read()
            entries.entries.append((key, self._read()))
        self._depth -= 1
        return entries

    def _object_compact(self, tag: int) -> HessianObject:  # 0x60..0x6f: definition 0..15
        self._pos += 1
        return self._object(tag - 0x60)

    def _object_long(self, tag: int) -> HessianObject:  # 'O' int
        self._pos += 1
        return self._object(self._int_value("a class definition index"))

    def _object(self, index: int) -> HessianObject:
        if not 0 <= index < len(self._classes):
            raise MalformedError(
                f"object of class definition {index}, but {len(self._classes)} defined"
            )
        type_name, fields = self._classes[index]
        self._enter()
        obj = HessianObject._empty(type_name, fields)
        self._refs.append(obj)
        values = obj.values
        read = self._read
        for _ in fields:
            values.append(read())
        self._depth -= 1
        return obj

    def _ref(self, tag: int) -> Any:  # 'Q' int: a list, map or object seen before
        self._pos += 1
        index = self._int_value("a value reference")
        refs = self._refs
        if not 0 <= index < len(refs):
            raise MalformedError(f"value reference {index} but {len(refs)} values seen")
        value = refs[index]
        if type(value) is tuple:  # skipped: see _placeholder
            value = self._resolve(index, value)
        return value

    def _resolve(self, index: int, skipped: tuple[int, int, int]) -> Any:
        """Decode a skipped value that a later value refers to, from its recorded offset.

        A sub-decoder replays the skipped bytes over windows of this decoder's tables as
        they stood at that offset: what it registers lands in place (the placeholders become
        values), so nothing is copied and each skipped byte is decoded at most once more.
        """
        sub = Decoder.__new__(Decoder)
        sub._data = self._data
        pos, n_classes, n_types = skipped
        sub._pos = pos
        sub._end = self._end
        sub._limits = self._limits
        sub._max_depth = self._max_depth
        sub._depth = self._depth  # the resolution nests where the reference is
        sub._refs = cast("list[Any]", _Replay(self._refs, index))
        sub._classes = cast("list[tuple[str, tuple[str, ...]]]", _Replay(self._classes, n_classes))
        sub._types = cast("list[str]", _Replay(self._types, n_types))
        sub._read()
        return self._refs[index]

    # ----------------------------------------------------------------- skipping

    def _skip(self) -> None:
        pos = self._pos
        if pos >= self._end:
            raise TruncatedError("expected a value, got the end of the data")
        tag = self._data[pos]
        size = _FIXED_SIZE[tag]
        if size:
            if pos + size > self._end:
                raise TruncatedError(f"value needs {size} bytes at offset {pos}, data ends first")
            self._pos = pos + size
            return
        if tag < 0x20:
            stop = pos + 1 + tag
            if stop <= self._end and self._data[pos + 1 : stop].isascii():
                self._pos = stop
                return
        _SKIPPERS[tag](self, tag)

    def _skip_string(self, tag: int) -> None:
        self._string(tag)  # validates the text, as reading would

    def _skip_binary(self, tag: int) -> None:
        self._binary(tag)

    def _skip_class_then_value(self, tag: int) -> None:
        self._class_defs()
        self._skip()

    def _placeholder(self, pos: int, n_types: int) -> None:
        self._refs.append((pos, len(self._classes), n_types))

    def _skip_items(self, count: int) -> None:
        # Scalars and short ASCII strings are stepped over inline: no call per field.
        data = self._data
        end = self._end
        fixed = _FIXED_SIZE
        skip = self._skip
        pos = self._pos
        for _ in range(count):
            if pos < end:
                tag = data[pos]
                size = fixed[tag]
                if size and pos + size <= end:
                    pos += size
                    continue
                if tag < 0x20 and (stop := pos + 1 + tag) <= end and data[pos + 1 : stop].isascii():
                    pos = stop
                    continue
            self._pos = pos
            skip()
            pos = self._pos
        self._pos = pos

    def _skip_until_end(self) -> None:
        data = self._data
        end = self._end
        fixed = _FIXED_SIZE
        skip = self._skip
        pos = self._pos
        while True:
            if pos >= end:
                raise TruncatedError("container runs past the end of the data")
            tag = data[pos]
            if tag == _END:
                self._pos = pos + 1
                return
            size = fixed[tag]
            if size and pos + size <= end:
                pos += size
                continue
            if tag < 0x20 and (stop := pos + 1 + tag) <= end and data[pos + 1 : stop].isascii():
                pos = stop
                continue
            self._pos = pos
            skip()
            pos = self._pos

    def _skip_list(self, tag: int) -> None:
        start = self._pos
        n_types = len(self._types)
        self._pos = start + 1
        if tag in (0x55, 0x56) or 0x70 <= tag <= 0x77:
            self._type()
        if tag == 0x56 or tag == 0x58:
            count = self._count("list length")
        elif tag >= 0x70:
            count = (tag - 0x70) & 7
        else:
            count = -1  # variable length
        self._enter()
        self._placeholder(start, n_types)
        if count >= 0:
            self._skip_items(count)
        else:
            self._skip_until_end()
        self._depth -= 1

    def _skip_map(self, tag: int) -> None:
        start = self._pos
        n_types = len(self._types)
        self._pos = start + 1
        if tag == 0x4D:
            self._type()
        self._enter()
        self._placeholder(start, n_types)
        self._skip_until_end()  # keys and values alternate; 'Z' never starts a value
        self._depth -= 1

    def _skip_object(self, tag: int) -> None:
        start = self._pos
        self._pos = start + 1
        index = tag - 0x60 if tag != 0x4F else self._int_value("a class definition index")
        if not 0 <= index < len(self._classes):
            raise MalformedError(
                f"object of class definition {index}, but {len(self._classes)} defined"
            )
        self._enter()
        self._placeholder(start, len(self._types))
        self._skip_items(len(self._classes[index][1]))
        self._depth -= 1

    def _skip_ref(self, tag: int) -> None:
        self._pos += 1
        index = self._int_value("a value reference")
        if not 0 <= index < len(self._refs):
            raise MalformedError(f"value reference {index} but {len(self._refs)} values seen")


def decode(data: bytes | bytearray | memoryview, *, limits: Limits = DEFAULT_LIMITS) -> Any:
    """Decode exactly one value; trailing bytes are an error."""
    decoder = Decoder(data, limits=limits)
    value = decoder.read()
    if not decoder.at_end():
        raise MalformedError(f"{decoder.end - decoder.pos} trailing bytes after the value")
    return value


# ------------------------------------------------------------------- dispatch tables

_Reader = Callable[[Decoder, int], Any]
_Skipper = Callable[[Decoder, int], None]


def _build_readers() -> list[_Reader]:
    table: list[_Reader] = [Decoder._invalid] * 256
    D = Decoder

    def span(lo: int, hi: int, fn: _Reader) -> None:
        for t in range(lo, hi + 1):
            table[t] = fn

    span(0x00, 0x1F, D._string)
    span(0x20, 0x2F, D._binary)
    span(0x30, 0x33, D._string)
    span(0x34, 0x37, D._binary)
    span(0x38, 0x3F, D._long3)
    table[0x41] = D._binary  # 'A'
    table[0x42] = D._binary  # 'B'
    table[0x43] = D._class_then_value  # 'C'
    table[0x44] = D._double8  # 'D'
    table[0x46] = D._false  # 'F'
    table[0x48] = D._map  # 'H'
    table[0x49] = D._int4  # 'I'
    table[0x4A] = D._date8
    table[0x4B] = D._date4
    table[0x4C] = D._long8  # 'L'
    table[0x4D] = D._map  # 'M'
    table[0x4E] = D._null  # 'N'
    table[0x4F] = D._object_long  # 'O'
    table[0x51] = D._ref  # 'Q'
    table[0x52] = D._string  # 'R'
    table[0x53] = D._string  # 'S'
    table[0x54] = D._true  # 'T'
    table[0x55] = D._list_variable_typed  # 'U'
    table[0x56] = D._list_fixed_typed  # 'V'
    table[0x57] = D._list_variable_untyped  # 'W'
    table[0x58] = D._list_fixed_untyped  # 'X'
    table[0x59] = D._long4
    table[0x5B] = D._double_zero
    table[0x5C] = D._double_one
    table[0x5D] = D._double_byte
    table[0x5E] = D._double_short
    table[0x5F] = D._double_mill
    span(0x60, 0x6F, D._object_compact)
    span(0x70, 0x77, D._list_compact_typed)
    span(0x78, 0x7F, D._list_compact_untyped)
    span(0x80, 0xBF, D._int1)
    span(0xC0, 0xCF, D._int2)
    span(0xD0, 0xD7, D._int3)
    span(0xD8, 0xEF, D._long1)
    span(0xF0, 0xFF, D._long2)
    return table


def _build_fixed_sizes() -> list[int]:
    """Total size (tag included) of every fixed-size form; 0 for the others."""
    sizes = [0] * 256
    for tag in range(0x80, 0xC0):
        sizes[tag] = 1
    for tag in range(0xC0, 0xD0):
        sizes[tag] = 2
    for tag in range(0xD0, 0xD8):
        sizes[tag] = 3
    for tag in range(0xD8, 0xF0):
        sizes[tag] = 1
    for tag in range(0xF0, 0x100):
        sizes[tag] = 2
    for tag in range(0x38, 0x40):
        sizes[tag] = 3
    for tag, size in {
        0x4E: 1, 0x54: 1, 0x46: 1,  # null, true, false
        0x49: 5, 0x59: 5, 0x4C: 9,  # int, long as int, long
        0x5B: 1, 0x5C: 1, 0x5D: 2, 0x5E: 3, 0x5F: 5, 0x44: 9,  # doubles
        0x4A: 9, 0x4B: 5,  # dates
    }.items():  # fmt: skip
        sizes[tag] = size
    return sizes


def _build_skippers() -> list[_Skipper]:
    table: list[_Skipper] = [Decoder._invalid] * 256
    D = Decoder
    for tag in (*range(0x00, 0x20), *range(0x30, 0x34), 0x52, 0x53):
        table[tag] = D._skip_string
    for tag in (*range(0x20, 0x30), *range(0x34, 0x38), 0x41, 0x42):
        table[tag] = D._skip_binary
    for tag in (0x55, 0x56, 0x57, 0x58, *range(0x70, 0x80)):
        table[tag] = D._skip_list
    table[0x48] = D._skip_map
    table[0x4D] = D._skip_map
    for tag in (0x4F, *range(0x60, 0x70)):
        table[tag] = D._skip_object
    table[0x43] = D._skip_class_then_value
    table[0x51] = D._skip_ref
    return table


_READERS = _build_readers()
_FIXED_SIZE = _build_fixed_sizes()
_SKIPPERS = _build_skippers()
