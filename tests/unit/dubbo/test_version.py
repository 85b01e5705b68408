"""Protocol versions compared as Apache Dubbo compares them (Version.getIntVersion)."""

from __future__ import annotations

import pytest

from proxy.codecs.dubbo import dubbo_version_int, supports_response_attachments


@pytest.mark.parametrize(
    ("version", "value"),
    [
        ("2.0.2", 2000200),
        ("2.0.99", 2009900),
        ("2.0.10", 2001000),
        ("2.7.8", 2070800),
        ("2.6.1", 2060100),
        ("2.0.2.1", 2000201),  # four parts: no x100 scaling
        ("1.0", 100),
        ("2.6.7-stable", 2060700),  # only the leading digits of a part count
        ("2.0.2.", 2000200),  # Java's split drops the trailing empty part
        ("abc", 0),
        ("99999999999.0.0", 10000),  # Integer.parseInt overflows: the legacy 1.0.0
    ],
)
def test_int_version(version: str, value: int) -> None:
    assert dubbo_version_int(version) == value


@pytest.mark.parametrize(
    ("version", "supported"),
    [
        ("2.0.2", True),
        ("2.0.3", True),
        ("2.0.10", True),
        ("2.0.99", True),
        ("2.0.2-SNAPSHOT", True),
        ("2.0.0", False),
        ("2.0.1", False),
        ("2.0.100", False),
        ("2.5.3", False),  # dubbo-remoting's default: the jar version of an old Dubbo
        ("2.7.8", False),  # a jar version, not a protocol version
        ("3.2.0", False),
        ("", False),
        (None, False),
    ],
)
def test_response_attachments_window(version: str | None, supported: bool) -> None:
    assert supports_response_attachments(version) is supported
