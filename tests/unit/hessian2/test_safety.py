"""Hostile input: depth bombs, length lies, reference abuse, class names (TESTS.md D6-D9).

Every malformed input raises a ``DecodeError`` subclass; nothing else escapes.
"""

from __future__ import annotations

import ast
import time
import timeit
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from proxy.codecs.hessian2 import (
    DecodeError,
    Decoder,
    Encoder,
    HessianList,
    HessianObject,
    LimitExceededError,
    Limits,
    MalformedError,
    TruncatedError,
    UnexpectedTypeError,
    decode,
    encode,
)

PACKAGE = Path(__file__).resolve().parents[3] / "proxy" / "codecs" / "hessian2"


def _elapsed(fn: Any, repeat: int = 3) -> float:
    """Best-of CPU time of one call: other jobs on the machine do not count against it."""
    return min(timeit.repeat(fn, number=1, repeat=repeat, timer=time.process_time))


def _read_and_skip(wire: bytes, error: type[DecodeError]) -> None:
    with pytest.raises(error):
        decode(wire)
    with pytest.raises(error):
        Decoder(wire).skip()


# ----------------------------------------------------------------- D6


@pytest.mark.parametrize(
    "opener",
    [b"\x79", b"\x57", b"\x58\x91", b"H\x90", b"\x71\x01T", b"C\x01A\x91\x01f\x60"],
    ids=["compact list", "variable list", "fixed list", "map value", "typed list", "object"],
)
def test_d6_depth_bomb(opener: bytes) -> None:
    """D6 hessian-depth-bomb: 10,000 nested containers -> LimitExceededError, fast, no
    RecursionError."""
    # an object bomb: the definition once, then 10,000 nested objects
    nested = b"\x60" * 9_999 if opener.startswith(b"C") else opener * 9_999
    wire = opener + nested + b"N"
    _read_and_skip(wire, LimitExceededError)

    def attempt() -> None:
        with pytest.raises(LimitExceededError):
            decode(wire)

    assert _elapsed(attempt) < 0.05


def test_d6_depth_limit_is_exact_and_configurable() -> None:
    ok = b"\x79" * 64 + b"N"
    assert decode(ok) is not None
    Decoder(ok).skip()
    _read_and_skip(b"\x79" * 65 + b"N", LimitExceededError)
    with pytest.raises(LimitExceededError):
        decode(b"\x79\x79\x79N", limits=Limits(max_depth=2))
    deep: list[Any] = []
    for _ in range(100):
        deep = [deep]
    with pytest.raises(DecodeError.__mro__[-3]):  # LanewayError: EncodeError
        encode(deep)


def test_d6_depth_bomb_inside_attachments() -> None:
    """The bomb sits in the attachments map behind skipped arguments, as the proxy meets it."""
    enc = Encoder()
    for text in ("2.0.2", "com.example.Demo", "0.0.0", "call", "Ljava/lang/String;", "arg"):
        enc.write(text)
    wire = enc.getvalue() + b"H\x01k" + b"\x79" * 10_000 + b"NZ"
    dec = Decoder(wire)
    for _ in range(5):
        dec.read_string()
    dec.skip()
    with pytest.raises(LimitExceededError):
        dec.read()


# ----------------------------------------------------------------- D7


def _peak_alloc(fn: Any) -> int:
    tracemalloc.start()
    try:
        fn()
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return peak


LIES = {
    "X count 2^31-1": b"\x58I\x7f\xff\xff\xff" + b"\x90" * 94,
    "V count 2^31-1": b"\x56\x04[intI\x7f\xff\xff\xff" + b"\x90" * 89,
    "string S 65535": b"S\xff\xff" + b"a" * 97,
    "string chunk lies": b"R\x00\x02ab" * 10 + b"S\xff\xffabc",
    "string x33 1023": b"\x33\xff" + b"a" * 98,
    "binary B 65535": b"B\xff\xff" + b"a" * 97,
    "binary x37 1023": b"\x37\xff" + b"a" * 98,
    "class fields 2^31-1": b"C\x01AI\x7f\xff\xff\xff" + b"\x01f" * 45,
    "compact string 31": b"\x1fabc",
}


@pytest.mark.parametrize("wire", LIES.values(), ids=LIES.keys())
def test_d7_length_lie(wire: bytes) -> None:
    """D7 hessian-length-lie: a count or length beyond the bytes left is refused before any
    allocation for it (peak < 1 MiB), in <= 10 ms."""
    assert len(wire) <= 100
    _read_and_skip(wire, TruncatedError)

    def attempt() -> None:
        with pytest.raises(TruncatedError):
            decode(wire)

    assert _peak_alloc(attempt) < 1 << 20
    assert _elapsed(attempt) < 0.01


