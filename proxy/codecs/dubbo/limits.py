"""Limits of the Dubbo 2 codec: each a named constant with the reason it exists.

Defaults follow DESIGN.md §7 and TESTS.md §8; every one is configurable through
:class:`DubboLimits`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from proxy.codecs.hessian2 import DEFAULT_LIMITS as DEFAULT_HESSIAN_LIMITS
from proxy.codecs.hessian2 import Limits as HessianLimits

#: Largest body accepted, checked on the 16-byte header before any body byte is buffered.
#: Apache Dubbo's own default payload (``DEFAULT_PAYLOAD``); bigger is refused (TESTS.md D4).
MAX_BODY_BYTES = 8 * 1024 * 1024

#: Serialization ids accepted in the header flags. Only hessian2 (2): the JDK, kryo, fst and
#: "native" serializations instantiate classes by name (CVE-2021-25641, CVE-2021-37579), and
#: laneway can only read hessian2 bodies anyway.
ACCEPTED_SERIALIZATIONS: frozenset[int] = frozenset({2})

#: Attachments per request. Real calls carry 5-20 (path, interface, version, group, timeout,
#: tracing ids); 128 leaves room for generous tracing without letting a map grow unbounded.
MAX_ATTACHMENTS = 128

#: Encoded size of the attachments map. A few hundred bytes is typical; 64 KiB bounds the work
#: of decoding it on every routed call (TESTS.md §8).
MAX_ATTACHMENTS_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class DubboLimits:
    """Limits one connection codec enforces. Immutable; share one instance freely."""

    max_body_bytes: int = MAX_BODY_BYTES
    accepted_serializations: frozenset[int] = ACCEPTED_SERIALIZATIONS
    max_attachments: int = MAX_ATTACHMENTS
    max_attachments_bytes: int = MAX_ATTACHMENTS_BYTES
    hessian: HessianLimits = field(default=DEFAULT_HESSIAN_LIMITS)


DEFAULT_LIMITS = DubboLimits()
