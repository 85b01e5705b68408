"""Hessian 2.0 serialization, sans-IO: the final spec as Java's hessian-lite writes it.

- :func:`decode` / :func:`encode`: one value.
- :class:`Decoder`: several values of one stream (``read``, ``read_string``, ``read_int``,
  ``skip``); class definitions, type names and value references span all of them.
- :class:`Encoder`: the same for writing; ``Encoder.continuing(decoder)`` appends to a
  stream a decoder has read.
- Java objects are :class:`HessianObject` data. **No class is ever looked up or
  instantiated**, whatever name the wire carries.

See docs/hessian2.md for the value mapping and the limits.
"""

from .decoder import Decoder, decode
from .encoder import Encoder, encode
from .errors import (
    DecodeError,
    EncodeError,
    LimitExceededError,
    MalformedError,
    TruncatedError,
    UnexpectedTypeError,
)
from .limits import (
    DEFAULT_LIMITS,
    MAX_CLASS_DEFS,
    MAX_CLASS_FIELDS,
    MAX_DEPTH,
    MAX_TYPES,
    Limits,
)
from .values import HessianDate, HessianList, HessianLong, HessianMap, HessianObject, MapEntries

__all__ = [
    "DEFAULT_LIMITS",
    "MAX_CLASS_DEFS",
    "MAX_CLASS_FIELDS",
    "MAX_DEPTH",
    "MAX_TYPES",
    "DecodeError",
    "Decoder",
    "EncodeError",
    "Encoder",
    "HessianDate",
    "HessianList",
    "HessianLong",
    "HessianMap",
    "HessianObject",
    "LimitExceededError",
    "Limits",
    "MalformedError",
    "MapEntries",
    "TruncatedError",
    "UnexpectedTypeError",
    "decode",
    "encode",
]
