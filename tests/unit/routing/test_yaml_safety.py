"""R9 yaml-safety: no YAML tag constructs an object; big files and alias bombs are refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from routing import RoutesError, load, loads
from routing.yamlsafe import MAX_DEPTH, MAX_FILE_BYTES, MAX_NODES


def first_error(text: str) -> tuple[int, int, str]:
    with pytest.raises(RoutesError) as info:
        loads(text, "routes.yaml")
    p = info.value.errors[0]
    return p.line, p.col, p.message


@pytest.mark.parametrize(
    "tagged",
    [
        "!!python/object/apply:os.system ['touch {marker}']",
        "!!python/object/new:os.system ['touch {marker}']",
        "!!python/name:os.system",
        "!!python/module:os",
        "!!binary aGVsbG8=",
        "!custom {{a: 1}}",
        "!!set {{a, b}}",
    ],
)
def test_tags_never_construct(tagged: str, tmp_path: Path) -> None:
    """R9 yaml-safety"""
    marker = tmp_path / "pwned"
    line, col, message = first_error("main: main\nrules: " + tagged.format(marker=marker) + "\n")
    assert (line, col) == (2, 8)
    assert "is not allowed (safe loading only)" in message
    assert not marker.exists()


def test_tag_inside_nested_value_is_located() -> None:
    """R9 yaml-safety"""
    text = "environments:\n  dev:\n    owner: !!python/object/apply:os.getcwd []\n"
    assert first_error(text)[:2] == (3, 12)


def test_file_over_limit_refused_before_parsing(tmp_path: Path) -> None:
    """R9 yaml-safety: a 10 MB file"""
    path = tmp_path / "big.yaml"
    path.write_text("# " + "x" * (10 * 1024 * 1024) + "\n")
    with pytest.raises(RoutesError) as info:
        load(path)
    assert f"limit {MAX_FILE_BYTES}" in info.value.errors[0].message
    with pytest.raises(RoutesError):
        loads("#" * (MAX_FILE_BYTES + 1), "routes.yaml")


def test_alias_bomb_refused() -> None:
    """R9 yaml-safety: billion laughs"""
    lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for i, name in enumerate("bcdefghi"):
        prev = "abcdefghi"[i]
        lines.append(f"{name}: &{name} [{', '.join(['*' + prev] * 10)}]")
    line, _, message = first_error("\n".join(lines) + "\n")
    assert f"more than {MAX_NODES} nodes" in message
    assert line <= len(lines)


def test_small_aliases_still_work() -> None:
    t = loads(
        "environments:\n  a: &e {owner: me}\n  b: *e\n",
        "routes.yaml",
    )
    assert t.config.environments["b"].owner == "me"


def test_recursive_alias_refused() -> None:
    """R9 yaml-safety"""
    assert "recursive alias" in first_error("rules: &r [*r]\n")[2]


def test_deep_nesting_refused() -> None:
    """R9 yaml-safety: both within and beyond the parser's own recursion."""
    for depth in (MAX_DEPTH + 5, 5000):
        message = first_error("main: " + "[" * depth + "]" * depth + "\n")[2]
        assert f"deeper than {MAX_DEPTH}" in message


def test_flow_nesting_refused_at_its_position() -> None:
    """R9 yaml-safety: a line of brackets is refused before the parser sees it."""
    assert first_error("main: " + "[" * 100_000)[:2] == (1, 6 + MAX_DEPTH + 1)


def test_block_nesting_refused() -> None:
    """Nesting by indentation (no brackets) is bounded by the event walk."""
    text = "".join(" " * i + f"k{i}:\n" for i in range(MAX_DEPTH + 3))
    line, col, message = first_error(text)
    assert f"deeper than {MAX_DEPTH}" in message and (line, col) == (MAX_DEPTH + 1, MAX_DEPTH + 1)


def test_brackets_in_strings_are_fine() -> None:
    regexes = "\n".join(f"        h{i}: {{regex: '^[a-z]{{{i}}}$'}}" for i in range(80))
    head = "rules:\n  - name: r\n    route: {env: main}\n    match:\n      headers:\n"
    t = loads(head + regexes + "\n", "r.yaml")
    assert len(t.config.rules[0].match.headers) == 80


def test_merge_keys_refused() -> None:
    text = "environments:\n  a: &a {owner: me}\n  b: {<<: *a}\n"
    assert first_error(text)[:2] == (3, 7)


def test_multiple_documents_refused() -> None:
    line, _, message = first_error("main: main\n---\nmain: other\n")
    assert "only one YAML document" in message and line == 2


@pytest.mark.parametrize(
    ("text", "position"),
    [
        ("? [k]\n: 1\nmain: x\n", (1, 3)),
        ("? {a: 1}\n: {b: [1, 2]}\nmain: x\n", (1, 3)),
        ("a: &a 1\n*a : 2\nmain: x\n", (2, 1)),
        ("main: *nope\n", (1, 7)),
    ],
)
def test_bad_keys_and_aliases_are_reported_and_skipped(
    text: str, position: tuple[int, int]
) -> None:
    """A bad key is reported and its value skipped; the rest of the mapping still parses."""
    with pytest.raises(RoutesError) as info:
        loads(text, "routes.yaml")
    errors = info.value.errors
    assert [(p.line, p.col) for p in errors] == [position], errors
