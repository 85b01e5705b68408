"""Sans-IO Dubbo 2 connections: :class:`ServerConnection` faces consumers, :class:`ClientConnection`
faces providers.

Both follow the h11/h2 shape: ``receive_data(bytes) -> list[event]`` (``b""`` means the peer
closed), ``send_*`` methods queue bytes, ``data_to_send()`` hands them over. No I/O, no clock:
timeouts (a stalled body, an idle peer) belong to the caller, which can see that a frame is
half-received through :attr:`partial_frame_pending`.

Errors: a peer breaking the protocol raises a :class:`~proxy.errors.LanewayError` carrying the
Dubbo status to answer (40 from a consumer, 50 from a provider) and, once the header was
parsed, the request id to answer. The connection is then failed: answer if you can, close.
A read holding a bad frame fails as a whole (calls earlier in it could not be answered on a
connection about to close anyway). Misusing the codec raises :class:`LocalProtocolError`.

Request ids are per connection (TESTS.md D13): a server connection tracks the consumer's ids
awaiting an answer; a client connection allocates its own ids for what it sends upstream.
"""

from __future__ import annotations

import abc
import enum
from collections.abc import Mapping

from proxy.codecs.dubbo.encode import (
    DEFAULT_DUBBO_VERSION,
    READONLY_EVENT,
    encode_error_response,
    encode_exception_response,
    encode_heartbeat_request,
    encode_heartbeat_response,
    encode_readonly_event,
    encode_value_response,
)
from proxy.codecs.dubbo.events import (
    ConnectionClosed,
    Event,
    ReadOnlyReceived,
    RequestReceived,
    ResponseReceived,
    StrayResponse,
)
from proxy.codecs.dubbo.framer import Framer
from proxy.codecs.dubbo.header import (
    FLAG_REQUEST,
    FLAG_TWO_WAY,
    HEADER_LENGTH,
    MAGIC,
    Header,
    read_request_id,
    rewrite_request_id,
)
from proxy.codecs.dubbo.limits import DEFAULT_LIMITS, DubboLimits
from proxy.codecs.dubbo.request import PrefixMemo, parse_request
from proxy.codecs.dubbo.response import parse_response
from proxy.codecs.hessian2 import DecodeError, Decoder
from proxy.errors import BadRequest, BadResponse, LanewayError, RequestTooLarge

_ID_SPACE = 2**64


class LocalProtocolError(ValueError):
    """The caller misused the codec (answered an id nobody asked, fed bytes after close)."""


class State(enum.Enum):
    OPEN = "open"
    CLOSED = "closed"  # the peer closed its side; answers may still be queued
    FAILED = "failed"  # the peer broke the protocol; only closing is left


class Input(enum.Enum):
    DATA = "data"
    EOF = "eof"
    ERROR = "error"


#: Every legal (state, input) -> next state. Anything else is a LocalProtocolError.
_TRANSITIONS: dict[tuple[State, Input], State] = {
    (State.OPEN, Input.DATA): State.OPEN,
    (State.OPEN, Input.EOF): State.CLOSED,
    (State.OPEN, Input.ERROR): State.FAILED,
}


def _server_error(message: str, request_id: int | None, too_large: bool) -> LanewayError:
    kind = RequestTooLarge if too_large else BadRequest
    return kind(message, request_id=request_id)


def _client_error(message: str, request_id: int | None, too_large: bool) -> LanewayError:
    return BadResponse(message, request_id=request_id)


