"""HTTP/2 codec micro-benchmark (pytest-benchmark): `make bench`. Figures go to bench/RESULTS.md.

One relayed unary gRPC exchange without sockets, on a long-lived connection pair: the
client-side codec sends HEADERS + DATA(END_STREAM) with a 64-byte message, the
server-side codec decodes them, acknowledges the bytes, answers HEADERS + DATA +
trailers, and the client-side codec decodes the answer and acknowledges it. That is the
HTTP/2 work a proxy does per call (its downstream connection is a server-side codec, its
upstream connection a client-side codec). The same exchange through the `h2` library
runs in the same session for comparison (DESIGN.md §8: h2 ~180-245 us, a minimal
hyperframe + hpack relay ~50-66 us on this machine).

HPACK decoding alone (groups ``hpack-decode-*``): an nginx-style response block (every
field a Huffman-coded literal with incremental indexing, as nginx sends each response)
and a grpcio-style steady-state request block (every field an index into the dynamic
table), through ``hpack.Decoder`` and through laneway's ``HeaderDecoder`` without the
memo (cold: every field parsed, Huffman strings from the cache) and with it (a hit).
"""

from __future__ import annotations

from collections.abc import Callable

import h2.config
import h2.connection
import h2.events
import hpack
from hpack.hpack import encode_integer
from hpack.huffman import HuffmanEncoder
from hpack.huffman_constants import REQUEST_CODES, REQUEST_CODES_LENGTH
from pytest_benchmark.fixture import BenchmarkFixture

from proxy.codecs.grpc import events as ev
from proxy.codecs.grpc.connection import H2Connection
from proxy.codecs.grpc.grpc import encode_message
from proxy.codecs.grpc.hpack_in import HeaderDecoder

REQUEST = [
    (b":method", b"POST"),
    (b":scheme", b"http"),
    (b":path", b"/org.example.Greeter/SayHello"),
    (b":authority", b"127.0.0.1:50051"),
    (b"content-type", b"application/grpc"),
    (b"te", b"trailers"),
    (b"grpc-timeout", b"999000u"),
    (b"user-agent", b"grpc-python/1.62 grpc-c/39.0 (linux; chttp2)"),
    (b"x-env", b"feature-login"),
]
RESPONSE = [(b":status", b"200"), (b"content-type", b"application/grpc")]
TRAILERS = [(b"grpc-status", b"0"), (b"grpc-message", b"")]
MESSAGE = encode_message(b"m" * 64)


def _laneway_exchange() -> Callable[[], None]:
    client = H2Connection(client_side=True)
    server = H2Connection(client_side=False)
    server.receive_data(client.data_to_send(), 0.0)
    client.receive_data(server.data_to_send(), 0.0)
    server.receive_data(client.data_to_send(), 0.0)

    def exchange() -> None:
        sid = client.get_next_available_stream_id()
        client.send_headers(sid, REQUEST)
        client.send_data(sid, MESSAGE, end_stream=True)
        for event in server.receive_data(client.data_to_send(), 0.0):
            if type(event) is ev.DataReceived:
                server.acknowledge_received_data(sid, len(event.data))
        server.send_headers(sid, RESPONSE)
        server.send_data(sid, MESSAGE)
        server.send_headers(sid, TRAILERS, end_stream=True)
        got = 0
        for event in client.receive_data(server.data_to_send(), 0.0):
            if type(event) is ev.DataReceived:
                client.acknowledge_received_data(sid, len(event.data))
            elif type(event) is ev.StreamEnded:
                got += 1
        assert got == 1

    return exchange


def _h2_exchange() -> Callable[[], None]:
    client = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=True, header_encoding=None)
    )
    server = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=False, header_encoding=None)
    )
    client.initiate_connection()
    server.initiate_connection()
    server.receive_data(client.data_to_send())
    client.receive_data(server.data_to_send())
    server.receive_data(client.data_to_send())

    def exchange() -> None:
        sid = client.get_next_available_stream_id()
        client.send_headers(sid, REQUEST)
        client.send_data(sid, MESSAGE, end_stream=True)
        for event in server.receive_data(client.data_to_send()):
            if type(event) is h2.events.DataReceived:
                server.acknowledge_received_data(event.flow_controlled_length, sid)
        server.send_headers(sid, RESPONSE)
        server.send_data(sid, MESSAGE)
        server.send_headers(sid, TRAILERS, end_stream=True)
        got = 0
        for event in client.receive_data(server.data_to_send()):
            if type(event) is h2.events.DataReceived:
                client.acknowledge_received_data(event.flow_controlled_length, sid)
            elif type(event) is h2.events.StreamEnded:
                got += 1
        assert got == 1

    return exchange


