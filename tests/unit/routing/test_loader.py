"""Loader errors, each asserted at its exact line and column (1-based), and warnings."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from routing import RoutesError, Severity, load, loads

NOW = datetime(2026, 11, 28, tzinfo=UTC)


def errors_of(text: str) -> list[tuple[int, int, str]]:
    with pytest.raises(RoutesError) as info:
        loads(text, "routes.yaml", now=NOW)
    assert all(p.file == "routes.yaml" for p in info.value.errors)
    assert all(p.severity is Severity.ERROR for p in info.value.errors)
    return [(p.line, p.col, p.message) for p in info.value.errors]


# (name, YAML, [(line, col, message fragment), ...]) -- every error the file has.
CASES = [
    ("syntax: unclosed flow", "rules: [\n  {name: a}\n", [(3, 1, "YAML syntax")]),
    ("syntax: bad indent", "main: main\n  x: 1\n", [(2, 4, "mapping values are not allowed")]),
    ("duplicate key", "main: main\nenvironments: {}\nmain: other\n",
     [(3, 1, "duplicate key 'main' (first at line 1)")]),
    ("unknown top-level key", "mian: main\n",
     [(1, 1, "unknown key 'mian' (did you mean 'main'?)")]),
    ("unknown env key", "environments:\n  dev: {strikt: true}\n",
     [(2, 9, "environments.dev: unknown key 'strikt' (did you mean 'strict'?)")]),
    ("wrong type bool", "environments:\n  dev:\n    strict: 'yes'\n",
     [(3, 13, "environments.dev.strict: Input should be a valid boolean")]),
    ("wrong type str", "main: 5\n", [(1, 7, "main: Input should be a valid string")]),
    ("bad literal", "invalid_tag: drop\n", [(1, 14, "Input should be 'main' or 'reject'")]),
    ("bad regex",
     "rules:\n  - name: r\n    match:\n      headers: {x: {regex: '(a'}}\n    route: {env: main}\n",
     [(4, 28, "rule 'r' match.headers.x.regex: bad regex '(a'")]),
    ("two header kinds",
     "rules:\n  - name: r\n    match: {headers: {x: {exact: a, prefix: b}}}\n"
     "    route: {env: main}\n",
     [(3, 26, "exactly one of exact, prefix, regex, present, absent (got exact, prefix)")]),
    ("weights not 100",
     "rules:\n  - name: r\n    route:\n      weights: {canary: 5, main: 90}\n",
     [(4, 16, "rule 'r' route.weights: weights sum to 95, must sum to 100")]),
    ("env and weights", "rules:\n  - name: r\n    route: {env: a, weights: {a: 100}}\n",
     [(3, 12, "give exactly one of env, weights")]),
    ("missing route", "rules:\n  - name: r\n    match: {}\n",
     [(2, 5, "rule 'r': missing key 'route'")]),
    ("missing name", "rules:\n  - route: {env: main}\n", [(2, 5, "rules[0]: missing key 'name'")]),
    ("bad address", "providers:\n  - {service: s, address: 'nohost'}\n",
     [(2, 27, "providers[0].address: address must be host:port")]),
    ("fallback undeclared", "environments:\n  dev: {fallback: nowhere}\n",
     [(2, 19, "env 'dev' falls back to 'nowhere', which is not declared")]),
    ("fallback cycle",
     "environments:\n  a: {fallback: b}\n  b: {fallback: c}\n  c: {fallback: a}\n",
     [(2, 17, "fallback cycle: a -> b -> c -> a")]),
    ("self fallback", "environments:\n  a: {fallback: a}\n", [(2, 17, "fallback cycle: a -> a")]),
    ("strict with fallback", "environments:\n  a: {strict: true, fallback: main}\n",
     [(2, 31, "env 'a' is strict: it never falls back")]),
    ("env name not a label", "environments:\n  feature/x: {}\n",
     [(2, 3, "env name 'feature/x' must be made of letters")]),
    ("main declared", "environments:\n  main: {}\n", [(2, 3, "'main' is main; it is implicit")]),
    ("duplicate rule name",
     "rules:\n  - {name: r, route: {env: main}}\n  - {name: r, route: {env: main}}\n",
     [(3, 12, "duplicate rule name 'r' (first at line 2)")]),
    ("rule to undeclared env with reject",
     "undeclared_env: reject\nrules:\n  - name: r\n    route: {weights: {ghost: 10, main: 90}}\n",
     [(4, 23, "rule 'r' routes to env 'ghost', which is not declared")]),
    ("not a mapping", "- a\n- b\n", [(1, 1, "the file must be a mapping")]),
    ("empty carrier name", "tag:\n  header: ''\n", [(2, 11, "the header name must not be empty")]),
]  # fmt: skip


@pytest.mark.parametrize(("name", "text", "want"), CASES, ids=[c[0] for c in CASES])
def test_error_positions(name: str, text: str, want: list[tuple[int, int, str]]) -> None:
    got = errors_of(text)
    assert len(got) == len(want), got
    for (line, col, message), (wline, wcol, fragment) in zip(got, want, strict=True):
        assert (line, col) == (wline, wcol), (message, got)
        assert fragment in message


def test_many_problems_in_one_run() -> None:
    """Schema errors in one section do not hide meaning errors in another."""
    text = (
        "tag: {heder: x-env}\n"  # 1
        "environments:\n"  # 2
        "  a: {fallback: b}\n"  # 3
        "  b: {fallback: a}\n"  # 4
        "  c: {fallback: ghost}\n"  # 5
        "rules:\n"  # 6
        "  - {name: r, route: {env: main}, mtch: {}}\n"  # 7
    )
    got = [(line, col) for line, col, _ in errors_of(text)]
    assert got == [(1, 7), (3, 17), (5, 17), (7, 35)]


def test_warnings_shadowed_rule_and_expired_env() -> None:
    t = loads(
        """environments:
  old: {expires: 2025-01-01}
