"""Stream states (RFC 9113 §5.1) as a transition table, and the per-stream record.

laneway never accepts server push (ENABLE_PUSH=0), so the reserved states are absent:
a PUSH_PROMISE is a connection error before it could reach this table.
"""

from __future__ import annotations

import collections
import enum
from collections.abc import Sequence

from proxy.codecs.grpc.flow import InboundWindow


# IntEnum, not Enum: the table is consulted per frame and Enum hashes in Python code.
class StreamState(enum.IntEnum):
    IDLE = 0
    OPEN = 1
    HALF_CLOSED_LOCAL = 2
    HALF_CLOSED_REMOTE = 3
    CLOSED = 4


class StreamInput(enum.IntEnum):
    SEND_HEADERS = 0
    RECV_HEADERS = 1
    SEND_DATA = 2
    RECV_DATA = 3
    SEND_END_STREAM = 4
    RECV_END_STREAM = 5
    SEND_RST = 6
    RECV_RST = 7


_S = StreamState
_I = StreamInput

#: (state, input) -> next state. A pair that is absent is not allowed in that state: for a
#: received frame that is a STREAM_CLOSED error, for a local call a usage error.
TRANSITIONS: dict[tuple[StreamState, StreamInput], StreamState] = {
    (_S.IDLE, _I.SEND_HEADERS): _S.OPEN,
    (_S.IDLE, _I.RECV_HEADERS): _S.OPEN,
    (_S.OPEN, _I.SEND_HEADERS): _S.OPEN,
    (_S.OPEN, _I.RECV_HEADERS): _S.OPEN,
    (_S.OPEN, _I.SEND_DATA): _S.OPEN,
    (_S.OPEN, _I.RECV_DATA): _S.OPEN,
    (_S.OPEN, _I.SEND_END_STREAM): _S.HALF_CLOSED_LOCAL,
    (_S.OPEN, _I.RECV_END_STREAM): _S.HALF_CLOSED_REMOTE,
    (_S.OPEN, _I.SEND_RST): _S.CLOSED,
    (_S.OPEN, _I.RECV_RST): _S.CLOSED,
    (_S.HALF_CLOSED_LOCAL, _I.RECV_HEADERS): _S.HALF_CLOSED_LOCAL,
    (_S.HALF_CLOSED_LOCAL, _I.RECV_DATA): _S.HALF_CLOSED_LOCAL,
    (_S.HALF_CLOSED_LOCAL, _I.RECV_END_STREAM): _S.CLOSED,
    (_S.HALF_CLOSED_LOCAL, _I.SEND_RST): _S.CLOSED,
    (_S.HALF_CLOSED_LOCAL, _I.RECV_RST): _S.CLOSED,
    (_S.HALF_CLOSED_REMOTE, _I.SEND_HEADERS): _S.HALF_CLOSED_REMOTE,
    (_S.HALF_CLOSED_REMOTE, _I.SEND_DATA): _S.HALF_CLOSED_REMOTE,
    (_S.HALF_CLOSED_REMOTE, _I.SEND_END_STREAM): _S.CLOSED,
    (_S.HALF_CLOSED_REMOTE, _I.SEND_RST): _S.CLOSED,
    (_S.HALF_CLOSED_REMOTE, _I.RECV_RST): _S.CLOSED,
}


#: TRANSITIONS as nested lists, ``_NEXT[state][input]``: indexing is several times cheaper
#: than hashing a (state, input) tuple, and a relayed call takes a dozen steps.
_NEXT: list[list[StreamState | None]] = [
    [TRANSITIONS.get((state, event)) for event in StreamInput] for state in StreamState
]


class Stream:
    """One open stream: its state, windows, and the data held back by flow control."""

    __slots__ = (
        "content_length",
        "data_received",
        "headers_received",
        "inbound",
        "opened_at",
        "outbound",
        "pending",
        "pending_bytes",
        "pending_end",
        "pending_trailers",
        "state",
        "stream_id",
    )

    def __init__(self, stream_id: int, inbound_window: int, outbound_window: int, now: float):
        self.stream_id = stream_id
        self.state = StreamState.IDLE
        self.inbound = InboundWindow(inbound_window)
        #: Our send window on this stream (may go negative after a SETTINGS change).
        self.outbound = outbound_window
        #: DATA waiting for window, oldest first.
        self.pending: collections.deque[bytes] = collections.deque()
        self.pending_bytes = 0
        #: END_STREAM is to be sent after the pending data.
        self.pending_end = False
        #: Encoded trailer block to send (with END_STREAM) after the pending data.
        self.pending_trailers: Sequence[tuple[bytes, bytes]] | None = None
        #: Header blocks received so far (the first is the request/response, then trailers).
        self.headers_received = 0
        #: The declared content-length, checked against DATA at END_STREAM (RFC 9113 §8.1.1).
        self.content_length: int | None = None
        self.data_received = 0
        #: The clock value the stream was opened at (rapid-reset accounting).
        self.opened_at = now

    def step(self, event: StreamInput) -> StreamState | None:
        """Apply ``event``; return the new state, or None when the table forbids it."""
        new = _NEXT[self.state][event]
        if new is not None:
            self.state = new
        return new
