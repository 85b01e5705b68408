"""GrpcMetadata: the lazy view routing reads must equal the eager dict it replaced."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from proxy.grpc_forward import GrpcMetadata

_names = st.sampled_from([b":path", b":authority", b"x-env", b"baggage", b"dubbo.tag", b"te"])
_values = st.binary(max_size=20)


def eager(headers: tuple[tuple[bytes, bytes], ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in headers:
        if not name.startswith(b":"):
            out.setdefault(name.decode("latin-1"), value.decode("latin-1"))
    return out


@given(st.lists(st.tuples(_names, _values), max_size=10))
def test_get_and_the_mapping_agree_with_the_eager_dict(pairs: list[tuple[bytes, bytes]]) -> None:
    headers = tuple(pairs)
    want = eager(headers)
    lazy = GrpcMetadata(headers)
    for name in ("x-env", "baggage", "dubbo.tag", "te", ":path", "absent", "ünïcode", "☃"):
        assert lazy.get(name) == want.get(name)
    assert dict(lazy) == want
    assert len(lazy) == len(want)
    for name in ("x-env", ":path", "☃"):  # after the dict is built: the same answers
        assert lazy.get(name) == want.get(name)


def test_the_first_value_of_a_name_wins_and_pseudo_headers_are_left_out() -> None:
    lazy = GrpcMetadata(((b":path", b"/a/b"), (b"x-env", b"one"), (b"x-env", b"two")))
    assert lazy.get("x-env") == "one"
    assert lazy.get(":path") is None
    assert "x-env" in lazy and ":path" not in lazy