def test_d7_negative_length() -> None:
    _read_and_skip(b"\x58\x8f\x90", MalformedError)  # X count -1


# ----------------------------------------------------------------- D8


def test_d8_ref_to_unseen_value() -> None:
    """D8 hessian-ref-abuse: a reference must name a list/map/object already seen."""
    _read_and_skip(b"\x51\x90", MalformedError)
    _read_and_skip(b"\x79\x51\x91", MalformedError)  # ref 1 while only ref 0 exists
    _read_and_skip(b"\x79\x51I\x7f\xff\xff\xff", MalformedError)
    _read_and_skip(b"\x79\x51\x8f", MalformedError)  # negative
    assert decode(b"\x79\x51\x90")[0] is not None  # ref 0: the list itself


def test_d8_many_refs_decode_in_linear_time() -> None:
    """1M references to one big object cost O(bytes): no copy per reference."""

    def wire(n: int) -> bytes:
        big = encode({f"key{i}": "v" * 100 for i in range(1000)})  # ~110 KB, ref 1
        return b"\x58" + encode(n + 1)[0:] + big + b"\x51\x91" * n

    small, large = wire(100_000), wire(1_000_000)
    t_small = _elapsed(lambda: decode(small))
    t_large = _elapsed(lambda: decode(large), repeat=2)
    got = decode(large)
    assert len(got) == 1_000_001
    assert got[1] is got[0]
    assert t_large < 20 * t_small + 0.05
    assert t_large < 2.0


def test_d8_refs_into_many_skipped_values_are_linear() -> None:
    """References to many skipped values (arguments) from a later value (attachments):
    each skipped value is decoded once when first referred to, never by copying tables."""

    def stream(n: int) -> bytes:
        enc = Encoder()
        shared = [[HessianList("[int", [i])] for i in range(n)]
        enc.write(shared)  # skipped: n + 1 lists, n typed ones
        enc.write(list(shared))  # read: n references into the skipped value
        return enc.getvalue()

    def run(wire: bytes) -> Any:
        dec = Decoder(wire)
        dec.skip()
        return dec.read()

    small, large = stream(5_000), stream(50_000)
    t_small = _elapsed(lambda: run(small))
    t_large = _elapsed(lambda: run(large), repeat=2)
    got = run(large)
    assert got[49_999] == [HessianList("[int", [49_999])]
    assert got[0] is got[0] and len(got) == 50_000
    assert t_large < 20 * t_small + 0.05


def test_d8_type_and_class_refs_out_of_range() -> None:
    _read_and_skip(b"\x71\x90\x90", MalformedError)  # type ref 0, no types yet
    _read_and_skip(b"\x60", MalformedError)  # object of definition 0, none defined
    _read_and_skip(b"O\x95", MalformedError)
    _read_and_skip(b"C\x01A\x90O\x91", MalformedError)


# ----------------------------------------------------------------- D9

HOSTILE_NAMES = [
    "java.lang.Runtime",
    "com.sun.rowset.JdbcRowSetImpl",
    "__import__",
    "os.system",
    "builtins.eval",
    "subprocess.Popen",
]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_d9_objects_are_data(name: str) -> None:
    """D9 no-class-instantiation: any class name decodes to an opaque HessianObject."""
    obj = HessianObject(name, {"command": "touch /tmp/pwned", "dataSourceName": "ldap://x"})
    got = decode(encode(obj))
    assert type(got) is HessianObject
    assert got.type_name == name
    assert got["command"] == "touch /tmp/pwned"
    typed = decode(encode(HessianList(name, [1])))
    assert type(typed) is HessianList
    assert typed.type_name == name


BANNED_MODULES = {
    "importlib",
    "pickle",
    "cPickle",
    "marshal",
    "shelve",
    "dill",
    "pydoc",
    "runpy",
    "imp",
    "builtins",
    "ctypes",
    "code",
    "codeop",
    "sys",
    "os",
}
# Called by bare name (builtins) or as a method (``importlib.import_module``, ``pydoc.locate``).
BANNED_NAMES = {
    "eval",
    "exec",
    "compile",
    "getattr",
    "setattr",
    "delattr",
    "__import__",
    "globals",
    "locals",
    "vars",
    "breakpoint",
    "open",
}
BANNED_METHODS = {
    "import_module",
    "__import__",
    "locate",
    "find_class",
    "eval",
    "exec",
    "__getattribute__",
    "__subclasses__",
}


