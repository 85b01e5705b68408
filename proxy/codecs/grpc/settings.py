"""HTTP/2 SETTINGS (RFC 9113 §6.5): identifiers, defaults, and validation of peer values."""

from __future__ import annotations

import enum

from proxy.codecs.grpc.errors import ErrorCode, H2ConnectionError
from proxy.codecs.grpc.limits import (
    DEFAULT_HEADER_TABLE_SIZE,
    DEFAULT_INITIAL_WINDOW_SIZE,
    MAX_MAX_FRAME_SIZE,
    MAX_WINDOW_SIZE,
    MIN_MAX_FRAME_SIZE,
    H2Limits,
)


class SettingCode(enum.IntEnum):
    """RFC 9113 §6.5.2 (and RFC 8441 for ENABLE_CONNECT_PROTOCOL)."""

    HEADER_TABLE_SIZE = 0x1
    ENABLE_PUSH = 0x2
    MAX_CONCURRENT_STREAMS = 0x3
    INITIAL_WINDOW_SIZE = 0x4
    MAX_FRAME_SIZE = 0x5
    MAX_HEADER_LIST_SIZE = 0x6
    ENABLE_CONNECT_PROTOCOL = 0x8


#: "Unlimited" as used for peer settings that have no RFC default (concurrency, list size).
UNLIMITED = 2**32 - 1


class PeerSettings:
    """The settings the peer announced, starting from the RFC 9113 defaults."""

    __slots__ = (
        "enable_push",
        "header_table_size",
        "initial_window_size",
        "max_concurrent_streams",
        "max_frame_size",
        "max_header_list_size",
    )

    def __init__(self) -> None:
        self.header_table_size = DEFAULT_HEADER_TABLE_SIZE
        self.enable_push = 1
        self.max_concurrent_streams = UNLIMITED
        self.initial_window_size = DEFAULT_INITIAL_WINDOW_SIZE
        self.max_frame_size = MIN_MAX_FRAME_SIZE
        self.max_header_list_size = UNLIMITED

    def apply(self, settings: dict[int, int]) -> dict[int, int]:
        """Validate and apply ``settings``; return the ones we know (unknown ids are ignored).

        Raises :class:`H2ConnectionError` with the RFC 9113 §6.5.2 code for a bad value.
        """
        known: dict[int, int] = {}
        for ident, value in settings.items():
            if ident == SettingCode.ENABLE_PUSH:
                if value not in (0, 1):
                    raise H2ConnectionError(ErrorCode.PROTOCOL_ERROR, f"ENABLE_PUSH={value}")
                self.enable_push = value
            elif ident == SettingCode.INITIAL_WINDOW_SIZE:
                if value > MAX_WINDOW_SIZE:
                    raise H2ConnectionError(
                        ErrorCode.FLOW_CONTROL_ERROR, f"INITIAL_WINDOW_SIZE={value}"
                    )
                self.initial_window_size = value
            elif ident == SettingCode.MAX_FRAME_SIZE:
                if not MIN_MAX_FRAME_SIZE <= value <= MAX_MAX_FRAME_SIZE:
                    raise H2ConnectionError(ErrorCode.PROTOCOL_ERROR, f"MAX_FRAME_SIZE={value}")
                self.max_frame_size = value
            elif ident == SettingCode.HEADER_TABLE_SIZE:
                self.header_table_size = value
            elif ident == SettingCode.MAX_CONCURRENT_STREAMS:
                self.max_concurrent_streams = value
            elif ident == SettingCode.MAX_HEADER_LIST_SIZE:
                self.max_header_list_size = value
            elif ident == SettingCode.ENABLE_CONNECT_PROTOCOL:
                if value not in (0, 1):
                    raise H2ConnectionError(
                        ErrorCode.PROTOCOL_ERROR, f"ENABLE_CONNECT_PROTOCOL={value}"
                    )
            else:
                continue  # RFC 9113 §6.5.2: unknown settings MUST be ignored.
            known[ident] = value
        return known


def local_settings(limits: H2Limits) -> dict[int, int]:
    """The SETTINGS we announce for ``limits``, on either side.

    ENABLE_PUSH=0: laneway never accepts server push (a server may announce 0 too).
    """
    settings = {
        SettingCode.ENABLE_PUSH: 0,
        SettingCode.MAX_CONCURRENT_STREAMS: limits.max_concurrent_streams,
        SettingCode.INITIAL_WINDOW_SIZE: limits.initial_stream_window,
        SettingCode.MAX_FRAME_SIZE: limits.max_inbound_frame_size,
        SettingCode.MAX_HEADER_LIST_SIZE: limits.max_header_list_size,
    }
    return {int(k): v for k, v in settings.items()}
