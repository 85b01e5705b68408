"""Cutting a byte stream into Dubbo frames, checking each header before buffering its body.

A read may hold many frames and a frame may arrive a byte at a time; the framer returns the
same frames either way. Everything that can be judged from the header is judged the moment
the header is complete: a bad magic (also: text such as a telnet ``ls``) from the very first
byte, a refused serialization id and an oversized body length before a single body byte is
kept, so a peer announcing 2 GiB costs nothing.
"""

from __future__ import annotations

from collections.abc import Callable

from proxy.codecs.dubbo.header import (
    HEADER_LENGTH,
    MAGIC_HIGH,
    MAGIC_LOW,
    Header,
    describe_serialization,
    parse_header,
)
from proxy.codecs.dubbo.limits import DubboLimits
from proxy.errors import LanewayError

#: Builds the error to raise: (message, request id or None, whether a size limit was hit).
ErrorFactory = Callable[[str, "int | None", bool], LanewayError]

#: How many leading bytes of a bad stream an error message quotes.
_QUOTE_BYTES = 16


def _describe_garbage(data: bytes) -> str:
    head = data[:_QUOTE_BYTES]
    if head and all(32 <= b < 127 or b in (9, 10, 13) for b in head):
        return f"text {head!r} instead of a Dubbo frame (telnet commands are not served)"
    return f"bytes {head.hex()} do not start with the Dubbo magic 0xdabb"


class Framer:
    """Accumulates bytes; :meth:`feed` returns every frame completed so far."""

    __slots__ = ("_buffer", "_error", "_header", "_limits")

    def __init__(self, limits: DubboLimits, error: ErrorFactory) -> None:
        self._limits = limits
        self._error = error
        self._buffer = bytearray()
        self._header: Header | None = None  # header of the incomplete frame, once checked

    @property
    def buffered(self) -> int:
        """Bytes held for an incomplete frame."""
        return len(self._buffer)

    @property
    def partial_request_id(self) -> int | None:
        """Request id of the incomplete frame when its header has arrived."""
        return None if self._header is None else self._header.request_id

    def feed(self, data: bytes) -> list[tuple[Header, bytes]]:
        """Add ``data``; return the complete ``(header, frame bytes)`` pairs, in order.
        Raises the factory's error on a bad magic, serialization id or length."""
        frames: list[tuple[Header, bytes]] = []
        if self._buffer:
            self._buffer += data
            source: bytes | bytearray = self._buffer
        else:
            source = data  # common case: a read of whole frames is sliced without a copy
        size = len(source)
        start = 0
        while True:
            available = size - start
            if available < HEADER_LENGTH:
                if available:
                    self._check_magic(source, start, available)
                break
            header = self._header
            if header is None:
                self._check_magic(source, start, available)
                header = self._check_header(parse_header(source, start))
            end = start + header.frame_length
            if end > size:
                self._header = header
                break
            self._header = None
            if source is data:
                frames.append((header, data[start:end]))  # the whole read: no copy at all
            else:
                with memoryview(source) as view:  # one copy out of the buffer, not two
                    frames.append((header, bytes(view[start:end])))
            start = end
        if source is self._buffer:
            del self._buffer[:start]
        elif start < size:
            self._buffer += data[start:]
        return frames

    def _check_magic(self, source: bytes | bytearray, start: int, available: int) -> None:
        if source[start] != MAGIC_HIGH or (available > 1 and source[start + 1] != MAGIC_LOW):
            raise self._error(
                _describe_garbage(bytes(source[start : start + _QUOTE_BYTES])), None, False
            )

    def _check_header(self, header: Header) -> Header:
        limits = self._limits
        if header.serialization_id not in limits.accepted_serializations:
            accepted = ", ".join(
                describe_serialization(s) for s in sorted(limits.accepted_serializations)
            )
            hint = (
                " (Dubbo 3.2 consumers default to fastjson2: set "
                "prefer.serialization=hessian2 on them)"
                if header.serialization_id == 23
                else ""
            )
            raise self._error(
                f"frame {header.request_id}: serialization id "
                f"{describe_serialization(header.serialization_id)} is not accepted "
                f"(accepted: {accepted}){hint}",
                header.request_id,
                False,
            )
        if header.body_length > limits.max_body_bytes:
            raise self._error(
                f"frame {header.request_id}: body of {header.body_length} bytes exceeds the "
                f"{limits.max_body_bytes}-byte limit",
                header.request_id,
                True,
            )
        return header