rules:
  - name: all-users
    match: {service: 'com.acme.*'}
    route: {env: main}
  - name: getter
    match: {service: com.acme.UserService, method: get}
    route: {env: old}
  - name: other-service
    match: {service: org.x.Y}
    route: {env: main}
""",
        "routes.yaml",
        now=NOW,
    )
    assert [(w.line, w.col, w.severity) for w in t.warnings] == [
        (2, 18, Severity.WARNING),
        (7, 5, Severity.WARNING),
    ]
    assert "expired at 2025-01-01T00:00:00+00:00" in t.warnings[0].message
    assert "'getter' is shadowed by earlier rule 'all-users' (line 4)" in t.warnings[1].message


def test_no_carrier_warns() -> None:
    t = loads("tag: {}\n", "routes.yaml")
    assert [(w.line, w.col) for w in t.warnings] == [(1, 6)]
    assert "every call is untagged" in t.warnings[0].message


def test_defaults_and_tag_order() -> None:
    t = loads("", "routes.yaml")
    assert t.main == "main" and t.config.tag.order == ("header", "attachment", "baggage")
    t = loads("tag: {baggage: env, header: x-lane}\n", "routes.yaml")
    assert t.config.tag.order == ("baggage", "header") and t.config.tag.attachment is None


def test_version_is_content_hash(tmp_path: Path) -> None:
    a = loads("main: main\n", "routes.yaml")
    b = loads("main: main\n", "other.yaml")
    c = loads("main: trunk\n", "routes.yaml")
    assert a.version == b.version != c.version
    path = tmp_path / "routes.yaml"
    path.write_text("main: main\n")
    t = load(path)
    assert t.version == a.version and t.source == str(path)


def test_example_file_is_valid() -> None:
    root = Path(__file__).resolve().parents[3]
    t = load(root / "examples" / "routes.yaml", now=NOW)
    assert t.warnings == ()
    assert len(t.config.rules) == 2 and "feature-login" in t.config.environments


def test_load_missing_file(tmp_path: Path) -> None:
    with pytest.raises(RoutesError) as info:
        load(tmp_path / "nope.yaml")
    assert "cannot read" in info.value.errors[0].message


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_bytes(b"main: \xff\n")
    with pytest.raises(RoutesError) as info:
        load(path)
    assert "not UTF-8" in info.value.errors[0].message
