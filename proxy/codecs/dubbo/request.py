"""A Dubbo 2 request: body prefix decoded eagerly, attachments lazily, original bytes kept.

Body (one Hessian 2 stream): dubbo version, path, version, method, parameter-types descriptor,
one value per parameter, attachments map. Routing needs the prefix (service and method) and
the attachments (``dubbo.tag``, ``group``); the arguments are only stepped over, never built.
The frame is forwarded as it arrived; when an attachment must change, only the attachments
map at the end of the body is rewritten (see :meth:`Request.with_attachments`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import NamedTuple

from proxy.codecs.dubbo.descriptor import DescriptorError, count_parameters
from proxy.codecs.dubbo.header import HEADER_LENGTH, Header, build_header, rewrite_request_id
from proxy.codecs.dubbo.limits import DubboLimits
from proxy.codecs.dubbo.scalars import SCALAR_TAGS, SCALAR_TYPES
from proxy.codecs.hessian2 import DecodeError, Decoder, encode
from proxy.errors import BadRequest, RequestTooLarge

#: The service version Dubbo uses for an unversioned service (DESIGN.md §1).
UNVERSIONED = "0.0.0"

_MAP_UNTYPED = 0x48  # 'H'
_MAP_TYPED = 0x4D  # 'M'
_MAP_END = 0x5A  # 'Z'

MAX_CACHED_ATTACHMENTS = 1024
# why: a consumer sends the same attachments map call after call (~4 us to decode); distinct
# maps seen by one proxy are few, and the bound stops one that varies them per call.
MAX_MEMOISED_MAP_BYTES = 2048
# why: typical maps take a few hundred bytes; bigger ones are decoded per call so the memo
# (and what callers key on its views) holds at most ~2 MiB, not 1024 x the 64 KiB limit.
# Map bytes -> (the limits it was checked against, its read-only view). Every request with
# these bytes then shares one view: the forwarder keys its own memos on it.
_DECODED: dict[bytes, tuple[DubboLimits, Mapping[str, object]]] = {}
_NO_ATTACHMENTS: Mapping[str, object] = MappingProxyType({})


class _LazyAttachments:
    """Decodes the arguments-then-attachments tail once, on first use, and remembers the
    outcome (value or error), so a request answers the same way every time it is asked."""

    __slots__ = (
        "_decoder",
        "_error",
        "_frame",
        "_limits",
        "_params",
        "_request_id",
        "shared",
        "start",
        "value",
    )

    def __init__(
        self, frame: bytes, decoder: Decoder, params: int, limits: DubboLimits, request_id: int
    ) -> None:
        self._frame = frame
        self._decoder: Decoder | None = decoder
        self._params = params
        self._limits = limits
        self._request_id = request_id
        self._error: BadRequest | None = None
        self.value: Mapping[str, object] | None = None
        self.start = -1
        self.shared = False  # value is the memo's view, shared with other requests

    def get(self) -> Mapping[str, object]:
        if self.value is not None:
            return self.value
        if self._error is not None:
            raise self._error
        decoder = self._decoder
        assert decoder is not None
        self._decoder = None  # one pass only: the decoder's tables are spent afterwards
        try:
            self.value = self._decode(decoder)
        except BadRequest as exc:
            self._error = exc
            raise
        return self.value

    def _fail(self, message: str, *, too_large: bool = False) -> BadRequest:
        kind = RequestTooLarge if too_large else BadRequest
        return kind(f"request {self._request_id}: {message}", request_id=self._request_id)

    def _decode(self, decoder: Decoder) -> Mapping[str, object]:
        """The attachments as a read-only view (the request is shared: routing, tracing,
        forwarding); the same view for the same self-contained map bytes (see _DECODED)."""
        limits = self._limits
        frame = self._frame
        try:
            for index in range(self._params):
                try:
                    decoder.skip()
                except DecodeError as exc:
                    raise self._fail(f"argument {index}: {exc}") from exc
            start = self.start = decoder.pos
            if decoder.at_end():
                return _NO_ATTACHMENTS  # no map at all: tolerated, as Dubbo reads it as empty
            size = len(frame) - start
            if size > limits.max_attachments_bytes:
                raise self._fail(
                    f"attachments take {size} bytes, more than the "
                    f"{limits.max_attachments_bytes} allowed",
                    too_large=True,
                )
            raw: bytes | None = None
            if frame[start] == _MAP_UNTYPED and size <= MAX_MEMOISED_MAP_BYTES:
                raw = frame[start:]
                known = _DECODED.get(raw)
                if known is not None and known[0] is limits:
                    self.shared = True
                    return known[1]
            value = decoder.read()
            if not decoder.at_end():
                raise self._fail("bytes after the attachments map")
        except DecodeError as exc:
            raise self._fail(f"attachments: {exc}") from exc
        if not isinstance(value, dict):
            raise self._fail(f"attachments are a {type(value).__name__}, not a map")
        if len(value) > self._limits.max_attachments:
            raise self._fail(
                f"{len(value)} attachments, more than the {self._limits.max_attachments} allowed",
                too_large=True,
            )
        scalar = True
        for key, item in value.items():
            if not isinstance(key, str):
                raise self._fail(f"attachment key {key!r} is not a string")
            if scalar and not isinstance(item, SCALAR_TYPES):
                scalar = False
        view: Mapping[str, object] = MappingProxyType(value)
        # Only an untyped map of scalars means the same whatever precedes it: a value that
        # is a list, map or object may be a back-reference into the arguments.
        if raw is not None and scalar:
            if len(_DECODED) >= MAX_CACHED_ATTACHMENTS:
                _DECODED.clear()
            _DECODED[raw] = (limits, view)
            self.shared = True
        return view


MAX_CACHED_REWRITES = 1024
# why: distinct (attachments, tag) pairs seen by one proxy are few; the bound only stops a
# consumer that varies its attachments per call from growing the memo without limit.
_REWRITES: dict[tuple[bytes, tuple[tuple[str, object], ...], frozenset[str]], bytes] = {}


@dataclass(slots=True, eq=False)
class Request:
    """One request frame. ``frame`` is the exact bytes received (header included).

    ``version`` is the service version, ``"0.0.0"`` when the caller sent none. Reading
    :attr:`attachments` skips the arguments and decodes the map on first use; it raises
    :class:`~proxy.errors.BadRequest` (carrying ``request_id``) when that part is malformed
    or over a limit.
    """

    request_id: int
    two_way: bool
    serialization_id: int
    frame: bytes
    dubbo_version: str
    path: str
    version: str
    method: str
    parameter_types: str
    _lazy: _LazyAttachments = field(repr=False)

    @property
    def attachments(self) -> Mapping[str, object]:
        return self._lazy.get()

    @property
    def attachments_memoised(self) -> bool:
        """True when :attr:`attachments` is the codec's shared view of these map bytes:
        every request carrying the same (small, all-scalar) map gets the same object, so
        values derived from the map alone may be remembered by its identity. Reads the
        attachments (and so may raise ``BadRequest``)."""
        lazy = self._lazy
        if lazy.value is None:
            lazy.get()
        return lazy.shared

    @property
    def group(self) -> str:
        """The ``group`` attachment, ``""`` when absent (Dubbo's default group)."""
        group = self.attachments.get("group")
        return group if isinstance(group, str) else ""

    def with_request_id(self, request_id: int) -> bytes:
        """This frame under another request id, body untouched."""
        return rewrite_request_id(self.frame, request_id)

    def with_attachments(
        self,
        updates: Mapping[str, object] | None = None,
        remove: Iterable[str] = (),
        *,
        request_id: int | None = None,
        memoise: bool = True,
    ) -> bytes:
        """A new frame whose attachments have ``updates`` set and ``remove`` dropped
        (:meth:`rewritten_attachments`, then :meth:`with_attachments_map`)."""
        new_map = self.rewritten_attachments(updates, remove, memoise=memoise)
        return self.with_attachments_map(new_map, request_id=request_id)

    def with_attachments_map(self, new_map: bytes, *, request_id: int | None = None) -> bytes:
        """This frame with its attachments map replaced by ``new_map``, an encoded map from
        :meth:`rewritten_attachments` of this request or of one whose attachments are the
        same shared view (:attr:`attachments_memoised`). Prefix and arguments are copied.
        Raises ``BadRequest`` when the attachments cannot be decoded."""
        lazy = self._lazy
        if lazy.value is None:
            lazy.get()
        return self._reframed(lazy.start, new_map, request_id)

    def rewritten_attachments(
        self,
        updates: Mapping[str, object] | None = None,
        remove: Iterable[str] = (),
        *,
        memoise: bool = True,
    ) -> bytes:
        """The attachments map, encoded, with ``updates`` set and ``remove`` dropped.

        A function of the map's bytes alone: it may be reused for every request whose
        :attr:`attachments` is the same shared view (:attr:`attachments_memoised`).
        ``memoise=False`` for updates that differ on every call (a fresh ``traceparent``):
        remembering them would only evict the rewrites that do repeat.

        Only the attachments map is rewritten: the prefix and argument bytes are copied as
        they are. Entries not named keep their exact bytes when every entry is a
        self-contained value (the usual all-strings map); otherwise the new entries are
        appended at the end of the map (Java's and hessian.js's readers keep the last value
        of a repeated key) and a removed key is overridden with null. New values must be
        ``str``/``int``/``float``/``bool``/``bytes``/``None`` (``TypeError`` otherwise).
        Raises ``BadRequest`` when the attachments cannot be decoded.
        """
        updates = dict(updates or {})
        removed = set(remove) - updates.keys()
        for key, value in updates.items():
            if not isinstance(key, str) or not isinstance(value, SCALAR_TYPES):
                raise TypeError(f"attachment {key!r}={value!r}: only scalar values are written")
        current = self._lazy.get()
        start = self._lazy.start
        frame = self.frame
        # A consumer sends the same attachments call after call, and the proxy writes the
        # same tag into them: memoise the rewrite of a self-contained map (never of a
        # back-reference, whose meaning depends on the rest of the stream).
        cache_key: tuple[bytes, tuple[tuple[str, object], ...], frozenset[str]] | None = None
        small = len(frame) - start <= MAX_MEMOISED_MAP_BYTES  # (bounds what the memo holds)
        if (
            memoise
            and small
            and (start == len(frame) or frame[start] in (_MAP_UNTYPED, _MAP_TYPED))
        ):
            cache_key = (frame[start:], tuple(updates.items()), frozenset(removed))
            cached = _REWRITES.get(cache_key)
            if cached is not None:
                return cached
        changed = {**updates, **dict.fromkeys(k for k in removed if k in current)}
        added = b"".join(encode(k) + encode(v) for k, v in updates.items())
        if start == len(frame):
            new_map = b"H" + added + b"Z"
        else:
            spliced = _splice_scalar_map(frame, start, changed.keys(), added)
            if spliced is not None:
                new_map = spliced
            elif frame[start] in (_MAP_UNTYPED, _MAP_TYPED):
                nulls = b"".join(encode(k) + b"N" for k in removed if k in current)
                new_map = frame[start:-1] + added + nulls + b"Z"
            else:
                new_map = _fresh_map(current, updates, removed, self.request_id)
        if cache_key is not None:
            if len(_REWRITES) >= MAX_CACHED_REWRITES:
                _REWRITES.clear()
            _REWRITES[cache_key] = new_map
        return new_map

    def _reframed(self, start: int, new_map: bytes, request_id: int | None) -> bytes:
        """This frame with the attachments map (from ``start``) replaced by ``new_map``."""
        frame = self.frame
        header = build_header(
            flags=frame[2],
            status=frame[3],
            request_id=self.request_id if request_id is None else request_id,
            body_length=start - HEADER_LENGTH + len(new_map),
        )
        return b"".join((header, frame[HEADER_LENGTH:start], new_map))


def _splice_scalar_map(
    frame: bytes, start: int, changed: Iterable[str], added: bytes
) -> bytes | None:
    """The map at ``start`` with the entries of ``changed`` keys cut out and ``added``
    appended, or None when some entry is not self-contained (cutting it could renumber)."""
    changed = set(changed)
    end = len(frame)
    tag = frame[start]
    if tag == _MAP_UNTYPED:
        pos = start + 1
    elif tag == _MAP_TYPED:
        if frame[start + 1] not in SCALAR_TAGS:
            return None  # the type is a type-table ref: leave the map whole
        type_decoder = Decoder(frame, start + 1, end)
        type_decoder.skip()
        pos = type_decoder.pos
    else:
        return None
    parts = [frame[start:pos]]
    decoder = Decoder(frame, pos, end)
    while frame[decoder.pos] != _MAP_END:
        entry_start = decoder.pos
        if frame[entry_start] not in SCALAR_TAGS:
            return None
        key = decoder.read()
        if frame[decoder.pos] not in SCALAR_TAGS:
            return None
        decoder.skip()
        if key not in changed:
            parts.append(frame[entry_start : decoder.pos])
    parts.append(added)
    parts.append(b"Z")
    return b"".join(parts)


def _fresh_map(
    current: Mapping[str, object],
    updates: Mapping[str, object],
    removed: set[str],
    request_id: int,
) -> bytes:
    """A new untyped map replacing a map that was sent as a back-reference."""
    merged = {k: v for k, v in current.items() if k not in removed}
    merged.update(updates)
    if not all(isinstance(v, SCALAR_TYPES) for v in merged.values()):
        raise BadRequest(
            f"request {request_id}: attachments are a reference to a map holding objects; "
            "laneway cannot rewrite them",
            request_id=request_id,
        )
    return b"H" + b"".join(encode(k) + encode(v) for k, v in merged.items()) + b"Z"


class _Prefix(NamedTuple):
    """The five strings opening a request body, decoded, and their exact bytes."""

    raw: bytes
    dubbo_version: str
    path: str
    version: str
    method: str
    parameter_types: str
    params: int


class PrefixMemo:
    """The last request prefix one connection parsed. A consumer calls the same method
    again and again; a body starting with the same bytes holds the same five strings
    (strings are self-delimiting and touch no stream-wide table), so they are not decoded
    again (~1.3 us a request). Holds one prefix: bounded by construction."""

    __slots__ = ("last",)

    def __init__(self) -> None:
        self.last: _Prefix | None = None


def parse_request(
    header: Header, frame: bytes, limits: DubboLimits, memo: PrefixMemo | None = None
) -> Request:
    """Decode the prefix of a (non-event) request frame; the rest waits for
    :attr:`Request.attachments`. ``memo``: one connection's (its limits never change).
    Raises ``BadRequest`` carrying the request id."""
    request_id = header.request_id
    known = memo.last if memo is not None else None
    if known is not None and frame.startswith(known.raw, HEADER_LENGTH):
        decoder = Decoder(frame, HEADER_LENGTH + len(known.raw), len(frame), limits.hessian)
        prefix = known
    else:
        decoder = Decoder(frame, HEADER_LENGTH, len(frame), limits.hessian)
        prefix = _parse_prefix(decoder, frame, request_id)
        if memo is not None:
            memo.last = prefix
    return Request(
        request_id=request_id,
        two_way=header.two_way,
        serialization_id=header.serialization_id,
        frame=frame,
        dubbo_version=prefix.dubbo_version,
        path=prefix.path,
        version=prefix.version,
        method=prefix.method,
        parameter_types=prefix.parameter_types,
        _lazy=_LazyAttachments(frame, decoder, prefix.params, limits, request_id),
    )


def _parse_prefix(decoder: Decoder, frame: bytes, request_id: int) -> _Prefix:
    try:
        dubbo_version = decoder.read_string()
        path = decoder.read_string()
        version = decoder.read_nullable_string()
        method = decoder.read_string()
        parameter_types = decoder.read_nullable_string()
    except DecodeError as exc:
        raise BadRequest(
            f"request {request_id}: body does not start with the five Dubbo strings "
            f"(dubbo version, path, version, method, parameter types): {exc}",
            request_id=request_id,
        ) from exc
    if not dubbo_version or not path or not method:
        raise BadRequest(
            f"request {request_id}: empty dubbo version, path or method",
            request_id=request_id,
        )
    parameter_types = parameter_types or ""
    try:
        params = count_parameters(parameter_types)
    except DescriptorError as exc:
        raise BadRequest(f"request {request_id}: {exc}", request_id=request_id) from exc
    return _Prefix(
        frame[HEADER_LENGTH : decoder.pos],
        dubbo_version,
        path,
        version or UNVERSIONED,
        method,
        parameter_types,
        params,
    )
