"""Every Hessian 2 form, byte for byte: decode gives the value, encode gives the bytes back.

Vectors are the examples of the Hessian 2.0 serialization spec plus the forms Java's
Hessian2Output (hessian-lite) writes. ``canonical`` marks what Java writes for that value:
for those ``encode(decode(b)) == b`` must hold.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import pytest

from proxy.codecs.hessian2 import (
    Decoder,
    EncodeError,
    Encoder,
    HessianDate,
    HessianList,
    HessianLong,
    HessianMap,
    HessianObject,
    LimitExceededError,
    Limits,
    MapEntries,
    TruncatedError,
    decode,
    encode,
)

L = HessianLong


def s(text: str) -> bytes:
    """A compact ASCII string (length < 32)."""
    assert len(text) < 32
    return bytes([len(text)]) + text.encode()


# (id, bytes, value, canonical)
VECTORS: list[tuple[str, bytes, Any, bool]] = [
    # null, booleans
    ("null", b"N", None, True),
    ("true", b"T", True, True),
    ("false", b"F", False, True),
    # int: 1-byte [x80-xbf], 2-byte [xc0-xcf], 3-byte [xd0-xd7], 'I'
    ("int 0", b"\x90", 0, True),
    ("int -16", b"\x80", -16, True),
    ("int 47", b"\xbf", 47, True),
    ("int 48", b"\xc8\x30", 48, True),
    ("int -17", b"\xc7\xef", -17, True),
    ("int2 0", b"\xc8\x00", 0, False),
    ("int -2048", b"\xc0\x00", -2048, True),
    ("int -256", b"\xc7\x00", -256, True),
    ("int 2047", b"\xcf\xff", 2047, True),
    ("int 2048", b"\xd4\x08\x00", 2048, True),
    ("int3 0", b"\xd4\x00\x00", 0, False),
    ("int -262144", b"\xd0\x00\x00", -262144, True),
    ("int 262143", b"\xd7\xff\xff", 262143, True),
    ("int 262144", b"I\x00\x04\x00\x00", 262144, True),
    ("int I 0", b"I\x00\x00\x00\x00", 0, False),
    ("int I 300", b"I\x00\x00\x01\x2c", 300, False),
    ("int max", b"I\x7f\xff\xff\xff", 2**31 - 1, True),
    ("int min", b"I\x80\x00\x00\x00", -(2**31), True),
    # long: [xd8-xef], [xf0-xff], [x38-x3f], x59, 'L'
    ("long 0", b"\xe0", L(0), True),
    ("long -8", b"\xd8", L(-8), True),
    ("long 15", b"\xef", L(15), True),
    ("long 16", b"\xf8\x10", L(16), True),
    ("long2 0", b"\xf8\x00", L(0), False),
    ("long -2048", b"\xf0\x00", L(-2048), True),
    ("long -256", b"\xf7\x00", L(-256), True),
    ("long 2047", b"\xff\xff", L(2047), True),
    ("long3 0", b"\x3c\x00\x00", L(0), False),
    ("long -262144", b"\x38\x00\x00", L(-262144), True),
    ("long 262143", b"\x3f\xff\xff", L(262143), True),
    ("long 262144", b"\x59\x00\x04\x00\x00", L(262144), True),
    ("long x59 300", b"\x59\x00\x00\x01\x2c", L(300), False),
    ("long x59 min", b"\x59\x80\x00\x00\x00", L(-(2**31)), True),
    ("long L 300", b"L\x00\x00\x00\x00\x00\x00\x01\x2c", L(300), False),
    ("long 2^31", b"L\x00\x00\x00\x00\x80\x00\x00\x00", L(2**31), True),
    ("long max", b"L\x7f\xff\xff\xff\xff\xff\xff\xff", L(2**63 - 1), True),
    ("long min", b"L\x80\x00\x00\x00\x00\x00\x00\x00", L(-(2**63)), True),
    # double: x5b 0.0, x5c 1.0, x5d byte, x5e short, x5f milli-int (Java), 'D'
    ("double 0.0", b"\x5b", 0.0, True),
    ("double 1.0", b"\x5c", 1.0, True),
    ("double byte 0", b"\x5d\x00", 0.0, False),
    ("double -128", b"\x5d\x80", -128.0, True),
    ("double 127", b"\x5d\x7f", 127.0, True),
    ("double 2", b"\x5d\x02", 2.0, True),
    ("double short 0", b"\x5e\x00\x00", 0.0, False),
    ("double -32768", b"\x5e\x80\x00", -32768.0, True),
    ("double 32767", b"\x5e\x7f\xff", 32767.0, True),
    ("double 128", b"\x5e\x00\x80", 128.0, True),
    ("double mill 12.25", b"\x5f\x00\x00\x2f\xda", 12.25, True),
    ("double mill 0.001", b"\x5f\x00\x00\x00\x01", 0.001, True),
    ("double mill -1.5", b"\x5f\xff\xff\xfa\x24", -1.5, True),
    ("double mill 2.1", b"\x5f\x00\x00\x08\x34", 0.001 * 2100, True),
    ("double 12.25 D", b"D\x40\x28\x80\x00\x00\x00\x00\x00", 12.25, False),
    (
        "double 0.1+0.2",
        b"D" + (0.1 + 0.2).hex().encode()[:0] + b"\x3f\xd3\x33\x33\x33\x33\x33\x34",
        0.30000000000000004,
        True,
    ),
    ("double 32768", b"\x5f\x01\xf4\x00\x00", 32768.0, True),
    ("double 1e300", b"D\x7e\x37\xe4\x3c\x88\x00\x75\x9c", 1e300, True),
    ("double inf", b"D\x7f\xf0\x00\x00\x00\x00\x00\x00", math.inf, True),
    ("double -inf", b"D\xff\xf0\x00\x00\x00\x00\x00\x00", -math.inf, True),
    # date: x4a 64-bit millis, x4b 32-bit minutes
    ("date ms", b"\x4a\x00\x00\x00\xd0\x4b\x92\x84\xb8", HessianDate(894621091000), True),
    ("date minutes", b"\x4b\x00\xe3\x83\x8f", HessianDate(894621060000), True),
    (
        "date ms whole minute",
        b"\x4a\x00\x00\x00\xd0\x4b\x92\x0b\xa0",
        HessianDate(894621060000),
        False,
    ),
    ("date epoch", b"\x4b\x00\x00\x00\x00", HessianDate(0), True),
    ("date before epoch", b"\x4b\xff\xff\xff\xff", HessianDate(-60000), True),
    ("date negative ms", b"\x4a\xff\xff\xff\xff\xff\xff\xff\xff", HessianDate(-1), True),
    # string: [x00-x1f], [x30-x33] b0, 'S', 'R' chunks; length in UTF-16 units
    ("string empty", b"\x00", "", True),
    ("string hello", b"\x05hello", "hello", True),
    ("string U+00C3", b"\x01\xc3\x83", "\u00c3", True),
    ("string CJK", b"\x02\xe4\xb8\xad\xe6\x96\x87", "中文", True),
    ("string NUL", b"\x01\x00", "\x00", True),
    ("string S short", b"S\x00\x05hello", "hello", False),
    ("string x30 32", b"\x30\x20" + b"a" * 32, "a" * 32, True),
    ("string x33 1023", b"\x33\xff" + b"a" * 1023, "a" * 1023, True),
    ("string S 1024", b"S\x04\x00" + b"a" * 1024, "a" * 1024, True),
    ("string 31 units", b"\x1f" + b"b" * 31, "b" * 31, True),
    ("string chunked", b"R\x00\x03abc" + b"\x02de", "abcde", False),
    ("string chunk then S", b"R\x00\x01aS\x00\x01b", "ab", False),
    ("string chunk then x30", b"R\x00\x01a\x30\x01b", "ab", False),
    # non-BMP: Java writes the two surrogate halves, 3 bytes each, and counts 2 units
    ("string emoji", b"\x02\xed\xa0\xbd\xed\xb8\x80", "\U0001f600", True),
    ("string emoji mixed", b"\x04a\xed\xa0\xbd\xed\xb8\x80b", "a\U0001f600b", True),
    (
        "string pair split across chunks",
        b"R\x00\x02a\xed\xa0\xbd\x01\xed\xb8\x80",
        "a\U0001f600",
        False,
    ),
    ("string lone high surrogate", b"\x01\xed\xa0\x80", "\ud800", True),
    ("string lone low surrogate", b"\x02x\xed\xb0\x80", "x\udc00", True),
    ("string 4-byte utf-8 (lenient)", b"\x02\xf0\x9f\x98\x80", "\U0001f600", False),
    # binary: [x20-x2f], [x34-x37] b0, 'B', 'A' chunks
    ("binary empty", b"\x20", b"", True),
    ("binary 3", b"\x23\x01\x02\x03", b"\x01\x02\x03", True),
    ("binary 15", b"\x2f" + b"\x07" * 15, b"\x07" * 15, True),
    ("binary 16", b"\x34\x10" + b"\x07" * 16, b"\x07" * 16, True),
    ("binary 1023", b"\x37\xff" + b"\x07" * 1023, b"\x07" * 1023, True),
    ("binary B 1024", b"B\x04\x00" + b"\x07" * 1024, b"\x07" * 1024, True),
    ("binary B short", b"B\x00\x02ab", b"ab", False),
    ("binary chunked", b"A\x00\x02ab" + b"\x21c", b"abc", False),
    ("binary chunk then B", b"A\x00\x01aB\x00\x01b", b"ab", False),
    # list: typed/untyped, fixed/variable, compact
    ("list V [int", b"V\x04[int\x92\x90\x91", HessianList("[int", [0, 1]), False),
    ("list x72 [int", b"\x72\x04[int\x90\x91", HessianList("[int", [0, 1]), True),
    ("list V 8 typed", b"V\x04[int\x98" + b"\x90" * 8, HessianList("[int", [0] * 8), True),
    ("list x58 untyped", b"\x58\x92\x90\x91", [0, 1], False),
    ("list x7a untyped", b"\x7a\x90\x91", [0, 1], True),
    ("list x78 empty", b"\x78", [], True),
    ("list x70 empty typed", b"\x70\x07[string", HessianList("[string", []), True),
    ("list x58 8 untyped", b"\x58\x98" + b"\x91" * 8, [1] * 8, True),
    ("list W variable", b"\x57\x90\x91Z", [0, 1], False),
    ("list U variable typed", b"\x55\x04[int\x90\x91Z", HessianList("[int", [0, 1]), False),
    ("list nested", b"\x79\x79\x78", [[[]]], True),
    # map: 'H' untyped, 'M' typed
    (
        "map spec",
        b"H\x91\x03fee\xa0\x03fie\xc9\x00\x03foeZ",
        {1: "fee", 16: "fie", 256: "foe"},
        True,
    ),
    ("map empty", b"HZ", {}, True),
    (
        "map typed",
        b"M\x17java.util.LinkedHashMap\x01a\x91Z",
        HessianMap("java.util.LinkedHashMap", {"a": 1}),
        True,
    ),
    ("map typed by an empty type", b"M\x00Z", HessianMap("", {}), False),
    ("map list key", b"H\x79\x91\x01aZ", MapEntries(None, [([1], "a")]), True),
    # class definitions and objects
    (
        "object spec 'O' long form",
        b"C\x0bexample.Car\x92\x05color\x05modelO\x90\x03red\x08corvette",
        HessianObject("example.Car", {"color": "red", "model": "corvette"}),
        False,
    ),
    (
        "object compact",
        b"C\x0bexample.Car\x92\x05color\x05model\x60\x03red\x08corvette",
        HessianObject("example.Car", {"color": "red", "model": "corvette"}),
        True,
    ),
    ("object no fields", b"C\x01A\x90\x60", HessianObject("A", {}), True),
    (
        "enum",
        b"C\x0bexample.Car\x91\x04name\x60\x03RED",
        HessianObject("example.Car", {"name": "RED"}),
        True,
    ),
    (
        "BigDecimal (hessian-lite)",
        b"C\x14java.math.BigDecimal\x91\x05value\x60\x041.50",
        HessianObject("java.math.BigDecimal", {"value": "1.50"}),
        True,
    ),
    (
        "java.lang.Runtime is data",
        b"C\x11java.lang.Runtime\x90\x60",
        HessianObject("java.lang.Runtime", {}),
        True,
    ),
]


@pytest.mark.parametrize(
    ("wire", "value", "canonical"), [v[1:] for v in VECTORS], ids=[v[0] for v in VECTORS]
)
def test_form(wire: bytes, value: Any, canonical: bool) -> None:
    got = decode(wire)
    assert got == value
    assert type(got) is type(value)
    if isinstance(value, HessianLong | HessianList | HessianMap):
        assert repr(got) == repr(value)
    if canonical:
        assert encode(value) == wire
        assert encode(got) == wire
    else:
        assert decode(encode(got)) == value
    # the skip-walker steps over exactly the same bytes
    dec = Decoder(wire + b"\x91")
    dec.skip()
    assert dec.pos == len(wire)
    assert dec.read() == 1


def test_double_mill_is_java_arithmetic() -> None:
    """0x5f: Java reads int_mills * 0.001, which differs from mills / 1000 in the last bit."""
    mills = 9  # 0.001 * 9 == 0.009000000000000001; 9 / 1000 == 0.009
    wire = b"\x5f" + mills.to_bytes(4, "big", signed=True)
    assert 0.001 * mills != mills / 1000
    assert decode(wire) == 0.001 * mills
    assert encode(0.001 * mills) == wire
    assert encode(mills / 1000)[0] == 0x44  # 0.009 fails Java's 0.001 * mills == value test


def test_double_forms_follow_java() -> None:
    assert encode(-0.0) == b"\x5b"  # (int) -0.0 == 0 in Java
    assert encode(math.nan)[0] == 0x44
    assert math.isnan(decode(encode(math.nan)))
    assert encode(1e10)[0] == 0x44  # (int) saturates: mills overflow int, 64-bit form
    assert encode(2147483.647) == b"\x5f\x7f\xff\xff\xff"
    assert encode(-128.5) == b"\x5f\xff\xfe\x0a\x0c"


def test_int_beyond_32_bits_is_a_long() -> None:
    assert encode(2**31) == b"\x59\x80\x00\x00\x00"[:0] + b"L\x00\x00\x00\x00\x80\x00\x00\x00"
    assert encode(2**40) == encode(L(2**40))
    assert decode(encode(-(2**31) - 1)) == -(2**31) - 1


def test_datetime_encodes_as_date() -> None:
    when = dt.datetime(1998, 5, 8, 9, 51, 31, tzinfo=dt.UTC)
    assert encode(when) == b"\x4a\x00\x00\x00\xd0\x4b\x92\x84\xb8"
    assert decode(encode(when)).to_datetime() == when
    assert HessianDate.from_datetime(when.replace(tzinfo=None)) == HessianDate(894621091000)


def test_long_strings_are_chunked_like_java() -> None:
    text = "x" * 0x8000
    assert encode(text) == b"S\x80\x00" + text.encode()
    text = "y" * 0x8001
    assert encode(text) == b"R\x80\x00" + b"y" * 0x8000 + b"\x01y"
    # a chunk never ends on a high surrogate: Java shortens it by one unit
    text = "a" * 0x7FFF + "\U0001f600" + "b"
    wire = encode(text)
    assert wire[:3] == b"R\x7f\xff"
    assert decode(wire) == text
    big = "中" * 70_000
    assert decode(encode(big)) == big


def test_long_binary_is_chunked() -> None:
    data = bytes(range(256)) * 40  # 10240 bytes
    wire = encode(data)
    assert wire[:3] == b"A\x0f\xfd"  # 4093-byte chunks, as hessian-lite's buffer and hessian.js
    assert decode(wire) == data


def test_type_references() -> None:
    """The second list of a type refers to the type by number (an int in type position)."""
    value = [HessianList("[int", [0, 1]), HessianList("[int", [2, 3])]
    wire = encode(value)
    assert wire == b"\x7a\x72\x04[int\x90\x91\x72\x90\x92\x93"
    assert decode(wire) == value
    assert decode(b"\x7a\x72\x04[int\x90\x91\x56\x90\x92\x92\x93") == value  # 'V' + type ref


def test_class_definitions_and_o_form() -> None:
    """17 classes: the 17th object uses the long 'O' form; later objects reuse definitions."""
    objs = [HessianObject(f"C{i}", {"f": i}) for i in range(17)]
    value = [*objs, HessianObject("C0", {"f": 99})]
    wire = encode(value)
    assert b"O\xa0" in wire  # 'O' int(16)
    assert decode(wire) == value
    assert wire.count(b"C\x02C0") == 1


def test_value_refs_and_cycles() -> None:
    """Spec: a linked list whose tail refers back to its head (0x51 ref)."""
    wire = b"C\x0aLinkedList\x92\x04head\x04tail\x60\x91\x51\x90"
    node = decode(wire)
    assert isinstance(node, HessianObject)
    assert node["head"] == 1
    assert node["tail"] is node
    assert encode(node) == wire


def test_exception_with_self_cause() -> None:
    """Java exceptions reference themselves through ``cause``."""
    exc = HessianObject(
        "java.lang.IllegalStateException",
        {
            "detailMessage": "boom",
            "cause": None,
            "stackTrace": HessianList(
                "[java.lang.StackTraceElement",
                [
                    HessianObject(
                        "java.lang.StackTraceElement",
                        {
                            "declaringClass": "com.example.Demo",
                            "methodName": "call",
                            "fileName": "Demo.java",
                            "lineNumber": 42,
                        },
                    )
                ],
            ),
            "suppressedExceptions": HessianList(
                "java.util.Collections$UnmodifiableRandomAccessList", []
            ),
        },
    )
    exc.values[1] = exc
    wire = encode(exc)
    got = decode(wire)
    assert got["cause"] is got
    assert got["stackTrace"][0]["lineNumber"] == 42
    assert encode(got) == wire
    assert "cause=..." in repr(got)


def test_shared_and_self_referencing_containers() -> None:
    shared = {"k": "v"}
    outer: list[Any] = [shared, shared]
    outer.append(outer)
    got = decode(encode(outer))
    assert got[0] is got[1]
    assert got[2] is got
    cyclic: dict[str, Any] = {}
    cyclic["me"] = cyclic
    got = decode(encode(cyclic))
    assert got["me"] is got


def test_stream_shares_tables_across_values() -> None:
    """A Dubbo body is one stream: definitions, types and refs carry over between values."""
    enc = Encoder()
    car = HessianObject("example.Car", {"color": "red"})
    enc.write(car)
    enc.write(HessianObject("example.Car", {"color": "blue"}))
    enc.write(HessianList("[int", [1]))
    enc.write(HessianList("[int", [2]))
    enc.write(car)
    wire = enc.getvalue()
    assert wire.count(b"example.Car") == 1
    assert wire.count(b"[int") == 1
    dec = Decoder(wire)
    values = [dec.read() for _ in range(5)]
    assert dec.at_end()
    assert values[4] is values[0]
    assert values[1]["color"] == "blue"
    assert values[3] == HessianList("[int", [2])


def test_variable_length_forms_via_begin_end() -> None:
    enc = Encoder()
    enc.write_list_begin(None)
    enc.write(1)
    enc.write_list_end()
    enc.write_list_begin(None, "[int")
    enc.write(2)
    enc.write_list_end()
    enc.write_map_begin("java.util.TreeMap")
    enc.write("a")
    enc.write(1)
    enc.write_map_end()
    assert enc.getvalue() == b"\x57\x91Z\x55\x04[int\x92ZM\x11java.util.TreeMap\x01a\x91Z"
    dec = Decoder(enc.getvalue())
    assert [dec.read(), dec.read(), dec.read()] == [
        [1],
        HessianList("[int", [2]),
        HessianMap("java.util.TreeMap", {"a": 1}),
    ]


def test_continuing_encoder_appends_to_a_decoded_stream() -> None:
    """Re-encode only the last value (Dubbo attachments) behind untouched bytes."""
    enc = Encoder()
    enc.write(HessianObject("example.Car", {"color": "red"}))
    enc.write(HessianList("[int", [1]))
    head = enc.getvalue()
    dec = Decoder(head)
    dec.skip()
    dec.skip()
    tail = Encoder.continuing(dec)
    tail.write(
        {"car": HessianObject("example.Car", {"color": "blue"}), "l": HessianList("[int", [])}
    )
    dec2 = Decoder(head + tail.getvalue())
    dec2.skip()
    dec2.skip()
    got = dec2.read()
    assert got["car"] == HessianObject("example.Car", {"color": "blue"})
    assert got["l"].type_name == "[int"
    assert b"example.Car" not in tail.getvalue()


def test_hessian_object_access() -> None:
    obj = HessianObject("a.B", [("x", 1), ("y", 2), ("x", 3)])  # a shadowed field, twice
    assert obj["x"] == 3
    assert obj.get("z", 7) == 7
    assert "y" in obj
    assert obj.fields == {"x": 3, "y": 2}
    assert decode(encode(obj)) == obj
    assert decode(encode(obj)).field_names == ("x", "y", "x")


def test_read_helpers() -> None:
    dec = Decoder(b"\x05helloN\x93\xe5\x03abc")
    assert dec.read_string() == "hello"
    assert dec.read_nullable_string() is None
    assert dec.read_int() == 3
    assert dec.read_int() == 5
    assert dec.read_string() == "abc"
    assert dec.at_end()


def test_decoder_window() -> None:
    """pos/end select a window of a larger buffer (a Dubbo frame): nothing is read past end."""
    frame = b"\xda\xbb" + b"\x03abc" + b"\x03def"
    dec = Decoder(frame, 2, 6)
    assert dec.read_string() == "abc"
    assert dec.at_end()


def test_unencodable_values() -> None:
    bad_names = HessianObject("A", [(1, 2)])  # type: ignore[list-item]
    for bad in (object(), {1, 2}, 2**64, HessianObject("", {}), bad_names):
        with pytest.raises(EncodeError):
            encode(bad)


def test_buffer_types() -> None:
    assert decode(memoryview(b"\x03abc")) == "abc"
    assert decode(bytearray(b"\x91")) == 1
    assert encode(bytearray(b"ab")) == encode(memoryview(b"ab")) == b"\x22ab"


def test_string_never_reads_past_end() -> None:
    """A window ends where the caller says, even if the buffer goes on."""
    for wire in (b"\x05hel", b"\x30\x22" + b"a" * 20, b"\x03\xe4\xb8\xad\xe4"):
        data = wire + b"lo-and-more-bytes-of-the-next-frame" * 3
        for read in (Decoder.read, Decoder.read_string, Decoder.skip):
            with pytest.raises(TruncatedError):
                read(Decoder(data, 0, len(wire)))


def test_class_definition_memo_is_exact() -> None:
    """Definitions are remembered by their bytes: same name, other fields is another one."""
    a = encode(HessianObject("memo.A", {"x": 1}))
    b = encode(HessianObject("memo.A", {"y": 2, "z": 3}))
    for _ in range(2):
        assert decode(a) == HessianObject("memo.A", {"x": 1})
        assert decode(b) == HessianObject("memo.A", {"y": 2, "z": 3})
    with pytest.raises(LimitExceededError):
        decode(b, limits=Limits(max_class_fields=1))  # the limit holds for remembered ones
