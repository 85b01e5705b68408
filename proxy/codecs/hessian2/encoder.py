"""Hessian 2.0 encoder: writes the forms Java's Hessian2Output (hessian-lite) writes.

Canonical choices, as Java makes them: the shortest int/long form; doubles as 0.0, 1.0, byte,
short, ``0x5f`` milli-int (when ``0.001 * mills == value``) or 64-bit; dates in minutes when
whole minutes; strings in chunks of 0x8000 UTF-16 units never ending on a high surrogate;
binary in chunks of 4093 bytes (hessian-lite's buffer, as hessian.js does); lists and maps
with a length (the ``begin``/``end`` calls write the variable-length forms); a type name
written once, then referred to by number; a class definition just before the first object
of its class; a list, map or object met again (same Python object) as a value reference.
"""

from __future__ import annotations

import datetime as _dt
import math
import struct
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from . import _text
from .errors import EncodeError
from .limits import MAX_DEPTH
from .values import HessianDate, HessianList, HessianLong, HessianMap, HessianObject, MapEntries

if TYPE_CHECKING:
    from .decoder import Decoder

_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_I64 = struct.Struct(">q")
_F64 = struct.Struct(">d")

_INT32_MIN = -0x8000_0000
_INT32_MAX = 0x7FFF_FFFF
_INT64_MIN = -0x8000_0000_0000_0000
_INT64_MAX = 0x7FFF_FFFF_FFFF_FFFF

#: Largest string chunk, in UTF-16 units (the 16-bit chunk length; Java uses 0x8000).
STRING_CHUNK = 0x8000
#: Largest binary chunk: hessian-lite's 4096-byte buffer minus the 3-byte chunk header.
BINARY_CHUNK = 4093


def _java_int(value: float) -> int:
    """Java's ``(int) double``: truncate toward zero, saturate, NaN -> 0."""
    if value != value:
        return 0
    if value >= 2147483647.0:
        return _INT32_MAX
    if value <= -2147483648.0:
        return _INT32_MIN
    return int(value)


