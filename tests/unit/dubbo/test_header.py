"""The 16-byte header and the request-id rewrite."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.codecs.dubbo import (
    HEADER_LENGTH,
    build_header,
    parse_header,
    read_request_id,
    rewrite_request_id,
)
from tests.unit.dubbo.frames import request


def test_header_fields_and_flags() -> None:
    frame = request(request_id=0x0102030405060708)
    header = parse_header(frame)
    assert frame[:2] == b"\xda\xbb"
    assert header.is_request and header.two_way and not header.is_event
    assert header.serialization_id == 2
    assert header.request_id == 0x0102030405060708
    assert header.frame_length == len(frame)
    assert header.body_length == len(frame) - HEADER_LENGTH


@given(
    flags=st.integers(0, 255),
    status=st.integers(0, 255),
    request_id=st.integers(0, 2**64 - 1),
    body_length=st.integers(0, 2**32 - 1),
)
def test_build_then_parse_is_identity(
    flags: int, status: int, request_id: int, body_length: int
) -> None:
    raw = build_header(flags=flags, status=status, request_id=request_id, body_length=body_length)
    assert len(raw) == HEADER_LENGTH
    header = parse_header(raw)
    assert (header.flags, header.status, header.request_id, header.body_length) == (
        flags,
        status,
        request_id,
        body_length,
    )


@given(new_id=st.integers(0, 2**64 - 1))
def test_rewrite_request_id_touches_only_the_id(new_id: int) -> None:
    frame = request(request_id=5)
    rewritten = rewrite_request_id(frame, new_id)
    assert read_request_id(rewritten) == new_id
    assert rewritten[:4] == frame[:4]
    assert rewritten[12:] == frame[12:]


@pytest.mark.parametrize("bad", [-1, 2**64])
def test_rewrite_rejects_ids_outside_64_bits(bad: int) -> None:
    with pytest.raises(ValueError, match="64 bits"):
        rewrite_request_id(request(), bad)