@pytest.mark.parametrize("path", sorted(PACKAGE.glob("*.py")), ids=lambda p: p.name)
def test_d9_static_no_dynamic_lookup(path: Path) -> None:
    """D9 static check: the codec imports nothing that can look up or build a class by name,
    and calls no eval/exec/getattr-like function."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            names = {(node.module or "").split(".")[0]} if node.level == 0 else set()
        else:
            names = set()
        assert not names & BANNED_MODULES, f"{path.name} imports {names}"
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name):
                assert func.id not in BANNED_NAMES, f"{path.name}:{node.lineno} calls {func.id}()"
            elif isinstance(func, ast.Attribute):
                assert func.attr not in BANNED_METHODS, f"{path.name}:{node.lineno} .{func.attr}()"
        if isinstance(node, ast.Name):
            assert node.id not in {"__builtins__", "__loader__"}, f"{path.name}:{node.lineno}"


# ----------------------------------------------------------------- malformed input


MALFORMED = {
    "reserved 0x40": b"\x40",
    "reserved E": b"E",
    "reserved G": b"G",
    "reserved P": b"P",
    "Z as a value": b"Z",
    "bad chunk continuation": b"R\x00\x01a\x91",
    "bad binary continuation": b"A\x00\x01a\x91",
    "bad utf-8": b"\x02\xff\xfe",
    "overlong utf-8": b"\x01\xc0\x80",
    "stray continuation": b"\x02a\x80",
    "class name not a string": b"C\x91\x90\x60",
    "field name not a string": b"C\x01A\x91\x91\x60\x90",
    "type not a string or int": b"\x71T\x90",
    "length lie into a surrogate pair": b"\x01\xf0\x9f\x98\x80",
    "map key only": b"H\x91",
    "list count is a string": b"\x58\x01a",
}


@pytest.mark.parametrize("wire", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_raises_decode_error(wire: bytes) -> None:
    _read_and_skip(wire, DecodeError)


def test_trailing_bytes() -> None:
    with pytest.raises(MalformedError):
        decode(b"\x91\x91")


def test_every_prefix_is_truncated() -> None:
    value = [
        "héllo wörld 中文 \U0001f600" * 3,
        HessianObject("a.B", {"x": [1, 2.5, {"k": b"\x00" * 20}], "y": HessianList("[int", [7])}),
        2**40,
        "x" * 40_000,
    ]
    wire = encode(value)
    for cut in [*range(0, 300), *range(len(wire) - 300, len(wire))]:
        with pytest.raises(TruncatedError):
            decode(wire[:cut])
        with pytest.raises(TruncatedError):
            Decoder(wire[:cut]).skip()


def test_typed_reads() -> None:
    with pytest.raises(UnexpectedTypeError):
        Decoder(b"\x91").read_string()
    with pytest.raises(UnexpectedTypeError):
        Decoder(b"N").read_string()
    with pytest.raises(UnexpectedTypeError):
        Decoder(b"\x01a").read_int()
    with pytest.raises(TruncatedError):
        Decoder(b"").read_string()
    with pytest.raises(TruncatedError):
        Decoder(b"").read_int()


def test_class_def_limit() -> None:
    wire = (
        b"".join(b"C\x02C" + bytes([0x30 + i // 10, 0x30 + i % 10])[1:] + b"\x90" for i in range(3))
        + b"N"
    )
    assert decode(wire) is None
    with pytest.raises(LimitExceededError):
        decode(wire, limits=Limits(max_class_defs=2))
    many = b"C\x01A\x90" * 300 + b"N"  # a run of definitions, looped over, not recursed
    with pytest.raises(LimitExceededError):
        decode(many)
    assert decode(many, limits=Limits(max_class_defs=300)) is None
    with pytest.raises(LimitExceededError):
        decode(b"C\x01A\x93\x01a\x01b\x01c\x60NNN", limits=Limits(max_class_fields=2))


def test_type_limit() -> None:
    wire = b"\x7a\x70\x01a\x70\x01b"
    assert len(decode(wire)) == 2
    with pytest.raises(LimitExceededError):
        decode(wire, limits=Limits(max_types=1))


def test_error_carries_the_wire_meaning() -> None:
    from proxy.errors import BadRequest, DubboStatus

    with pytest.raises(BadRequest) as info:
        decode(b"\x40")
    assert info.value.dubbo_status is DubboStatus.BAD_REQUEST
    assert info.value.close
