"""Named limits of the HTTP/2 + gRPC codec, each with the reason it exists.

Defaults come from TESTS.md §8 ("Default limits to adopt"); every one is a field of
:class:`H2Limits` so a listener can configure it, and a module constant so tests and
docs can name it.
"""

from __future__ import annotations

import dataclasses

# --- RFC 9113 fixed values (not configurable: they are the protocol) ----------------------

#: RFC 9113 §6.5.2: the smallest SETTINGS_MAX_FRAME_SIZE a peer may announce.
MIN_MAX_FRAME_SIZE = 16_384
#: RFC 9113 §6.5.2: the largest frame payload the 24-bit length field may announce.
MAX_MAX_FRAME_SIZE = 2**24 - 1
#: RFC 9113 §6.9.1: a flow-control window never exceeds 2^31-1.
MAX_WINDOW_SIZE = 2**31 - 1
#: RFC 9113 §6.9.2: the initial window of every stream and of the connection.
DEFAULT_INITIAL_WINDOW_SIZE = 65_535
#: RFC 7541 §4.2 / RFC 9113 §6.5.2: the HPACK dynamic table size both sides start with.
DEFAULT_HEADER_TABLE_SIZE = 4_096
#: RFC 9113 §5.1.1: stream identifiers are 31-bit.
MAX_STREAM_ID = 2**31 - 1

# --- laneway defaults (TESTS.md §8) ------------------------------------------------------

#: h2 default and Envoy edge: one client cannot hold more than 100 upstream calls open.
MAX_CONCURRENT_STREAMS = 100
#: Envoy edge: 64 KiB per stream bounds what a slow consumer makes us hold per call (R11).
INITIAL_STREAM_WINDOW = 65_536
#: Envoy edge: 1 MiB per connection bounds what one connection makes us hold in total.
INITIAL_CONNECTION_WINDOW = 1_048_576
#: RFC default, enforced on the 9-byte header so a declared 16 MiB frame is never buffered (H7).
MAX_INBOUND_FRAME_SIZE = 16_384
#: h2/hpack default and Envoy's 60 KiB: a decoded header list never grows beyond this (H4, H11).
MAX_HEADER_LIST_SIZE = 65_536
#: Envoy `max_headers_count`: more fields than this in one block is abuse, not a real call.
MAX_HEADER_COUNT = 100
#: h2 CONTINUATION_BACKLOG: a header block split in more frames than this is a flood (H3).
MAX_CONTINUATION_FRAMES = 64
#: Envoy premature-reset guard (CVE-2023-44487): the ratio test starts after this many streams.
RAPID_RESET_MIN_STREAMS = 500
#: Envoy: a reset counts as premature when it comes less than this many seconds after opening.
RAPID_RESET_WINDOW_S = 1.0
#: Proposed early trip: this many premature resets before the ratio test applies is an attack.
RAPID_RESET_EARLY_TRIP = 250
#: Envoy `max_outbound_control_frames`: replies we queued for a peer that does not read (H5).
MAX_QUEUED_CONTROL_FRAMES = 1_000
#: Envoy default per-connection buffer: unflushed output beyond this means the peer is not reading.
MAX_UNFLUSHED_BYTES = 1_048_576
#: Envoy edge soft limit: the transport should stop reading while this much output is unflushed.
SOFT_UNFLUSHED_BYTES = 32_768
#: Envoy `max_consecutive_inbound_frames_with_empty_payload` (CVE-2019-9518, H6).
MAX_CONSECUTIVE_EMPTY_FRAMES = 1
#: Envoy `max_inbound_priority_frames_per_stream`: PRIORITY is ignored, but not in unbounded floods.
MAX_PRIORITY_FRAMES_PER_STREAM = 100
#: Envoy `max_inbound_window_update_frames_per_data_frame_sent` (CVE-2019-9511 family).
MAX_WINDOW_UPDATES_PER_DATA_FRAME = 10
#: CVE-2019-9512/9515: inbound PING + SETTINGS sustained rate (per second) before we stop answering.
CONTROL_FRAME_RATE = 10.0
#: The burst of PING + SETTINGS a peer may send at once (connection start, keepalive bursts).
CONTROL_FRAME_BURST = 100.0
#: Frames that arrive on streams we reset are ignored; remember this many such stream ids.
MAX_REMEMBERED_CLOSED_STREAMS = 1_024


@dataclasses.dataclass(frozen=True, slots=True)
class H2Limits:
    """All limits of one connection; the defaults are the constants above."""

    max_concurrent_streams: int = MAX_CONCURRENT_STREAMS
    initial_stream_window: int = INITIAL_STREAM_WINDOW
    initial_connection_window: int = INITIAL_CONNECTION_WINDOW
    max_inbound_frame_size: int = MAX_INBOUND_FRAME_SIZE
    max_header_list_size: int = MAX_HEADER_LIST_SIZE
    max_header_count: int = MAX_HEADER_COUNT
    max_continuation_frames: int = MAX_CONTINUATION_FRAMES
    rapid_reset_min_streams: int = RAPID_RESET_MIN_STREAMS
    rapid_reset_window_s: float = RAPID_RESET_WINDOW_S
    rapid_reset_early_trip: int = RAPID_RESET_EARLY_TRIP
    max_queued_control_frames: int = MAX_QUEUED_CONTROL_FRAMES
    max_unflushed_bytes: int = MAX_UNFLUSHED_BYTES
    max_consecutive_empty_frames: int = MAX_CONSECUTIVE_EMPTY_FRAMES
    max_priority_frames_per_stream: int = MAX_PRIORITY_FRAMES_PER_STREAM
    max_window_updates_per_data_frame: int = MAX_WINDOW_UPDATES_PER_DATA_FRAME
    control_frame_rate: float = CONTROL_FRAME_RATE
    control_frame_burst: float = CONTROL_FRAME_BURST
    max_remembered_closed_streams: int = MAX_REMEMBERED_CLOSED_STREAMS

    def __post_init__(self) -> None:
        if not MIN_MAX_FRAME_SIZE <= self.max_inbound_frame_size <= MAX_MAX_FRAME_SIZE:
            raise ValueError(f"max_inbound_frame_size out of range: {self.max_inbound_frame_size}")
        if not 0 < self.initial_stream_window <= MAX_WINDOW_SIZE:
            raise ValueError(f"initial_stream_window out of range: {self.initial_stream_window}")
        if not DEFAULT_INITIAL_WINDOW_SIZE <= self.initial_connection_window <= MAX_WINDOW_SIZE:
            raise ValueError(
                f"initial_connection_window out of range: {self.initial_connection_window}"
            )


DEFAULT_LIMITS = H2Limits()
