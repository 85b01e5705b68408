"""Safe YAML: text -> plain Python values, with the source position of every key and value.

Only ruamel.yaml's *parser* runs on the input: we build the values ourselves from its event
stream in one iterative pass, so no tag can ever construct an object
(``!!python/object/apply``, ``!!python/name`` and friends are reported as errors, TESTS.md
R9). Scalars with a core tag (str, int, float, bool, null, timestamp) are converted by
ruamel's *safe* constructor. An alias reuses the value built for its anchor.

Refused: files over ``MAX_FILE_BYTES`` (before parsing); documents expanding, aliases
included, to more than ``MAX_NODES`` nodes (alias bombs) and nesting deeper than
``MAX_DEPTH`` (both stop the parse early: ruamel's scanner slows down quadratically with
flow nesting); recursive and undefined aliases; several documents. Duplicate keys, merge
keys and non-scalar keys are errors. Every problem carries its 1-based line and column, and
all problems of a file are collected before raising.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from itertools import accumulate
from typing import TypeAlias

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import (
    AliasEvent,
    CollectionEndEvent,
    DocumentStartEvent,
    Event,
    MappingStartEvent,
    ScalarEvent,
    SequenceStartEvent,
)
from ruamel.yaml.nodes import ScalarNode

from routing.problems import Problem, RoutesError, Severity

# A routes file is edited by people; 1 MiB is far beyond any real one (TESTS.md R9).
MAX_FILE_BYTES = 1024 * 1024
# Expanded node budget: 10,000 envs or 1,000 rules stay well under it; an alias bomb blows past.
MAX_NODES = 100_000
# Deeper nesting is never a routes file (and bounds the scanner's cost, see above).
MAX_DEPTH = 64

_CORE = "tag:yaml.org,2002:"
# The only scalar tags we convert; anything else (python/*, binary, set, merge...) is refused.
_SCALAR_TAGS = frozenset(_CORE + t for t in ("str", "int", "float", "bool", "null", "timestamp"))
_MAP_TAG = _CORE + "map"
_SEQ_TAG = _CORE + "seq"

PathKey: TypeAlias = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Pos:
    """A 1-based source position."""

    line: int
    col: int


_TOP = Pos(1, 1)


@dataclass(frozen=True, slots=True)
class Document:
    """Plain values (dict / list / scalars) and where each of them was written.

    ``value_pos[path]`` is where the value at ``path`` starts; ``key_pos[path]`` is where
    its key was written (mapping entries only).
    """

    filename: str
    data: object
    value_pos: Mapping[PathKey, Pos]
    key_pos: Mapping[PathKey, Pos]

    def pos(self, path: PathKey, *, key: bool = False) -> Pos:
        """Position of ``path`` (its key when ``key``), else of its nearest written ancestor."""
        if key and path in self.key_pos:
            return self.key_pos[path]
        for i in range(len(path), -1, -1):
            found = self.value_pos.get(path[:i])
            if found is not None:
                return found
        return _TOP

    def problem(
        self, path: PathKey, message: str, *, key: bool = False, severity: Severity = Severity.ERROR
    ) -> Problem:
        p = self.pos(path, key=key)
        return Problem(self.filename, p.line, p.col, severity, message)


class _Abort(Exception):
    """A limit was hit: stop parsing at once (the problem is already recorded)."""


@dataclass(slots=True)
class _Frame:
    """An open mapping or sequence."""

    value: dict[str, object] | list[object]
    path: PathKey
    anchor: str | None
    size: int = 1
    key: str | None = None  # mapping: the key awaiting its value
    skip_value: bool = False  # mapping: the key was bad, drop its value
    drop: bool = False  # this collection is being dropped (a bad key, or a dropped value)
    is_key: bool = False  # dropped because it was written as a mapping key
    seen: dict[str, Pos] = field(default_factory=dict)


class _Builder:
    def __init__(self, filename: str, yaml: YAML) -> None:
        self.filename = filename
        self.yaml = yaml
        self.errors: list[Problem] = []
        self.value_pos: dict[PathKey, Pos] = {}
        self.key_pos: dict[PathKey, Pos] = {}
        self.anchors: dict[str, tuple[object, int]] = {}  # anchor -> (value, expanded size)
        self.open_anchors: set[str] = set()
        self.stack: list[_Frame] = []
        self.total = 0
        self.root: object = None
        self.documents = 0

    def error(self, event: Event, message: str) -> None:
        p = _pos(event)
        self.errors.append(Problem(self.filename, p.line, p.col, Severity.ERROR, message))

    def run(self, events: Iterable[Event]) -> object:
        for event in events:
            if isinstance(event, DocumentStartEvent):
                self.documents += 1
                if self.documents > 1:
                    self.error(event, "only one YAML document is allowed")
                    raise _Abort
            elif isinstance(event, ScalarEvent):
                self.scalar(event)
            elif isinstance(event, MappingStartEvent | SequenceStartEvent):
                self.start(event)
            elif isinstance(event, CollectionEndEvent):
                self.end()
            elif isinstance(event, AliasEvent):
                self.alias(event)
        return self.root

    def _count(self, event: Event, size: int) -> None:
        self.total += size
        if self.total > MAX_NODES:
            self.error(event, f"document expands to more than {MAX_NODES} nodes (alias bomb?)")
            raise _Abort

    def _child_path(self) -> PathKey | None:
        """Path of the value about to be delivered (None: it is a mapping key, or dropped)."""
        if not self.stack:
            return ()
        top = self.stack[-1]
        if top.drop:
            return None
        if isinstance(top.value, list):
            return (*top.path, len(top.value))
        if top.skip_value or top.key is None:
            return None
        return (*top.path, top.key)

    def _deliver(self, value: object, size: int) -> None:
        if not self.stack:
            self.root = value
            return
        top = self.stack[-1]
        top.size += size
        if isinstance(top.value, list):
            top.value.append(value)
        elif top.skip_value:
            top.skip_value = False
        elif top.key is not None:
            top.value[top.key] = value
            top.key = None

    def _expecting_key(self) -> bool:
        if not self.stack:
            return False
        top = self.stack[-1]
        return isinstance(top.value, dict) and top.key is None and not top.skip_value

    def scalar(self, event: ScalarEvent) -> None:
        self._count(event, 1)
        tag = event.tag
        if tag is None or tag == "!":
            tag = self.yaml.resolver.resolve(ScalarNode, event.value, event.implicit)
        tag = str(tag)
        if self._expecting_key():
            if event.anchor is not None:
                self.anchors[str(event.anchor)] = (str(event.value), 1)
            self.key(event, tag)
            return
        path = self._child_path()
        if path is not None:
            self.value_pos.setdefault(path, _pos(event))
        value: object = None
        if tag not in _SCALAR_TAGS:
            self.error(event, f"YAML tag {_short(tag)} is not allowed (safe loading only)")
        else:
            node = ScalarNode(tag, event.value, event.start_mark, event.end_mark, event.style)
            value = self.yaml.constructor.construct_object(node, deep=True)
        if event.anchor is not None:
            self.anchors[str(event.anchor)] = (value, 1)
        self._deliver(value, 1)

    def key(self, event: ScalarEvent, tag: str) -> None:
        top = self.stack[-1]
        assert isinstance(top.value, dict)
        if tag == _CORE + "merge":
            self.error(event, "merge keys (<<) are not supported; repeat the keys")
            top.skip_value = True
            return
        if tag not in _SCALAR_TAGS:
            self.error(event, f"YAML tag {_short(tag)} is not allowed (safe loading only)")
            top.skip_value = True
            return
        # Keys keep their source text: an env named `1234` or `yes` stays a string.
        key = str(event.value)
        if key in top.seen:
            first = top.seen[key]
            self.error(event, f"duplicate key {key!r} (first at line {first.line})")
            top.skip_value = True
            return
        top.seen[key] = _pos(event)
        if not top.drop:
            self.key_pos[(*top.path, key)] = _pos(event)
        top.key = key

    def start(self, event: MappingStartEvent | SequenceStartEvent) -> None:
        self._count(event, 1)
        is_map = isinstance(event, MappingStartEvent)
        drop = is_key = False
        if self._expecting_key():
            self.error(event, "mapping keys must be plain scalars")
            self.stack[-1].skip_value = True  # its value goes too
            drop = is_key = True
        tag = event.tag
        if tag is not None and tag != "!" and str(tag) != (_MAP_TAG if is_map else _SEQ_TAG):
            self.error(event, f"YAML tag {_short(str(tag))} is not allowed (safe loading only)")
        path = self._child_path()
        if drop or path is None:
            drop = True
            path = self.stack[-1].path if self.stack else ()
        else:
            self.value_pos.setdefault(path, _pos(event))
        anchor = None if event.anchor is None else str(event.anchor)
        if anchor is not None:
            self.open_anchors.add(anchor)
        frame = _Frame({} if is_map else [], path, anchor, drop=drop, is_key=is_key)
        self.stack.append(frame)
        if len(self.stack) > MAX_DEPTH:
            self.error(event, f"nesting deeper than {MAX_DEPTH} levels")
            raise _Abort

    def end(self) -> None:
        frame = self.stack.pop()
        if frame.anchor is not None:
            self.open_anchors.discard(frame.anchor)
            self.anchors[frame.anchor] = (frame.value, frame.size)
        if frame.is_key:
            return  # the parent's skip_value drops the value that follows
        self._deliver(None if frame.drop else frame.value, frame.size)

    def alias(self, event: AliasEvent) -> None:
        anchor = str(event.anchor)
        if self._expecting_key():
            self.error(event, "mapping keys must be plain scalars")
            self.stack[-1].skip_value = True
            return
        if anchor in self.open_anchors:
            self.error(event, "recursive alias")
            self._deliver(None, 1)
            return
        found = self.anchors.get(anchor)
        if found is None:
            self.error(event, f"undefined alias *{anchor}")
            self._deliver(None, 1)
            return
        value, size = found
        self._count(event, size)
        path = self._child_path()
        if path is not None:
            self.value_pos.setdefault(path, _pos(event))
        self._deliver(value, size)


def _pos(event: Event) -> Pos:
    mark = event.start_mark
    return Pos(mark.line + 1, mark.column + 1) if mark is not None else _TOP


def _short(tag: str) -> str:
    return "!!" + tag[len(_CORE) :] if tag.startswith(_CORE) else tag


_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_BRACKET = re.compile(r"[\[\]{}]")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


def _flow_too_deep(text: str) -> Pos | None:
    """Where flow brackets first nest deeper than MAX_DEPTH, else None.

    A C-speed estimate run before ruamel, whose scanner looks up to 1024 characters ahead
    at a cost quadratic in the flow depth (~0.25 s for a line of ``[``). Brackets inside
    quoted strings or comments are counted too: a false alarm needs 65 unclosed ones there.
    """
    only = _NOT_BRACKET.sub("", text)
    if len(only) <= MAX_DEPTH or max(accumulate(map(_STEP.__getitem__, only))) <= MAX_DEPTH:
        return None
    depth = 0
    for m in _BRACKET.finditer(text):  # the rare error case: find where, then stop
        depth += _STEP[m.group()]
        if depth > MAX_DEPTH:
            off = m.start()
            return Pos(text.count("\n", 0, off) + 1, off - text.rfind("\n", 0, off))
    return None


def parse(text: str, filename: str) -> Document:
    """Parse one YAML document safely. Raises ``RoutesError`` with every problem found.

    An empty document yields ``data = None``.
    """
    size = len(text.encode("utf-8", errors="replace"))
    if size > MAX_FILE_BYTES:
        raise RoutesError(
            (
                Problem(
                    filename, 1, 1, Severity.ERROR, f"file is {size} bytes; limit {MAX_FILE_BYTES}"
                ),
            )
        )
    deep = _flow_too_deep(text)
    if deep is not None:
        message = f"nesting deeper than {MAX_DEPTH} levels"
        raise RoutesError((Problem(filename, deep.line, deep.col, Severity.ERROR, message),))
    yaml = YAML(typ="safe", pure=True)
    builder = _Builder(filename, yaml)
    try:
        data = builder.run(yaml.parse(text))
    except _Abort:
        raise RoutesError(tuple(builder.errors)) from None
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        message = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        syntax = Problem(filename, line, col, Severity.ERROR, f"YAML syntax: {message}")
        raise RoutesError((*builder.errors, syntax)) from None
    except YAMLError as exc:
        raise RoutesError((Problem(filename, 1, 1, Severity.ERROR, f"YAML: {exc}"),)) from None
    if builder.errors:
        raise RoutesError(tuple(builder.errors))
    return Document(filename, data, builder.value_pos, builder.key_pos)