def test_unary_exchange_laneway(benchmark: BenchmarkFixture) -> None:
    """laneway's codec: one unary exchange through a client- and a server-side codec."""
    benchmark.group = "h2-unary-exchange"
    benchmark(_laneway_exchange())


def test_unary_exchange_h2(benchmark: BenchmarkFixture) -> None:
    """The same exchange through the `h2` library (comparison, same run)."""
    benchmark.group = "h2-unary-exchange"
    benchmark(_h2_exchange())


NGINX_RESPONSE = [
    (b":status", b"200"),
    (b"server", b"nginx/1.22.1"),
    (b"date", b"Sat, 28 Nov 2026 11:20:00 GMT"),
    (b"content-type", b"application/grpc"),
]
_HUFFMAN = HuffmanEncoder(REQUEST_CODES, REQUEST_CODES_LENGTH)


def _huffman_string(data: bytes) -> bytes:
    encoded = _HUFFMAN.encode(data)
    length = encode_integer(len(encoded), 7)
    length[0] |= 0x80
    return bytes(length) + encoded


def nginx_response_block() -> bytes:
    """The response fields as nginx 1.22 sends them on every response: literals with
    incremental indexing (RFC 7541 §6.2.1), static name indexes, Huffman-coded values."""
    static = {b":status": 8, b"server": 54, b"date": 33, b"content-type": 31}
    out = bytearray()
    for name, value in NGINX_RESPONSE:
        out += bytes([0x40 | static[name]]) + _huffman_string(value)
    return bytes(out)


def grpcio_request_block() -> tuple[bytes, bytes]:
    """(first, steady-state) request blocks: the first inserts every field, the next
    ones index them all (what a gRPC client sends once its table is warm)."""
    encoder = hpack.Encoder()
    return encoder.encode(REQUEST), encoder.encode(REQUEST)


def _bench_hpack(benchmark: BenchmarkFixture, first: bytes, block: bytes) -> None:
    decoder = hpack.Decoder()
    decoder.decode(first, raw=True)
    assert benchmark(lambda: decoder.decode(block, raw=True))


def _bench_lean(benchmark: BenchmarkFixture, first: bytes, block: bytes, memo: bool) -> None:
    decoder = HeaderDecoder()
    decoder.decode(first)
    expected = decoder.decode(block)
    decode = decoder.decode if memo else decoder._decode  # _decode: the memo bypassed
    assert benchmark(decode, block) == expected
    assert decoder.hits > 0 or not memo


def test_hpack_response_hpack(benchmark: BenchmarkFixture) -> None:
    """nginx-style response block through ``hpack.Decoder`` (before)."""
    benchmark.group = "hpack-decode-response"
    _bench_hpack(benchmark, b"", nginx_response_block())


def test_hpack_response_lean_cold(benchmark: BenchmarkFixture) -> None:
    """The same block through ``HeaderDecoder`` with the memo bypassed."""
    benchmark.group = "hpack-decode-response"
    _bench_lean(benchmark, b"", nginx_response_block(), memo=False)


def test_hpack_response_lean_memo(benchmark: BenchmarkFixture) -> None:
    """The same block answered from the memo (its four inserts replayed)."""
    benchmark.group = "hpack-decode-response"
    _bench_lean(benchmark, b"", nginx_response_block(), memo=True)


def test_hpack_request_hpack(benchmark: BenchmarkFixture) -> None:
    """grpcio-style steady-state request block (9 indexed fields) through hpack."""
    benchmark.group = "hpack-decode-request"
    _bench_hpack(benchmark, *grpcio_request_block())


def test_hpack_request_lean_cold(benchmark: BenchmarkFixture) -> None:
    benchmark.group = "hpack-decode-request"
    _bench_lean(benchmark, *grpcio_request_block(), memo=False)


def test_hpack_request_lean_memo(benchmark: BenchmarkFixture) -> None:
    benchmark.group = "hpack-decode-request"
    _bench_lean(benchmark, *grpcio_request_block(), memo=True)
