"""Dubbo 2 wire protocol (sans-IO): frames, requests, responses, connection codecs.

See ``docs/dubbo.md`` for the frame layout, the events, the limits and the error mapping.
"""

from proxy.codecs.dubbo.connection import (
    ClientConnection,
    LocalProtocolError,
    ServerConnection,
    State,
)
from proxy.codecs.dubbo.descriptor import DescriptorError, count_parameters
from proxy.codecs.dubbo.encode import (
    DEFAULT_DUBBO_VERSION,
    encode_error_response,
    encode_exception_response,
    encode_heartbeat_request,
    encode_heartbeat_response,
    encode_readonly_event,
    encode_request,
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
from proxy.codecs.dubbo.header import (
    FLAG_EVENT,
    FLAG_REQUEST,
    FLAG_TWO_WAY,
    HEADER_LENGTH,
    HESSIAN2,
    MAGIC,
    Header,
    build_header,
    parse_header,
    read_request_id,
    rewrite_request_id,
)
from proxy.codecs.dubbo.limits import (
    ACCEPTED_SERIALIZATIONS,
    DEFAULT_LIMITS,
    MAX_ATTACHMENTS,
    MAX_ATTACHMENTS_BYTES,
    MAX_BODY_BYTES,
    DubboLimits,
)
from proxy.codecs.dubbo.request import UNVERSIONED, Request, parse_request
from proxy.codecs.dubbo.response import Response, ResponseBody, ResponseFlag, parse_response
from proxy.codecs.dubbo.version import dubbo_version_int, supports_response_attachments

__all__ = [
    "ACCEPTED_SERIALIZATIONS",
    "DEFAULT_DUBBO_VERSION",
    "DEFAULT_LIMITS",
    "FLAG_EVENT",
    "FLAG_REQUEST",
    "FLAG_TWO_WAY",
    "HEADER_LENGTH",
    "HESSIAN2",
    "MAGIC",
    "MAX_ATTACHMENTS",
    "MAX_ATTACHMENTS_BYTES",
    "MAX_BODY_BYTES",
    "UNVERSIONED",
    "ClientConnection",
    "ConnectionClosed",
    "DescriptorError",
    "DubboLimits",
    "Event",
    "Header",
    "LocalProtocolError",
    "ReadOnlyReceived",
    "Request",
    "RequestReceived",
    "Response",
    "ResponseBody",
    "ResponseFlag",
    "ResponseReceived",
    "ServerConnection",
    "State",
    "StrayResponse",
    "build_header",
    "count_parameters",
    "dubbo_version_int",
    "encode_error_response",
    "encode_exception_response",
    "encode_heartbeat_request",
    "encode_heartbeat_response",
    "encode_readonly_event",
    "encode_request",
    "encode_value_response",
    "parse_header",
    "parse_request",
    "parse_response",
    "read_request_id",
    "rewrite_request_id",
    "supports_response_attachments",
]
