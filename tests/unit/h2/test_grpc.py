"""gRPC helpers: grpc-timeout (G4), message framing and size limits (G5), status,
:path and Triple's service key."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.codecs.grpc.grpc import (
    MAX_FORWARDED_TIMEOUT_NS,
    BadGrpcTimeout,
    BadPath,
    Message,
    MessageDecoder,
    MessageScanner,
    MessageTooLarge,
    call_info,
    decode_grpc_message,
    encode_grpc_message,
    encode_message,
    format_timeout,
    parse_status,
    parse_timeout,
    split_path,
    status_trailers,
    trailers_only,
)
from proxy.errors import BadRequest, GrpcStatus

MS = 1_000_000
S = 1_000_000_000

# --- G4 grpc-timeout ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "ns"),
    [
        (b"200m", 200 * MS),
        (b"1S", S),
        (b"2M", 120 * S),
        (b"1H", 3600 * S),
        (b"7u", 7_000),
        (b"9n", 9),
        (b"99999999H", 99_999_999 * 3600 * S),
        (b"00000001S", S),
    ],
)
def test_timeout_parses(value: bytes, ns: int) -> None:
    """G4 bad-grpc-timeout: valid values parse exactly, 8 digits of H included."""
    assert parse_timeout(value) == ns


@pytest.mark.parametrize(
    "value",
    [b"123456789S", b"1x", b"-5m", b"+5m", b"", b"S", b"5", b" 5S", b"5 S", b"5S ", b"1.5S",
     b"5ms", b"\xd9\xa1S", b"5s"],
)  # fmt: skip
def test_timeout_malformed_rejected(value: bytes) -> None:
    """G4 bad-grpc-timeout: malformed values are rejected, never read as another unit."""
    with pytest.raises(BadGrpcTimeout):
        parse_timeout(value)


def test_timeout_error_is_a_laneway_error() -> None:
    """G4: the error maps to a gRPC status and does not close the connection."""
    with pytest.raises(BadRequest) as info:
        parse_timeout(b"1x")
    assert info.value.grpc_status == GrpcStatus.INTERNAL and not info.value.close


@pytest.mark.parametrize(
    ("ns", "text"),
    [
        (200 * MS, b"200000u"),
        (150, b"150n"),
        (99_999_999, b"99999999n"),
        (100_000_001, b"100001u"),  # rounded up, never down
        (1, b"1n"),
        (0, b"0n"),
        (-5, b"0n"),
        (3600 * S, b"300000m"),  # capped at 300 s
    ],
)
def test_timeout_formatted_rounded_up_and_capped(ns: int, text: bytes) -> None:
    """G4: forwarded timeouts are rounded up in the finest unit that fits, capped at 300 s."""
    assert format_timeout(ns) == text


@given(st.integers(min_value=0, max_value=10 * 3600 * S))
def test_timeout_round_trip_never_shrinks(ns: int) -> None:
    """G4: format -> parse never gives less than the remaining time (nor more than the cap)."""
    text = format_timeout(ns)
    assert len(text) <= 9
    back = parse_timeout(text)
    assert min(ns, MAX_FORWARDED_TIMEOUT_NS) <= back <= MAX_FORWARDED_TIMEOUT_NS


# --- G5 message framing -------------------------------------------------------------------------


def test_decoder_splits_messages_across_chunks() -> None:
    """Messages split over DATA frames are reassembled; several in one chunk are split."""
    stream = (
        encode_message(b"a" * 10) + encode_message(b"", compressed=True) + encode_message(b"zz")
    )
    dec = MessageDecoder()
    got: list[Message] = []
    for i in range(len(stream)):
        got += dec.feed(stream[i : i + 1])
    assert got == [Message(False, b"a" * 10), Message(True, b""), Message(False, b"zz")]
    assert dec.buffered == 0


def test_decoder_rejects_oversize_on_the_prefix() -> None:
    """G5 message-size: a 4 MiB+1 prefix is RESOURCE_EXHAUSTED before any payload is kept."""
    dec = MessageDecoder()
    with pytest.raises(MessageTooLarge) as info:
        dec.feed(b"\0" + (4 * 1024 * 1024 + 1).to_bytes(4, "big") + b"x" * 16_384)
    assert info.value.grpc_status == GrpcStatus.RESOURCE_EXHAUSTED


def test_decoder_accepts_exactly_the_limit() -> None:
    """G5: a message of exactly 4 MiB is accepted."""
    payload = b"x" * (4 * 1024 * 1024)
    assert MessageDecoder().feed(encode_message(payload)) == [Message(False, payload)]


def test_scanner_checks_without_buffering() -> None:
    """G5: the relay's scanner walks prefixes only; it holds at most 4 prefix bytes."""
    scanner = MessageScanner(max_size=100)
    stream = encode_message(b"x" * 100) + encode_message(b"y" * 3)
    for i in range(0, len(stream), 7):
        scanner.feed(stream[i : i + 7])
        assert len(scanner._prefix) < 5
    assert scanner.messages == 2 and scanner.at_boundary
    scanner.feed(b"\0\0\0")
    assert not scanner.at_boundary
    with pytest.raises(MessageTooLarge):
        scanner.feed(b"\0\x65")  # 101 bytes declared


