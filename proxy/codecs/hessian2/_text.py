"""Hessian string text: UTF-8 as Java writes it, with lengths counted in UTF-16 code units.

Java writes each UTF-16 unit on its own, so a character outside the BMP is two 3-byte
surrogate encodings (CESU-8), and a string may even hold a lone surrogate. Decoding keeps
lone surrogates (``surrogatepass``) and joins the pairs; encoding splits astral characters
into their surrogate pairs. Real 4-byte UTF-8 (which Java itself rejects) is accepted too
and counts two units.
"""

from __future__ import annotations

import re

from .errors import MalformedError, TruncatedError

# Continuation bytes: deleted by translate() to count the characters a segment starts.
_CONT = bytes(range(0x80, 0xC0))
# Everything but 4-byte UTF-8 leads: deleted to count astral characters (two units each).
_NOT_LEAD4 = bytes(range(0xF0)) + bytes(range(0xF8, 0x100))
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def decode_units(data: bytes, pos: int, units: int, end: int) -> tuple[str, int]:
    """Decode ``units`` UTF-16 code units of text starting at ``data[pos]``, not past ``end``.

    Returns the text (surrogate halves *not* yet joined: a pair may span chunks) and the
    offset after it. The caller has already handled the pure-ASCII fast path or not; this
    function handles any text.
    """
    stop = pos + units
    if stop > end:
        raise TruncatedError(f"string of {units} units needs more bytes than the {end - pos} left")
    seg = data[pos:stop]
    if seg.isascii():
        return seg.decode(), stop
    # Optimistic: decode a window that surely holds the string, keep its first `units`
    # characters and check they re-encode to exactly the bytes in front of us. Everything
    # stays in C; the window's tail (the next values' bytes) is discarded.
    # (An astral character would count two units: the UTF-16 length check sends any text
    # holding one to the slow path.)
    window = data[pos : min(end, pos + 3 * units)]
    if b"\xed" not in window:
        text = window.decode("utf-8", "replace")[:units]
        raw = text.encode()
        if len(text) == units and window.startswith(raw) and not _has_astral(text):
            return text, pos + len(raw)
    else:
        try:
            text = window.decode("utf-8", "surrogatepass")[:units]
        except UnicodeDecodeError:
            pass
        else:
            if len(text) == units and not _has_astral(text):
                return text, pos + len(text.encode("utf-8", "surrogatepass"))
    return _decode_units_slow(data, pos, units, end)


def _utf16_units(text: str) -> int:
    return len(text.encode("utf-16-le", "surrogatepass")) >> 1


def _has_astral(text: str) -> bool:
    # A regex is quickest on short text, a UTF-16 length on long text (both C loops).
    if len(text) < 256:
        return _ASTRAL.search(text) is not None
    return _utf16_units(text) != len(text)


def _decode_units_slow(data: bytes, start: int, units: int, end: int) -> tuple[str, int]:
    """Find the span by counting character starts (C-speed translate), then decode strictly.

    Each round reads as many bytes as units are still missing: no character is shorter than
    one byte per unit, so a round never overshoots the string.
    """
    pos = start
    need = units
    while need > 0:
        stop = pos + need
        if stop > end:
            raise TruncatedError(f"string of {units} units runs past the end of the data")
        seg = data[pos:stop]
        need -= len(seg.translate(None, _CONT)) + len(seg.translate(None, _NOT_LEAD4))
        pos = stop
    if need < 0:
        raise MalformedError("string length ends inside a surrogate pair")
    # Complete the last character: its lead byte says how long it is.
    lead_at = pos - 1
    while lead_at > start and 0x80 <= data[lead_at] < 0xC0 and pos - lead_at < 4:
        lead_at -= 1
    lead = data[lead_at]
    if lead < 0x80:
        size = 1
    elif 0xC0 <= lead < 0xE0:
        size = 2
    elif 0xE0 <= lead < 0xF0:
        size = 3
    elif 0xF0 <= lead < 0xF8:
        size = 4
    else:
        raise MalformedError(f"bad UTF-8 lead byte 0x{lead:02x} in string")
    stop = lead_at + size
    if stop < pos:
        raise MalformedError("bad UTF-8 in string (stray continuation bytes)")
    if stop > end:
        raise TruncatedError("string runs past the end of the data")
    raw = data[start:stop]
    try:
        text = raw.decode("utf-8", "surrogatepass")
    except UnicodeDecodeError as exc:
        raise MalformedError(f"bad UTF-8 in string: {exc.reason}") from None
    if _utf16_units(text) != units:
        raise MalformedError("string length does not match its UTF-8 bytes")
    return text, stop


def join_surrogates(text: str) -> str:
    """Join surrogate pairs written as two units into one character; keep lone halves."""
    if _SURROGATE.search(text) is None:
        return text
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")


def _pair(match: re.Match[str]) -> str:
    code = ord(match.group()) - 0x10000
    return chr(0xD800 + (code >> 10)) + chr(0xDC00 + (code & 0x3FF))


def split_astral(text: str) -> str:
    """One character per UTF-16 unit: astral characters become their surrogate pair."""
    return _ASTRAL.sub(_pair, text)


def encode_units(text: str) -> bytes:
    """UTF-8 of a text already split into units (surrogates encoded on their own)."""
    return text.encode("utf-8", "surrogatepass")