class Encoder:
    """Writes consecutive values into one stream sharing class, type and reference tables."""

    __slots__ = ("_buf", "_classes", "_depth", "_max_depth", "_ref_count", "_refs", "_types")

    def __init__(self, *, max_depth: int = MAX_DEPTH) -> None:
        self._buf = bytearray()
        # id(obj) -> (ref index, obj); keeping obj alive keeps its id from being reused.
        self._refs: dict[int, tuple[int, object]] = {}
        self._ref_count = 0
        self._classes: dict[tuple[str, tuple[str, ...]], int] = {}
        self._types: dict[str, int] = {}
        self._depth = 0
        self._max_depth = max_depth

    @classmethod
    def continuing(cls, decoder: Decoder, *, max_depth: int = MAX_DEPTH) -> Encoder:
        """An encoder whose output may be appended to the bytes ``decoder`` has consumed.

        It reuses the decoder's class definitions and type names and numbers its values
        after the decoder's, so the appended values read right in the same stream (Dubbo:
        re-encode the attachments map behind untouched argument bytes).
        """
        enc = cls(max_depth=max_depth)
        for i, key in enumerate(decoder.class_defs):
            enc._classes.setdefault(key, i)
        for i, name in enumerate(decoder.type_names):
            enc._types.setdefault(name, i)
        enc._ref_count = decoder.ref_count
        return enc

    def getvalue(self) -> bytes:
        return bytes(self._buf)

    def __len__(self) -> int:
        return len(self._buf)

    # ----------------------------------------------------------------- any value

    def write(self, value: Any) -> None:
        """Write any supported value (see the mapping table in ``values``)."""
        writer = _WRITERS.get(type(value))
        if writer is None:
            writer = _writer_for(value)
        writer(self, value)

    # ----------------------------------------------------------------- scalars

    def write_null(self, value: None = None) -> None:
        self._buf.append(0x4E)

    def write_bool(self, value: bool) -> None:
        self._buf.append(0x54 if value else 0x46)

    def write_int(self, value: int) -> None:
        """A 32-bit int in its shortest form."""
        buf = self._buf
        if -0x10 <= value <= 0x2F:
            buf.append(0x90 + value)
        elif -0x800 <= value <= 0x7FF:
            buf += bytes((0xC8 + (value >> 8), value & 0xFF))
        elif -0x40000 <= value <= 0x3FFFF:
            buf += bytes((0xD4 + (value >> 16), (value >> 8) & 0xFF, value & 0xFF))
        elif _INT32_MIN <= value <= _INT32_MAX:
            buf.append(0x49)
            buf += _I32.pack(value)
        else:
            raise EncodeError(f"int {value} does not fit 32 bits (write it as a long)")

    def write_long(self, value: int) -> None:
        """A 64-bit long in its shortest form."""
        buf = self._buf
        if -0x08 <= value <= 0x0F:
            buf.append(0xE0 + value)
        elif -0x800 <= value <= 0x7FF:
            buf += bytes((0xF8 + (value >> 8), value & 0xFF))
        elif -0x40000 <= value <= 0x3FFFF:
            buf += bytes((0x3C + (value >> 16), (value >> 8) & 0xFF, value & 0xFF))
        elif _INT32_MIN <= value <= _INT32_MAX:
            buf.append(0x59)
            buf += _I32.pack(value)
        elif _INT64_MIN <= value <= _INT64_MAX:
            buf.append(0x4C)
            buf += _I64.pack(value)
        else:
            raise EncodeError(f"integer {value} does not fit 64 bits")

    def _write_python_int(self, value: int) -> None:
        if _INT32_MIN <= value <= _INT32_MAX:
            self.write_int(value)
        else:
            self.write_long(value)

    def write_double(self, value: float) -> None:
        buf = self._buf
        as_int = _java_int(value)
        if as_int == value:
            if as_int == 0:
                buf.append(0x5B)
                return
            if as_int == 1:
                buf.append(0x5C)
                return
            if -0x80 <= as_int < 0x80:
                buf += bytes((0x5D, as_int & 0xFF))
                return
            if -0x8000 <= as_int < 0x8000:
                buf.append(0x5E)
                buf += _I16.pack(as_int)
                return
        mills = _java_int(value * 1000) if math.isfinite(value) else 0
        if 0.001 * mills == value:
            buf.append(0x5F)
            buf += _I32.pack(mills)
            return
        buf.append(0x44)
        buf += _F64.pack(value)

    def write_date(self, value: HessianDate | _dt.datetime) -> None:
        millis = (
            value.millis
            if isinstance(value, HessianDate)
            else HessianDate.from_datetime(value).millis
        )
        buf = self._buf
        if millis % 60000 == 0 and _INT32_MIN <= millis // 60000 <= _INT32_MAX:
            buf.append(0x4B)
            buf += _I32.pack(millis // 60000)
        elif _INT64_MIN <= millis <= _INT64_MAX:
            buf.append(0x4A)
            buf += _I64.pack(millis)
        else:
            raise EncodeError(f"date {millis} ms does not fit 64 bits")

    def write_string(self, value: str) -> None:
        buf = self._buf
        units = len(value)
        if units <= 0x1F and value.isascii():
            buf.append(units)
            buf += value.encode()
            return
        if value.isascii():
            if units <= STRING_CHUNK:
                self._string_header(units, final=True)
                buf += value.encode()
                return
        else:
            value = _text.split_astral(value)  # one character per UTF-16 unit from here
            units = len(value)
        start = 0
        while units - start > STRING_CHUNK:
            stop = start + STRING_CHUNK
            if 0xD800 <= ord(value[stop - 1]) <= 0xDBFF:  # a chunk never ends on a high half
                stop -= 1
            self._string_header(stop - start, final=False)
            buf += _text.encode_units(value[start:stop])
            start = stop
        self._string_header(units - start, final=True)
        buf += _text.encode_units(value[start:])

    def _string_header(self, units: int, *, final: bool) -> None:
        buf = self._buf
        if not final:
            buf += bytes((0x52, units >> 8, units & 0xFF))
        elif units <= 0x1F:
            buf.append(units)
        elif units <= 0x3FF:
            buf += bytes((0x30 + (units >> 8), units & 0xFF))
        else:
            buf += bytes((0x53, units >> 8, units & 0xFF))

    def write_binary(self, value: bytes | bytearray | memoryview) -> None:
        data = bytes(value)
        buf = self._buf
        size = len(data)
        start = 0
        while size - start > BINARY_CHUNK:
            buf += bytes((0x41, BINARY_CHUNK >> 8, BINARY_CHUNK & 0xFF))
            buf += data[start : start + BINARY_CHUNK]
            start += BINARY_CHUNK
        left = size - start
        if left <= 0x0F:
            buf.append(0x20 + left)
        elif left <= 0x3FF:
            buf += bytes((0x34 + (left >> 8), left & 0xFF))
        else:
            buf += bytes((0x42, left >> 8, left & 0xFF))
        buf += data[start:]

    # ----------------------------------------------------------------- tables

    def _ref(self, obj: object) -> bool:
        """Write a reference if ``obj`` was written before; else number it. True if written."""
        seen = self._refs.get(id(obj))
        if seen is not None:
            self._buf.append(0x51)
            self.write_int(seen[0])
            return True
        self._refs[id(obj)] = (self._ref_count, obj)
        self._ref_count += 1
        return False

    def write_type(self, type_name: str) -> None:
        """A list/map type: the name the first time, its number after that."""
        if not type_name:
            raise EncodeError("an empty type name is not allowed")
        index = self._types.get(type_name)
        if index is None:
            self._types[type_name] = len(self._types)
            self.write_string(type_name)
        else:
            self.write_int(index)

    def _enter(self) -> None:
        self._depth += 1
        if self._depth > self._max_depth:
            raise EncodeError(f"value nests deeper than {self._max_depth}")

    # ----------------------------------------------------------------- containers

    def write_list_begin(self, length: int | None, type_name: str | None = None) -> None:
        """Begin a list of ``length`` items (``None``: variable length, end it with
        :meth:`write_list_end`). Items are then written with :meth:`write`.
        The list gets a reference number, as Java numbers every list it writes."""
        self._ref_count += 1
        buf = self._buf
        if length is None:
            if type_name:
                buf.append(0x55)
                self.write_type(type_name)
            else:
                buf.append(0x57)
        elif length <= 7:
            if type_name:
                buf.append(0x70 + length)
                self.write_type(type_name)
            else:
                buf.append(0x78 + length)
        else:
            if type_name:
                buf.append(0x56)
                self.write_type(type_name)
            else:
                buf.append(0x58)
            self.write_int(length)

    def write_list_end(self) -> None:
        self._buf.append(0x5A)

    def write_map_begin(self, type_name: str | None = None) -> None:
        """Begin a map; write keys and values alternately, then :meth:`write_map_end`."""
        self._ref_count += 1
        if type_name:
            self._buf.append(0x4D)
            self.write_type(type_name)
        else:
            self._buf.append(0x48)

    def write_map_end(self) -> None:
        self._buf.append(0x5A)

    def write_list(self, items: Iterable[Any], type_name: str | None = None) -> None:
        if self._ref(items):
            return
        seq = items if isinstance(items, list | tuple) else list(items)
        self._ref_count -= 1  # write_list_begin numbers it again
        self.write_list_begin(len(seq), type_name)
        self._enter()
        write = self.write
        for item in seq:
            write(item)
        self._depth -= 1

    def write_map(self, mapping: Mapping[Any, Any], type_name: str | None = None) -> None:
        if self._ref(mapping):
            return
        self._ref_count -= 1
        self.write_map_begin(type_name)
        self._enter()
        buf = self._buf
        write = self.write
        for key, value in mapping.items():
            # Short ASCII strings (all of a Dubbo attachments map) are written inline.
            if type(key) is str and len(key) <= 0x1F and key.isascii():
                buf.append(len(key))
                buf += key.encode()
            else:
                write(key)
            if type(value) is str and len(value) <= 0x1F and value.isascii():
                buf.append(len(value))
                buf += value.encode()
            else:
                write(value)
        self._depth -= 1
        buf.append(0x5A)

    def _write_entries(self, value: MapEntries) -> None:
        if self._ref(value):
            return
        self._ref_count -= 1
        self.write_map_begin(value.type_name)
        self._enter()
        write = self.write
        for key, item in value.entries:
            write(key)
            write(item)
        self._depth -= 1
        self._buf.append(0x5A)

    def write_object(self, obj: HessianObject) -> None:
        if self._ref(obj):
            return
        key = (obj.type_name, obj.field_names)
        index = self._classes.get(key)
        buf = self._buf
        if index is None:
            index = len(self._classes)
            self._classes[key] = index
            definition = _CLASS_DEF_BYTES.get(key)
            if definition is None:
                definition = _class_definition(obj.type_name, obj.field_names)
                if len(_CLASS_DEF_BYTES) >= _CLASS_DEF_BYTES_SIZE:
                    _CLASS_DEF_BYTES.clear()
                _CLASS_DEF_BYTES[key] = definition
            buf += definition
        if index <= 0x0F:
            buf.append(0x60 + index)
        else:
            buf.append(0x4F)
            self.write_int(index)
        if len(obj.values) != len(obj.field_names):
            raise EncodeError(
                f"{obj.type_name}: {len(obj.values)} values for {len(obj.field_names)} fields"
            )
        self._enter()
        write = self.write
        for value in obj.values:
            if type(value) is str and len(value) <= 0x1F and value.isascii():
                buf.append(len(value))
                buf += value.encode()
            else:
                write(value)
        self._depth -= 1


# The bytes of a class definition ('C' name count names), by (type name, field names): the
# same classes are written in response after response. Bounded: cleared when full.
_CLASS_DEF_BYTES: dict[tuple[str, tuple[str, ...]], bytes] = {}
_CLASS_DEF_BYTES_SIZE = 1024


def _class_definition(type_name: str, field_names: tuple[str, ...]) -> bytes:
    if not type_name or not isinstance(type_name, str):
        raise EncodeError(f"an object needs a type name, got {type_name!r}")
    if not all(isinstance(name, str) for name in field_names):
        raise EncodeError(f"{type_name}: field names must be strings, got {field_names!r}")
    enc = Encoder()
    enc._buf.append(0x43)
    enc.write_string(type_name)
    enc.write_int(len(field_names))
    for name in field_names:
        enc.write_string(name)
    return enc.getvalue()


def encode(value: Any, *, max_depth: int = MAX_DEPTH) -> bytes:
    """Encode one value as a stream of its own."""
    enc = Encoder(max_depth=max_depth)
    enc.write(value)
    return enc.getvalue()


# ------------------------------------------------------------------- dispatch

_Writer = Callable[[Encoder, Any], None]

_WRITERS: dict[type, _Writer] = {
    str: Encoder.write_string,
    int: Encoder._write_python_int,
    bool: Encoder.write_bool,
    type(None): Encoder.write_null,
    float: Encoder.write_double,
    HessianLong: Encoder.write_long,
    dict: Encoder.write_map,
    list: Encoder.write_list,
    tuple: Encoder.write_list,
    bytes: Encoder.write_binary,
    bytearray: Encoder.write_binary,
    memoryview: Encoder.write_binary,
    HessianObject: Encoder.write_object,
    HessianList: lambda enc, v: enc.write_list(v, v.type_name),
    HessianMap: lambda enc, v: enc.write_map(v, v.type_name),
    MapEntries: Encoder._write_entries,
    HessianDate: Encoder.write_date,
    _dt.datetime: Encoder.write_date,
}


def _writer_for(value: Any) -> _Writer:
    """Subclasses of the supported types (checked in an order that keeps bool before int)."""
    for kind in (bool, HessianLong, int, float, str, bytes, bytearray, memoryview,
                 HessianList, HessianMap, dict, list, tuple, HessianObject, MapEntries,
                 HessianDate, _dt.datetime):  # fmt: skip
        if isinstance(value, kind):
            return _WRITERS[kind]
    raise EncodeError(f"no Hessian form for a {type(value).__name__}")