@given(
    st.lists(st.binary(max_size=40), max_size=6),
    st.lists(st.integers(min_value=1, max_value=60), max_size=12),
)
def test_scanner_chunked_agrees_with_byte_by_byte(payloads: list[bytes], cuts: list[int]) -> None:
    """Whatever the DATA boundaries (one whole message per frame takes a shortcut), the
    scanner counts what a byte-by-byte walk counts and stops at the same boundary."""
    stream = b"".join(encode_message(p) for p in payloads)
    chunks, pos = [], 0
    for cut in cuts:
        chunks.append(stream[pos : pos + cut])
        pos += cut
    chunks.append(stream[pos:])
    whole = [encode_message(p) for p in payloads]
    walked, chunked, framed = MessageScanner(), MessageScanner(), MessageScanner()
    for i in range(len(stream)):
        walked.feed(stream[i : i + 1])
    for chunk in chunks:
        chunked.feed(chunk)
    for message in whole:
        framed.feed(message)
    for scanner in (chunked, framed):
        assert scanner.messages == walked.messages == len(payloads)
        assert scanner.at_boundary == walked.at_boundary


def test_scanner_shortcut_still_enforces_the_limits() -> None:
    """A frame holding exactly one message takes the shortcut and is still checked."""
    with pytest.raises(MessageTooLarge):
        MessageScanner(max_size=10).feed(encode_message(b"x" * 11))
    with pytest.raises(BadRequest):
        MessageScanner().feed(b"\x02\0\0\0\0")
    scanner = MessageScanner(max_size=10)
    scanner.feed(encode_message(b"x" * 10))
    assert scanner.messages == 1 and scanner.at_boundary


def test_bad_compressed_flag() -> None:
    """A compressed-flag other than 0/1 is a malformed message."""
    with pytest.raises(BadRequest):
        MessageDecoder().feed(b"\x02\0\0\0\0")
    with pytest.raises(BadRequest):
        MessageScanner().feed(b"\x07\0\0\0\0")


# --- status and trailers --------------------------------------------------------------------------


def test_status_trailers_round_trip() -> None:
    """grpc-message is percent-encoded (non-ASCII and '%') and decodes back."""
    text = "env feature-login runs no provider of a.B: 100% ✗"
    trailers = status_trailers(GrpcStatus.UNAVAILABLE, text)
    assert trailers[0] == (b"grpc-status", b"14")
    assert all(0x20 <= c < 0x7F for c in trailers[1][1])
    assert parse_status(trailers) == (GrpcStatus.UNAVAILABLE, text)
    assert decode_grpc_message(encode_grpc_message("plain")) == "plain"


def test_trailers_only_response() -> None:
    """A local error reply is one header block with :status, content-type and the status."""
    headers = trailers_only(GrpcStatus.UNIMPLEMENTED, "unknown service a.B")
    assert headers[:3] == [
        (b":status", b"200"),
        (b"content-type", b"application/grpc"),
        (b"grpc-status", b"12"),
    ]


def test_parse_status_missing_or_bad_is_unknown() -> None:
    """A missing or garbled grpc-status is UNKNOWN, never a fake OK (R1)."""
    assert parse_status([]) == (GrpcStatus.UNKNOWN, "")
    assert parse_status([(b"grpc-status", b"x")])[0] == GrpcStatus.UNKNOWN
    assert parse_status([(b"grpc-status", b"-0")])[0] == GrpcStatus.UNKNOWN


# --- :path and Triple --------------------------------------------------------------------------


def test_split_path() -> None:
    """:path is /{service}/{method}; anything else is UNIMPLEMENTED."""
    assert split_path(b"/grpc.health.v1.Health/Check") == ("grpc.health.v1.Health", "Check")
    for bad in (b"", b"/", b"//m", b"/s/", b"s/m", b"/s/m/x", b"/s", b"/\xff/m"):
        with pytest.raises(BadPath) as info:
            split_path(bad)
        assert info.value.grpc_status == GrpcStatus.UNIMPLEMENTED


def test_call_info_grpc_and_triple() -> None:
    """Service, method, deadline; Triple's version and group complete the service key."""
    info = call_info(
        [
            (b":path", b"/org.demo.Greeter/SayHello"),
            (b"grpc-timeout", b"150m"),
            (b"tri-service-version", b"1.0.0"),
            (b"tri-service-group", b"blue"),
        ]
    )
    assert (info.service, info.method, info.version, info.group, info.timeout_ns) == (
        "org.demo.Greeter",
        "SayHello",
        "1.0.0",
        "blue",
        150 * MS,
    )
    plain = call_info([(b":path", b"/a.B/C")])
    assert (plain.version, plain.group, plain.timeout_ns) == (None, None, None)
    with pytest.raises(BadGrpcTimeout):
        call_info([(b":path", b"/a.B/C"), (b"grpc-timeout", b"1x")])
