"""Requests: eager prefix, lazy attachments and their limits, the attachments rewrite."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.codecs.dubbo import (
    HEADER_LENGTH,
    DubboLimits,
    Request,
    RequestReceived,
    ServerConnection,
    parse_header,
)
from proxy.codecs.hessian2 import Decoder, Encoder, HessianList, HessianObject
from proxy.errors import BadRequest, RequestTooLarge
from tests.unit.dubbo.frames import SERVICE, TYPICAL_ATTACHMENTS, raw_frame, request


def _receive(frame: bytes, limits: DubboLimits | None = None) -> Request:
    conn = ServerConnection() if limits is None else ServerConnection(limits)
    (event,) = conn.receive_data(frame)
    assert isinstance(event, RequestReceived)
    return event.request


def _body(*values: object) -> bytes:
    encoder = Encoder()
    for value in values:
        encoder.write(value)
    return encoder.getvalue()


def test_prefix_is_decoded_and_frame_kept() -> None:
    frame = request(7)
    req = _receive(frame)
    assert req.frame == frame
    assert (req.request_id, req.two_way, req.serialization_id) == (7, True, 2)
    assert (req.dubbo_version, req.path, req.version, req.method) == (
        "2.0.2",
        SERVICE,
        "1.0.0",
        "sayHello",
    )
    assert req.parameter_types == "Ljava/lang/String;"
    assert dict(req.attachments) == TYPICAL_ATTACHMENTS
    assert req.group == "blue"


@pytest.mark.parametrize("version", ["", None])
def test_unversioned_service_is_0_0_0(version: str | None) -> None:
    body = _body("2.0.2", SERVICE, version, "m", "", {})
    assert _receive(raw_frame(body)).version == "0.0.0"


def test_no_parameter_types_and_no_attachments_map() -> None:
    """A body that ends after the arguments reads as empty attachments (as Dubbo does)."""
    req = _receive(raw_frame(_body("2.0.2", SERVICE, "1.0.0", "m", None)))
    assert req.parameter_types == ""
    assert dict(req.attachments) == {}
    assert req.group == ""


def test_attachments_are_lazy_and_their_errors_carry_the_id() -> None:
    """Garbage after the prefix is found when routing reads the attachments, not before."""
    body = _body("2.0.2", SERVICE, "1.0.0", "m", "I") + b"\x91\xff\xff"
    req = _receive(raw_frame(body, request_id=44))
    assert req.method == "m"
    for _ in range(2):  # the same error every time it is asked
        with pytest.raises(BadRequest) as info:
            req.attachments  # noqa: B018
        assert info.value.request_id == 44


@pytest.mark.parametrize(
    "tail",
    [
        _body("not a map"),
        _body({1: "int key"}),
        _body({"a": "b"}, "trailing"),
    ],
)
def test_attachments_must_be_one_string_keyed_map(tail: bytes) -> None:
    body = _body("2.0.2", SERVICE, "1.0.0", "m", "") + tail
    with pytest.raises(BadRequest):
        _receive(raw_frame(body)).attachments  # noqa: B018


def test_attachment_count_limit() -> None:
    """TESTS.md §8: attachments <= 128 entries."""
    ok = {f"k{i}": "v" for i in range(128)}
    assert len(_receive(request(attachments=ok)).attachments) == 128
    too_many = {f"k{i}": "v" for i in range(129)}
    with pytest.raises(RequestTooLarge, match="129 attachments"):
        _receive(request(attachments=too_many)).attachments  # noqa: B018


def test_attachment_size_limit() -> None:
    """TESTS.md §8: attachments <= 64 KiB, judged on the encoded size before decoding."""
    big = {"blob": "x" * (64 * 1024)}
    with pytest.raises(RequestTooLarge, match="attachments take"):
        _receive(request(attachments=big)).attachments  # noqa: B018
    limits = DubboLimits(max_attachments_bytes=200 * 1024)
    assert len(_receive(request(attachments=big), limits).attachments["blob"]) == 64 * 1024  # type: ignore[arg-type]


def test_depth_bomb_in_attachments_is_a_bad_request() -> None:
    """D6 hessian-depth-bomb (codec part): 10,000 nested lists in attachments, no RecursionError."""
    bomb = b"\x79" * 10_000 + b"N"  # 0x79: fixed untyped list of one element
    body = _body("2.0.2", SERVICE, "1.0.0", "m", "") + b"H\x01a" + bomb + b"Z"
    with pytest.raises(BadRequest) as info:
        _receive(raw_frame(body, request_id=5)).attachments  # noqa: B018
    assert info.value.request_id == 5


def test_pojo_argument_is_skipped_and_class_table_kept() -> None:
    """An object argument defines a class; a later attachment reuses the definition."""
    user = HessianObject("com.example.User", {"name": "ann", "age": 7})
    other = HessianObject("com.example.User", {"name": "bob", "age": 9})
    frame = request(types="Lcom/example/User;", args=(user,), attachments={"who": other})
    value = _receive(frame).attachments["who"]
    assert isinstance(value, HessianObject)
    assert value.type_name == "com.example.User"
    assert dict(zip(value.field_names, value.values, strict=True)) == {"name": "bob", "age": 9}


def _rewritten(req: Request, frame: bytes) -> Request:
    again = _receive(frame)
    assert (again.path, again.method, again.version) == (req.path, req.method, req.version)
    return again


def test_with_attachments_keeps_prefix_and_argument_bytes() -> None:
    req = _receive(request(3, args=("x" * 100,)))
    new = req.with_attachments({"dubbo.tag": "feature-pay"})
    start = req.frame.index(b"H\x04path")  # where the attachments map begins
    assert new[HEADER_LENGTH:start] == req.frame[HEADER_LENGTH:start]
    header = parse_header(new)
    assert header.request_id == 3 and header.body_length == len(new) - HEADER_LENGTH
    again = _rewritten(req, new)
    assert dict(again.attachments) == {**TYPICAL_ATTACHMENTS, "dubbo.tag": "feature-pay"}


def test_with_attachments_keeps_other_entries_byte_for_byte() -> None:
    req = _receive(request())
    new = req.with_attachments({"dubbo.tag": "x"}, remove=["group"])
    assert b"\x04path\x17com.example.DemoService" in new
    assert b"group" not in new
    assert new.count(b"dubbo.tag") == 1
    again = _rewritten(req, new)
    expected = {k: v for k, v in TYPICAL_ATTACHMENTS.items() if k != "group"}
    assert dict(again.attachments) == {**expected, "dubbo.tag": "x"}


def test_with_attachments_adds_a_map_when_there_was_none() -> None:
    req = _receive(raw_frame(_body("2.0.2", SERVICE, "1.0.0", "m", "")))
    assert dict(_rewritten(req, req.with_attachments({"dubbo.tag": "t"})).attachments) == {
        "dubbo.tag": "t"
    }


def test_with_attachments_appends_when_entries_are_not_self_contained() -> None:
    """A map holding a list cannot be cut safely: new entries go last (last one wins)."""
    attachments = {"dubbo.tag": "old", "trace": HessianList("java.util.ArrayList", ["a"])}
    req = _receive(request(attachments=attachments))
    new = req.with_attachments({"dubbo.tag": "new"}, remove=["trace"])
    again = _rewritten(req, new)
    assert again.attachments["dubbo.tag"] == "new"
    assert again.attachments["trace"] is None
    start = req.frame.index(b"H\x09dubbo.tag")  # where the attachments map begins
    assert new[HEADER_LENGTH:start] == req.frame[HEADER_LENGTH:start]
    assert req.frame[start:-1] in new  # the old map's entries are all still there


def test_with_attachments_rejects_values_that_are_not_scalars() -> None:
    req = _receive(request())
    with pytest.raises(TypeError):
        req.with_attachments({"dubbo.tag": ["a", "list"]})


def test_with_attachments_under_a_new_request_id() -> None:
    req = _receive(request(5))
    assert parse_header(req.with_attachments({"a": "b"}, request_id=900)).request_id == 900
    assert parse_header(req.with_request_id(901)).request_id == 901


@settings(max_examples=200, deadline=None)
@given(
    existing=st.dictionaries(st.text(max_size=12), st.text(max_size=30), max_size=10),
    updates=st.dictionaries(
        st.text(max_size=12),
        st.one_of(st.text(max_size=30), st.integers(-(2**31), 2**31 - 1), st.none()),
        max_size=4,
    ),
    removals=st.lists(st.text(max_size=12), max_size=3),
)
def test_rewrite_matches_a_dict_update(
    existing: dict[str, object], updates: dict[str, object], removals: list[str]
) -> None:
    """Property: re-reading a rewritten frame gives the dict arithmetic, arguments intact."""
    req = _receive(request(args=("arg",), attachments=existing))
    new = req.with_attachments(updates, remove=removals)
    expected = {k: v for k, v in existing.items() if k not in set(removals) - updates.keys()}
    expected.update(updates)
    again = _receive(new)
    assert dict(again.attachments) == expected
    decoder = Decoder(new, HEADER_LENGTH)
    for _ in range(5):
        decoder.read()
    assert decoder.read() == "arg"
