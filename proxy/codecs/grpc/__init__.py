"""HTTP/2 + gRPC framing (sans-IO): see docs/http2.md.

``H2Connection`` (``connection.py``) is the HTTP/2 connection for either side; its events
are in ``events.py``, its limits in ``limits.py``; ``grpc.py`` holds the gRPC message
framing, ``grpc-timeout`` and status helpers.
"""

from proxy.codecs.grpc.connection import H2Connection, H2Counters
from proxy.codecs.grpc.errors import ErrorCode, H2ConnectionError, H2StreamError, H2UsageError
from proxy.codecs.grpc.limits import DEFAULT_LIMITS, H2Limits

__all__ = [
    "DEFAULT_LIMITS",
    "ErrorCode",
    "H2Connection",
    "H2ConnectionError",
    "H2Counters",
    "H2Limits",
    "H2StreamError",
    "H2UsageError",
]
