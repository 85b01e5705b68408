"""What a Dubbo connection codec reports: one small dataclass per happening.

Slotted, not frozen: several are built per proxied call and a frozen dataclass costs ~3x
as much to build; nothing hashes them and no consumer changes them.

Heartbeats never show up here: the codec answers them itself (the answer waits in
``data_to_send()``) and routing never sees them.
"""

from __future__ import annotations

from dataclasses import dataclass

from proxy.codecs.dubbo.request import Request
from proxy.codecs.dubbo.response import Response


@dataclass(slots=True)
class RequestReceived:
    """A consumer's call, to route. ``request.two_way`` False: never answer it."""

    request: Request


@dataclass(slots=True)
class ResponseReceived:
    """A provider answered ``response.request_id`` (an id this connection sent).
    ``dubbo_version`` is the protocol version of the request it answers."""

    response: Response
    dubbo_version: str


@dataclass(slots=True)
class StrayResponse:
    """A response for an id not in flight here: late after :meth:`forget`, or bogus.
    Discard it (and count it)."""

    response: Response


@dataclass(slots=True)
class ReadOnlyReceived:
    """The peer is shutting down gracefully: send it no new calls; calls in flight finish."""

    request_id: int


@dataclass(slots=True)
class ConnectionClosed:
    """The peer closed its side (``receive_data(b"")``).

    ``truncated``: a frame was cut short (``partial_request_id`` names it when its header
    had arrived). ``unanswered``: ids of two-way requests that will now never get a response.
    """

    truncated: bool
    partial_request_id: int | None
    unanswered: tuple[int, ...]


Event = RequestReceived | ResponseReceived | StrayResponse | ReadOnlyReceived | ConnectionClosed
