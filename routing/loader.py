"""Routes file -> ``RouteTable``, or one ``RoutesError`` carrying every problem.

Three passes, each reporting all it finds with ``file:line:col``: safe YAML
(``routing.yamlsafe``), the schema (``routing.model``, pydantic; error locations are mapped
back to the YAML nodes), and meaning (``routing.semantics``). Only a file with no errors
becomes a table; warnings travel on the table (``RouteTable.warnings``) or the error.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import random
import types
import typing
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from routing.model import RoutesConfig
from routing.problems import Problem, RoutesError, Severity
from routing.semantics import check
from routing.table import RouteTable
from routing.yamlsafe import MAX_FILE_BYTES, Document, PathKey, parse

M = TypeVar("M", bound=BaseModel)

# Hex digits of the content hash used as a table version: short enough for logs and spans.
VERSION_DIGITS = 12


class SchemaError(RoutesError):
    """Schema problems; ``sections`` names the top-level keys they are under."""

    def __init__(self, errors: tuple[Problem, ...], sections: frozenset[str]) -> None:
        super().__init__(errors)
        self.sections = sections


def read_text(path: str | os.PathLike[str]) -> tuple[str, str]:
    """(text, display name) of a YAML file, refusing big or undecodable files before parsing."""
    name = os.fspath(path)
    try:
        size = Path(name).stat().st_size
        if size > MAX_FILE_BYTES:
            raise _one(name, f"file is {size} bytes; limit {MAX_FILE_BYTES}")
        raw = Path(name).read_bytes()
    except OSError as exc:
        raise _one(name, f"cannot read: {exc.strerror or exc}") from None
    try:
        return raw.decode("utf-8"), name
    except UnicodeDecodeError as exc:
        raise _one(name, f"not UTF-8 (byte {exc.start})") from None


def _one(name: str, message: str) -> RoutesError:
    return RoutesError((Problem(name, 1, 1, Severity.ERROR, message),))


def load(
    path: str | os.PathLike[str], *, now: datetime | None = None, rng: random.Random | None = None
) -> RouteTable:
    """Load a routes file. Raises ``RoutesError`` with every problem found."""
    text, name = read_text(path)
    return loads(text, name, now=now, rng=rng)


def loads(
    text: str,
    filename: str = "routes.yaml",
    *,
    now: datetime | None = None,
    rng: random.Random | None = None,
) -> RouteTable:
    """Compile routes YAML ``text``; ``filename`` names it in problems. ``now`` decides which
    envs are already expired (warnings only; expiry is applied per call by the table)."""
    doc = parse(text, filename)
    when = now or datetime.now(UTC)
    try:
        config = validate(RoutesConfig, doc)
    except RoutesError as exc:
        raise _with_meaning(exc, doc, when) from None
    problems = check(config, doc, when)
    errors = tuple(p for p in problems if p.severity is Severity.ERROR)
    warnings = tuple(p for p in problems if p.severity is Severity.WARNING)
    if errors:
        raise RoutesError(errors, warnings)
    version = hashlib.sha256(text.encode("utf-8")).hexdigest()[:VERSION_DIGITS]
    return RouteTable(config, version=version, source=filename, warnings=warnings, rng=rng)


def _with_meaning(exc: RoutesError, doc: Document, now: datetime) -> RoutesError:
    """Schema errors plus the meaning problems of the sections that passed the schema, so
    one run reports as much as it can."""
    data = doc.data
    if not isinstance(data, dict):
        return exc
    if not isinstance(exc, SchemaError):
        return exc
    bad = exc.sections
    try:
        partial = RoutesConfig.model_validate({k: v for k, v in data.items() if k not in bad})
    except ValidationError:
        return exc
    more = check(partial, doc, now, skip=bad)
    errors = sorted([*exc.errors, *(p for p in more if p.severity is Severity.ERROR)], key=_order)
    warnings = tuple(p for p in more if p.severity is Severity.WARNING)
    return RoutesError(tuple(errors), warnings)


def _order(p: Problem) -> tuple[int, int]:
    return (p.line, p.col)


def validate(model: type[M], doc: Document) -> M:
    """Validate ``doc.data`` against ``model``; schema errors become located problems."""
    data = {} if doc.data is None else doc.data
    if not isinstance(data, dict):
        raise RoutesError((doc.problem((), "the file must be a mapping of keys to values"),))
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errs = exc.errors(include_url=False)
        problems = sorted((_located(model, doc, err) for err in errs), key=_order)
        sections = frozenset(str(err["loc"][0]) for err in errs if err["loc"])
        raise SchemaError(tuple(problems), sections) from None


def _located(model: type[BaseModel], doc: Document, err: typing.Any) -> Problem:
    loc: PathKey = tuple(err["loc"])
    kind: str = err["type"]
    msg: str = err["msg"].removeprefix("Value error, ")
    where = _describe(doc, loc)
    if kind == "extra_forbidden":
        key = str(loc[-1])
        hint = difflib.get_close_matches(key, _fields_at(model, loc[:-1]), n=1)
        text = f"unknown key {key!r}" + (f" (did you mean {hint[0]!r}?)" if hint else "")
        scope = _describe(doc, loc[:-1])
        return doc.problem(loc, f"{scope}: {text}" if scope else text, key=True)
    if kind == "missing":
        scope = _describe(doc, loc[:-1]) or "file"
        return doc.problem(loc[:-1], f"{scope}: missing key {loc[-1]!r}")
    return doc.problem(loc, f"{where}: {msg}" if where else msg)


def _describe(doc: Document, loc: PathKey) -> str:
    """``rule 'name' match.method`` for paths under a rule, else ``environments.x.strict``."""
    parts: list[str] = []
    data = doc.data
    i = 0
    if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int):
        rules = data.get("rules") if isinstance(data, dict) else None
        rule = rules[loc[1]] if isinstance(rules, list) and loc[1] < len(rules) else None
        name = rule.get("name") if isinstance(rule, dict) else None
        parts.append(f"rule {name!r}" if isinstance(name, str) else f"rules[{loc[1]}]")
        i = 2
    dotted = ""
    for part in loc[i:]:
        dotted += f"[{part}]" if isinstance(part, int) else (f".{part}" if dotted else str(part))
    if dotted:
        parts.append(dotted)
    return " ".join(parts)


def _fields_at(model: type[BaseModel], loc: PathKey) -> list[str]:
    """The field names of the model reached by ``loc`` from ``model`` (for did-you-mean)."""
    current: object = model
    steps = list(loc)
    while True:
        origin = typing.get_origin(current)
        args = typing.get_args(current)
        if origin in (typing.Union, types.UnionType):
            current = next((a for a in args if a is not type(None)), None)
        elif origin is typing.Annotated:
            current = args[0]
        elif not steps:
            break
        elif isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(steps.pop(0)))
            if field is None:
                return []
            current = field.annotation
        elif origin in (tuple, list):
            steps.pop(0)
            current = args[0] if args else None
        elif origin is dict:
            steps.pop(0)
            current = args[1] if len(args) == 2 else None
        else:
            return []
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []
