"""`laneway check` and `laneway explain`, run as a real subprocess: exit codes and output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def laneway(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "proxy", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=60,
        check=False,
    )


BAD = """\
main: main
environments:
  dev: {fallback: nowhere}
  qa: {strikt: true}
rules:
  - name: r
    route: {weights: {dev: 10, main: 80}}
"""


def test_check_valid_example() -> None:
    out = laneway("check", str(EXAMPLES / "routes.yaml"))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "ok (version " in out.stdout


def test_check_reports_every_problem_with_position(tmp_path: Path) -> None:
    (tmp_path / "routes.yaml").write_text(BAD)
    out = laneway("check", "routes.yaml", cwd=tmp_path)
    assert out.returncode == 1
    lines = out.stdout.splitlines()
    assert lines == [
        "routes.yaml:4:8: error: environments.qa: unknown key 'strikt' (did you mean 'strict'?)",
        "routes.yaml:7:22: error: rule 'r' route.weights: weights sum to 90, must sum to 100",
    ]


def test_check_meaning_errors_and_warnings(tmp_path: Path) -> None:
    (tmp_path / "routes.yaml").write_text(
        "environments:\n  dev: {fallback: nowhere}\n  old: {expires: 2001-01-01}\n"
    )
    out = laneway("check", "routes.yaml", cwd=tmp_path)
    assert out.returncode == 1
    assert out.stdout.splitlines() == [
        "routes.yaml:2:19: error: env 'dev' falls back to 'nowhere', which is not declared",
        "routes.yaml:3:18: warning: env 'old' expired at 2001-01-01T00:00:00+00:00; "
        "its calls fall back",
    ]


def test_check_warnings_only_exit_zero(tmp_path: Path) -> None:
    (tmp_path / "routes.yaml").write_text("environments:\n  old: {expires: 2001-01-01}\n")
    out = laneway("check", "routes.yaml", cwd=tmp_path)
    assert out.returncode == 0
    assert out.stdout.startswith("routes.yaml:2:18: warning: env 'old' expired")


def test_check_json(tmp_path: Path) -> None:
    (tmp_path / "routes.yaml").write_text(BAD)
    out = laneway("check", "routes.yaml", "--format", "json", cwd=tmp_path)
    assert out.returncode == 1
    doc = json.loads(out.stdout)
    assert doc["valid"] is False
    assert [(p["line"], p["col"], p["severity"]) for p in doc["problems"]] == [
        (4, 8, "error"),
        (7, 22, "error"),
    ]
    ok = laneway("check", str(EXAMPLES / "routes.yaml"), "--format", "json")
    assert ok.returncode == 0 and json.loads(ok.stdout)["valid"] is True


def test_check_refuses_object_tags_without_side_effect(tmp_path: Path) -> None:
    """R9 yaml-safety, through the CLI."""
    marker = tmp_path / "pwned"
    (tmp_path / "routes.yaml").write_text(
        f"main: !!python/object/apply:os.system ['touch {marker}']\n"
    )
    out = laneway("check", "routes.yaml", cwd=tmp_path)
    assert out.returncode == 1
    assert out.stdout.startswith("routes.yaml:1:7: error: YAML tag !!python/object/apply:os.system")
    assert not marker.exists()


def test_check_missing_file(tmp_path: Path) -> None:
    out = laneway("check", "absent.yaml", cwd=tmp_path)
    assert out.returncode == 1 and "absent.yaml:1:1: error: cannot read" in out.stdout


def _explain(*extra: str) -> subprocess.CompletedProcess[str]:
    return laneway(
        "explain",
        "--routes",
        str(EXAMPLES / "routes.yaml"),
        "--providers",
        str(EXAMPLES / "providers.yaml"),
        "--service",
        "com.acme.UserService",
        "--method",
        "getUser",
        *extra,
    )


def test_explain_routed_table() -> None:
    out = _explain("-H", "x-env=feature-login")
    assert out.returncode == 0, out.stderr
    assert "feature-login (used)" in out.stdout and "10.0.1.21:20880" in out.stdout


def test_explain_fallback_json() -> None:
    out = _explain("-H", "X-Env=demo-bob", "--format", "json")
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout)
    assert d["tag"] == "demo-bob" and d["carrier"] == "header x-env"
    assert d["lanes_tried"] == [
        {"env": "demo-bob", "outcome": "no_provider"},
        {"env": "main", "outcome": "used"},
    ]
    assert d["lane"] == "main" and d["fallback"] == "no_provider"
    assert d["chain"] == ["demo-bob", "main"]


def test_explain_rule_and_health_aware_fallback() -> None:
    out = _explain("-H", "x-user-id=9123", "--format", "json")
    d = json.loads(out.stdout)
    assert d["rule"] == "testers-to-canary"
    assert [a["outcome"] for a in d["lanes_tried"]] == ["unhealthy", "used"]


def test_explain_no_route_exits_2() -> None:
    out = _explain("-H", "x-env=release-2026-12", "--format", "json")
    assert out.returncode == 2
    d = json.loads(out.stdout)
    assert d["error_kind"] == "strict" and "com.acme.UserService" in d["error"]
    text = _explain("-H", "x-env=release-2026-12")
    assert text.returncode == 2 and "strict" in text.stdout


def test_explain_invalid_routes_exit_1(tmp_path: Path) -> None:
    (tmp_path / "routes.yaml").write_text(BAD)
    out = laneway("explain", "--routes", "routes.yaml", "--service", "S", cwd=tmp_path)
    assert out.returncode == 1 and "routes.yaml:4:8: error:" in out.stderr