class _Connection(abc.ABC):
    """Framing, state and event frames (heartbeat, READONLY), shared by both sides."""

    _make_error = staticmethod(_server_error)

    def __init__(self, limits: DubboLimits = DEFAULT_LIMITS) -> None:
        self.limits = limits
        self._framer = Framer(limits, self._make_error)
        self._out: list[bytes] = []
        self._state = State.OPEN
        self._failure: LanewayError | None = None
        self._next_id = 1
        self._heartbeats: set[int] = set()  # our heartbeats still unanswered

    # -- public surface ------------------------------------------------------------------

    @property
    def state(self) -> State:
        return self._state

    @property
    def partial_frame_pending(self) -> bool:
        """True while part of a frame has arrived and the rest has not (TESTS.md D5)."""
        return self._framer.buffered > 0

    @property
    def partial_request_id(self) -> int | None:
        """Request id of the half-received frame, once its header is in."""
        return self._framer.partial_request_id

    @property
    def unanswered_heartbeats(self) -> int:
        return len(self._heartbeats)

    def receive_data(self, data: bytes) -> list[Event]:
        """Feed bytes read from the peer; ``b""`` when it closed. Returns the events."""
        state = self._state
        if state is State.FAILED and self._failure is not None:
            raise self._failure
        if not data:
            self._advance(Input.EOF)
            return [self._closed_event()]
        if state is not State.OPEN:  # (OPEN + DATA stays OPEN: no table lookup per read)
            self._advance(Input.DATA)
        events: list[Event] = []
        try:
            for header, frame in self._framer.feed(data):
                if header.is_event:
                    self._handle_event(header, frame, events)
                elif header.is_request:
                    self._handle_request(header, frame, events)
                else:
                    self._handle_response(header, frame, events)
        except LanewayError as exc:
            self._advance(Input.ERROR)
            self._failure = exc
            raise
        return events

    def data_to_send(self) -> bytes:
        """Everything queued since the last call (``b""`` when nothing is)."""
        if not self._out:
            return b""
        data = b"".join(self._out)
        self._out.clear()
        return data

    def send_heartbeat(self) -> int:
        """Queue a two-way heartbeat; its answer is consumed here. Returns its id."""
        request_id = self._allocate_id()
        self._heartbeats.add(request_id)
        self._out.append(encode_heartbeat_request(request_id))
        return request_id

    def send_readonly(self) -> int:
        """Queue a READONLY event (we are draining: no new calls, please). Returns its id."""
        request_id = self._allocate_id()
        self._out.append(encode_readonly_event(request_id))
        return request_id

    # -- internals -----------------------------------------------------------------------

    def _advance(self, event: Input) -> None:
        try:
            self._state = _TRANSITIONS[self._state, event]
        except KeyError:
            raise LocalProtocolError(
                f"{event.value} not allowed in state {self._state.value}"
            ) from None

    def _allocate_id(self) -> int:
        request_id = self._next_id
        while self._id_in_use(request_id):
            request_id = (request_id + 1) % _ID_SPACE
        self._next_id = (request_id + 1) % _ID_SPACE
        return request_id

    def _id_in_use(self, request_id: int) -> bool:
        return request_id in self._heartbeats

    def _closed_event(self) -> ConnectionClosed:
        return ConnectionClosed(
            truncated=self.partial_frame_pending,
            partial_request_id=self.partial_request_id,
            unanswered=self._unanswered(),
        )

    def _unanswered(self) -> tuple[int, ...]:
        return ()

    def _event_payload(self, header: Header, frame: bytes) -> object:
        decoder = Decoder(frame, HEADER_LENGTH, len(frame), self.limits.hessian)
        try:
            payload = decoder.read()
            trailing = not decoder.at_end()
        except DecodeError as exc:
            raise self._make_error(
                f"event {header.request_id}: undecodable body: {exc}", header.request_id, False
            ) from exc
        if trailing:
            raise self._make_error(
                f"event {header.request_id}: bytes after the event body", header.request_id, False
            )
        return payload

    def _handle_event(self, header: Header, frame: bytes, events: list[Event]) -> None:
        payload = self._event_payload(header, frame)
        if not header.is_request:
            # An event response is the answer to one of our heartbeats.
            self._heartbeats.discard(header.request_id)
            return
        if payload is None:  # heartbeat (Apache Dubbo's HEARTBEAT_EVENT is null)
            if header.two_way:
                self._out.append(encode_heartbeat_response(header.request_id))
        elif payload == READONLY_EVENT:
            events.append(ReadOnlyReceived(header.request_id))
        # Any other event payload is ignored, as Apache Dubbo's HeaderExchangeHandler does.

    @abc.abstractmethod
    def _handle_request(self, header: Header, frame: bytes, events: list[Event]) -> None:
        """A non-event request frame arrived."""

    @abc.abstractmethod
    def _handle_response(self, header: Header, frame: bytes, events: list[Event]) -> None:
        """A non-event response frame arrived."""


