"""Dubbo protocol-version strings compared the way Apache Dubbo compares them.

The first string of a request body is the caller's Dubbo protocol version ("2.0.2" for every
Apache Dubbo since 2.6.3). A provider may answer with the response-type flags that carry
attachments (3, 4, 5) only when that version lies in 2.0.2 ..= 2.0.99; older consumers do not
know those flags. Apache Dubbo turns the string into an integer first (its
``Version.getIntVersion``): each dot-separated part contributes its leading digits times
100^(parts after it), a three-part version is then scaled by 100 ("2.0.2" -> 2000200, "2.7.8"
-> 2070800, so 2.7.8 is *not* in range), and an unparsable part makes the whole version the
legacy 1.0.0 (10000). The arithmetic is Java ``int`` arithmetic, reproduced here.
"""

from __future__ import annotations

import functools
import re

#: "1.0.0": what Apache Dubbo assumes when a version cannot be parsed.
LEGACY_PROTOCOL_VERSION = 10000
#: 2.0.2, the first protocol version whose consumers read response attachments.
LOWEST_VERSION_FOR_RESPONSE_ATTACHMENT = 2000200
#: 2.0.99, the highest Dubbo 2 protocol version.
HIGHEST_PROTOCOL_VERSION = 2009900

_INT_MAX = 2**31 - 1
_INT_MIN = -(2**31)
_PREFIX_DIGITS = re.compile(r"[0-9]*")


def _to_java_int(value: float) -> int:
    """Java's narrowing of a double to int: truncate toward zero, saturate at the bounds."""
    if value >= _INT_MAX:
        return _INT_MAX
    if value <= _INT_MIN:
        return _INT_MIN
    return int(value)


def _wrap_int(value: int) -> int:
    """Java int multiplication overflow: keep the low 32 bits, signed."""
    value &= 0xFFFFFFFF
    return value - 2**32 if value >= 2**31 else value


@functools.lru_cache(maxsize=256)  # versions on the wire are a handful of distinct strings
def dubbo_version_int(version: str) -> int:
    """The integer Apache Dubbo compares protocol versions by (see the module docstring)."""
    parts = version.split(".")
    while parts and parts[-1] == "":  # Java's String.split drops trailing empty strings
        parts.pop()
    value = 0
    count = len(parts)
    for index, part in enumerate(parts):
        digits = _PREFIX_DIGITS.match(part)
        text = digits.group(0) if digits else ""
        if not text:
            continue
        number = int(text)
        if number > _INT_MAX:  # Integer.parseInt throws: the legacy version
            return LEGACY_PROTOCOL_VERSION
        value = _to_java_int(value + float(number) * 10.0 ** ((count - index - 1) * 2))
    if count == 3:
        value = _wrap_int(value * 100)
    return value


def supports_response_attachments(version: str | None) -> bool:
    """True when a consumer speaking this protocol version reads response flags 3..5."""
    if not version:
        return False
    value = dubbo_version_int(version)
    return LOWEST_VERSION_FOR_RESPONSE_ATTACHMENT <= value <= HIGHEST_PROTOCOL_VERSION
