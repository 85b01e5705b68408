"""Meaning checks on a schema-valid routes file: the problems pydantic cannot see.

Errors: env names that are not DNS labels, declaring main, strict envs with a fallback,
fallbacks to undeclared envs, fallback cycles, duplicate rule names, rules sending calls
to undeclared envs when ``undeclared_env: reject``. Warnings: rules shadowed by an earlier
rule (they never fire) and expired envs. Each problem points at the offending node.
"""

from __future__ import annotations

from datetime import datetime

from routing.model import RoutesConfig
from routing.problems import Problem, Severity
from routing.rules import is_glob, shadows
from routing.views import is_env_name
from routing.yamlsafe import Document

_LABEL = "made of letters, digits, '.', '_', '-' (starting with a letter or digit, <= 63)"


def check(
    config: RoutesConfig, doc: Document, now: datetime, skip: frozenset[str] = frozenset()
) -> list[Problem]:
    """Every semantic problem of ``config`` (errors and warnings), in file order.

    ``skip`` names top-level sections that failed the schema (and were replaced by their
    defaults): they are not checked, nor is anything whose meaning depends on them.
    """
    out: list[Problem] = []
    if "tag" not in skip:
        out += _check_tag(config, doc)
    if not skip & {"environments", "main"}:
        out += _check_envs(config, doc, now)
    if not skip & {"environments", "main", "rules", "undeclared_env"}:
        out += _check_rules(config, doc)
    for i, p in enumerate(() if "providers" in skip else config.providers):
        if p.env is not None and not is_env_name(p.env):
            out.append(doc.problem(("providers", i, "env"), f"env {p.env!r} must be {_LABEL}"))
    out.sort(key=lambda p: (p.line, p.col))
    return out


def _check_tag(config: RoutesConfig, doc: Document) -> list[Problem]:
    out: list[Problem] = []
    for carrier in config.tag.order:
        name = getattr(config.tag, carrier)
        if isinstance(name, str) and not name.strip():
            out.append(doc.problem(("tag", carrier), f"the {carrier} name must not be empty"))
    if not config.tag.order:
        out.append(
            doc.problem(
                ("tag",),
                "no tag carrier configured: every call is untagged and goes to main",
                severity=Severity.WARNING,
            )
        )
    return out


def _check_envs(config: RoutesConfig, doc: Document, now: datetime) -> list[Problem]:
    out: list[Problem] = []
    main = config.main
    envs = config.environments
    if not is_env_name(main):
        out.append(doc.problem(("main",), f"main env name {main!r} must be {_LABEL}"))
    for name, env in envs.items():
        here = ("environments", name)
        if name == main:
            out.append(doc.problem(here, f"{main!r} is main; it is implicit", key=True))
            continue
        if not is_env_name(name):
            out.append(doc.problem(here, f"env name {name!r} must be {_LABEL}", key=True))
        if env.strict and env.fallback is not None:
            out.append(
                doc.problem((*here, "fallback"), f"env {name!r} is strict: it never falls back")
            )
        elif env.fallback is not None and env.fallback != main and env.fallback not in envs:
            out.append(
                doc.problem(
                    (*here, "fallback"),
                    f"env {name!r} falls back to {env.fallback!r}, which is not declared",
                )
            )
        if env.expires is not None and env.expires <= now:
            out.append(
                doc.problem(
                    (*here, "expires"),
                    f"env {name!r} expired at {env.expires.isoformat()}; its calls fall back",
                    severity=Severity.WARNING,
                )
            )
    out += _cycles(config, doc)
    return out


def _cycles(config: RoutesConfig, doc: Document) -> list[Problem]:
    """One error per fallback cycle, at the fallback of its first env in file order."""
    envs = config.environments
    reported: set[str] = set()
    out: list[Problem] = []
    for start in envs:
        path = [start]
        cur = envs[start].fallback
        while cur is not None and cur in envs and cur != config.main and cur not in path:
            path.append(cur)
            cur = envs[cur].fallback
        if cur is None or cur not in path:
            continue
        loop = path[path.index(cur) :]
        if reported.intersection(loop):
            continue
        reported.update(loop)
        first = min(loop, key=list(envs).index)
        ring = loop[loop.index(first) :] + loop[: loop.index(first)] + [first]
        out.append(
            doc.problem(("environments", first, "fallback"), f"fallback cycle: {' -> '.join(ring)}")
        )
    return out


def _check_rules(config: RoutesConfig, doc: Document) -> list[Problem]:
    out: list[Problem] = []
    names: dict[str, int] = {}
    declared = {config.main, *config.environments}
    for i, rule in enumerate(config.rules):
        here = ("rules", i)
        if rule.name in names:
            first = doc.pos(("rules", names[rule.name], "name"))
            out.append(
                doc.problem(
                    (*here, "name"),
                    f"duplicate rule name {rule.name!r} (first at line {first.line})",
                )
            )
        else:
            names[rule.name] = i
        targets: list[tuple[tuple[str | int, ...], str, bool]] = []
        if rule.route.env is not None:
            targets.append(((*here, "route", "env"), rule.route.env, False))
        for env in rule.route.weights or {}:
            targets.append(((*here, "route", "weights", env), env, True))
        for path, env, is_key in targets:
            if not is_env_name(env):
                out.append(doc.problem(path, f"env {env!r} must be {_LABEL}", key=is_key))
            elif config.undeclared_env == "reject" and env not in declared:
                out.append(
                    doc.problem(
                        path,
                        f"rule {rule.name!r} routes to env {env!r}, which is not declared "
                        "(undeclared_env: reject)",
                        key=is_key,
                    )
                )
        for header in rule.match.headers:
            if not header:
                out.append(doc.problem((*here, "match", "headers"), "empty header name"))
    return out + _shadowed(config, doc)


def _shadowed(config: RoutesConfig, doc: Document) -> list[Problem]:
    """A warning for each rule that an earlier rule always matches first.

    Only earlier rules that can overlap are compared: those of the same exact service, and
    the glob or service-less ones; so this stays linear for rules of distinct services.
    """
    out: list[Problem] = []
    by_service: dict[str, list[int]] = {}
    wide: list[int] = []  # rules whose service is a glob or absent
    for i, later in enumerate(config.rules):
        service = later.match.service
        exact = service if service is not None and not is_glob(service) else None
        candidates = sorted([*by_service.get(exact, ()), *wide]) if exact else range(i)
        for j in candidates:
            earlier = config.rules[j]
            if shadows(earlier.match, later.match):
                line = doc.pos(("rules", j)).line
                out.append(
                    doc.problem(
                        ("rules", i),
                        f"rule {later.name!r} is shadowed by earlier rule {earlier.name!r} "
                        f"(line {line}) and never fires",
                        severity=Severity.WARNING,
                    )
                )
                break
        if exact:
            by_service.setdefault(exact, []).append(i)
        else:
            wide.append(i)
    return out
