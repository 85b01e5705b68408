"""H1 interop at codec level: the `h2` library (an independent, strict implementation)
as the peer of each side of laneway's codec, for unary calls and large bodies."""

from __future__ import annotations

import h2.config
import h2.connection
import h2.events
import h2.settings

from proxy.codecs.grpc import events as ev
from proxy.codecs.grpc.connection import H2Connection
from tests.unit.h2.helpers import REQUEST, RESPONSE, TRAILERS


def _h2(client_side: bool, header_table_size: int) -> h2.connection.H2Connection:
    conn = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=client_side, header_encoding=None)
    )
    conn.initiate_connection()
    conn.update_settings({h2.settings.SettingCodes.HEADER_TABLE_SIZE: header_table_size})
    return conn


def test_h2_client_against_laneway_server() -> None:
    """H1: an h2 client makes 50 calls (1 with 300 KB) to laneway's server-side codec."""
    peer = _h2(client_side=True, header_table_size=256)
    ours = H2Connection(client_side=False)
    ours.receive_data(peer.data_to_send(), 0.0)
    peer.receive_data(ours.data_to_send())
    body = bytes(range(256)) * 1200
    for i in range(50):
        sid = peer.get_next_available_stream_id()
        payload = body if i == 7 else b"hello %d" % i
        peer.send_headers(sid, REQUEST)
        received = b""
        ended = False
        offset = 0
        while not ended:
            window = min(peer.local_flow_control_window(sid), peer.max_outbound_frame_size)
            room = min(window, len(payload) - offset)
            if room > 0:
                peer.send_data(sid, payload[offset : offset + room])
                offset += room
                if offset == len(payload):
                    peer.end_stream(sid)
            for event in ours.receive_data(peer.data_to_send(), 0.0):
                assert not isinstance(event, ev.ConnectionTerminated | ev.StreamReset), event
                if isinstance(event, ev.DataReceived):
                    received += event.data
                    ours.acknowledge_received_data(sid, len(event.data))
                ended = ended or isinstance(event, ev.StreamEnded)
            peer.receive_data(ours.data_to_send())
        assert received == payload
        ours.send_headers(sid, RESPONSE)
        ours.send_data(sid, payload[::-1])
        ours.send_headers(sid, TRAILERS, end_stream=True)
        answer = b""
        done = False
        while not done:
            for h2_event in peer.receive_data(ours.data_to_send()):
                if isinstance(h2_event, h2.events.DataReceived):
                    answer += h2_event.data
                    peer.acknowledge_received_data(h2_event.flow_controlled_length, sid)
                if isinstance(h2_event, h2.events.TrailersReceived):
                    assert list(h2_event.headers) == TRAILERS
                    done = True
            ours.receive_data(peer.data_to_send(), 0.0)
        assert answer == payload[::-1]


def test_laneway_client_against_h2_server() -> None:
    """H1: laneway's client-side codec makes 50 calls to an h2 server."""
    peer = _h2(client_side=False, header_table_size=0)
    ours = H2Connection(client_side=True)
    peer.receive_data(ours.data_to_send())
    ours.receive_data(peer.data_to_send(), 0.0)
    peer.receive_data(ours.data_to_send())
    ours.receive_data(peer.data_to_send(), 0.0)
    for i in range(50):
        sid = ours.get_next_available_stream_id()
        ours.send_headers(sid, [*REQUEST, (b"x-call", b"%d" % i)])
        ours.send_data(sid, b"ping %d" % i, end_stream=True)
        got = b""
        for event in peer.receive_data(ours.data_to_send()):
            if isinstance(event, h2.events.RequestReceived):
                assert dict(event.headers)[b"x-call"] == b"%d" % i
            if isinstance(event, h2.events.DataReceived):
                got += event.data
        assert got == b"ping %d" % i
        peer.send_headers(sid, RESPONSE)
        peer.send_data(sid, b"pong")
        peer.send_headers(sid, TRAILERS, end_stream=True)
        events = ours.receive_data(peer.data_to_send(), 0.0)
        assert [type(e).__name__ for e in events] == [
            "ResponseReceived",
            "DataReceived",
            "TrailersReceived",
            "StreamEnded",
        ]