class ServerConnection(_Connection):
    """The side facing a consumer: requests in, responses out.

    Events: :class:`RequestReceived`, :class:`ReadOnlyReceived`, :class:`ConnectionClosed`.
    Every two-way request is answered exactly once with one of the ``send_*`` methods; a
    one-way request is never answered.
    """

    def __init__(self, limits: DubboLimits = DEFAULT_LIMITS) -> None:
        super().__init__(limits)
        self._awaiting: dict[int, str] = {}  # consumer request id -> its dubbo version
        self._prefixes = PrefixMemo()

    @property
    def awaiting(self) -> frozenset[int]:
        """Ids of the consumer's two-way requests not answered yet."""
        return frozenset(self._awaiting)

    def send_response(self, frame: bytes) -> None:
        """Queue a complete response frame (usually a provider's, id rewritten back) for a
        request awaiting an answer."""
        if len(frame) < HEADER_LENGTH or int.from_bytes(frame[:2], "big") != MAGIC:
            raise LocalProtocolError("not a Dubbo frame")
        if frame[2] & FLAG_REQUEST:
            raise LocalProtocolError("send_response() got a request frame")
        self._take(read_request_id(frame))
        self._out.append(frame)

    def send_value(
        self, request_id: int, value: object, *, attachments: Mapping[str, object] | None = None
    ) -> None:
        """Answer ``request_id`` with a result value (attachments only if the consumer's
        protocol version reads them)."""
        version = self._take(request_id)
        self._out.append(
            encode_value_response(request_id, value, attachments=attachments, dubbo_version=version)
        )

    def send_exception(
        self,
        request_id: int,
        exception: object,
        *,
        attachments: Mapping[str, object] | None = None,
    ) -> None:
        """Answer ``request_id`` with a serialized Java exception."""
        version = self._take(request_id)
        self._out.append(
            encode_exception_response(
                request_id, exception, attachments=attachments, dubbo_version=version
            )
        )

    def send_error(self, request_id: int, status: int, message: str) -> None:
        """Answer ``request_id`` with a non-OK status (DESIGN.md §6) and a message.

        May also answer the id carried by a BadRequest raised on a frame that was never
        reported as a request (the header parsed, the body did not)."""
        if request_id in self._awaiting:
            self._take(request_id)
        elif self._failure is None or self._failure.request_id != request_id:
            raise LocalProtocolError(f"request {request_id} is not awaiting an answer")
        self._out.append(encode_error_response(request_id, status, message))

    def _take(self, request_id: int) -> str:
        try:
            return self._awaiting.pop(request_id)
        except KeyError:
            raise LocalProtocolError(
                f"request {request_id} is not awaiting an answer on this connection"
            ) from None

    def _unanswered(self) -> tuple[int, ...]:
        return tuple(self._awaiting)

    def _handle_request(self, header: Header, frame: bytes, events: list[Event]) -> None:
        request = parse_request(header, frame, self.limits, self._prefixes)
        if request.two_way:
            if request.request_id in self._awaiting:
                # Answering it would be ambiguous: fail without an id to answer.
                raise BadRequest(f"request id {request.request_id} reused while in flight")
            self._awaiting[request.request_id] = request.dubbo_version
        events.append(RequestReceived(request))

    def _handle_response(self, header: Header, frame: bytes, events: list[Event]) -> None:
        raise BadRequest(f"a consumer sent a response frame (id {header.request_id})")


class ClientConnection(_Connection):
    """The side facing a provider: requests out (under ids of this connection), responses in.

    Events: :class:`ResponseReceived`, :class:`StrayResponse`, :class:`ReadOnlyReceived`,
    :class:`ConnectionClosed`.
    """

    _make_error = staticmethod(_client_error)

    def __init__(self, limits: DubboLimits = DEFAULT_LIMITS) -> None:
        super().__init__(limits)
        self._in_flight: dict[int, str] = {}  # our request id -> the request's dubbo version

    @property
    def in_flight(self) -> frozenset[int]:
        """Ids of two-way requests sent and not answered (nor forgotten) yet."""
        return frozenset(self._in_flight)

    def send_request(self, frame: bytes, dubbo_version: str = DEFAULT_DUBBO_VERSION) -> int:
        """Queue a request frame under a fresh id of this connection; return that id.

        ``frame`` is any complete request frame (a consumer's, possibly with rewritten
        attachments); its own id is replaced. ``dubbo_version`` is its protocol version,
        reported back with the response.
        """
        if len(frame) < HEADER_LENGTH or not frame[2] & FLAG_REQUEST:
            raise LocalProtocolError("send_request() needs a request frame")
        request_id = self._allocate_id()
        if frame[2] & FLAG_TWO_WAY:
            self._in_flight[request_id] = dubbo_version
        self._out.append(rewrite_request_id(frame, request_id))
        return request_id

    def forget(self, request_id: int) -> None:
        """Stop waiting for ``request_id`` (the caller timed out or gave up): a response
        arriving later is reported as :class:`StrayResponse`."""
        self._in_flight.pop(request_id, None)

    def _id_in_use(self, request_id: int) -> bool:
        return request_id in self._in_flight or request_id in self._heartbeats

    def _unanswered(self) -> tuple[int, ...]:
        return tuple(self._in_flight)

    def _handle_request(self, header: Header, frame: bytes, events: list[Event]) -> None:
        # Dubbo callbacks (a provider calling back over the consumer's connection) are not
        # relayed; fail without an id, since ids in this direction are the provider's.
        raise BadResponse(
            f"the provider sent a request frame (id {header.request_id}): callbacks are "
            "not supported"
        )

    def _handle_response(self, header: Header, frame: bytes, events: list[Event]) -> None:
        response = parse_response(header, frame, self.limits)
        version = self._in_flight.pop(header.request_id, None)
        if version is None:
            events.append(StrayResponse(response))
        else:
            events.append(ResponseReceived(response, version))
