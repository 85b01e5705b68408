"""`laneway check` (validate a routes file) and `laneway explain` (where would a call go).

Exit codes -- check: 0 valid (warnings may be printed), 1 problems found.
explain: 0 routed, 2 no route, 1 the routes or providers file is invalid (or, with
``--admin``, the running proxy could not be asked).
Heavy imports (routing, pydantic, ruamel, rich) stay inside the commands.
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from proxy.cli import app

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_NO_ROUTE = 2


class Format(enum.StrEnum):
    text = "text"
    json = "json"


FormatOption = Annotated[Format, typer.Option("--format", help="text or json")]


@app.command()
def check(
    routes: Annotated[Path, typer.Argument(help="routes file to validate")],
    fmt: FormatOption = Format.text,
) -> None:
    """Validate a routes file: every problem as FILE:LINE:COL: error: message."""
    import json

    from routing import RoutesError, load

    try:
        table = load(routes)
    except RoutesError as exc:
        if fmt is Format.json:
            problems = [p.to_dict() for p in (*exc.errors, *exc.warnings)]
            typer.echo(json.dumps({"valid": False, "problems": problems}, indent=2))
        else:
            for p in sorted((*exc.errors, *exc.warnings), key=lambda p: (p.line, p.col)):
                typer.echo(str(p))
            typer.echo(f"{routes}: {len(exc.errors)} error(s)", err=True)
        raise typer.Exit(EXIT_INVALID) from None
    if fmt is Format.json:
        doc = {
            "valid": True,
            "version": table.version,
            "problems": [p.to_dict() for p in table.warnings],
        }
        typer.echo(json.dumps(doc, indent=2))
    else:
        for p in table.warnings:
            typer.echo(str(p))
        cfg = table.config
        typer.echo(
            f"{routes}: ok (version {table.version}; {len(cfg.environments)} envs, "
            f"{len(cfg.rules)} rules, {len(cfg.providers)} static providers)"
        )


@app.command()
def explain(
    *,
    routes: Annotated[Path | None, typer.Option("--routes", help="routes file")] = None,
    service: Annotated[str, typer.Option("--service", help="service interface")],
    method: Annotated[str, typer.Option("--method", help="method name")] = "",
    version: Annotated[
        str | None, typer.Option("--version", help="service version (default: any)")
    ] = None,
    group: Annotated[
        str | None, typer.Option("--group", help="service group (default: any)")
    ] = None,
    header: Annotated[
        list[str] | None,
        typer.Option("-H", "--header", help="NAME=VALUE header/attachment (repeatable)"),
    ] = None,
    providers: Annotated[
        Path | None, typer.Option("--providers", help="providers file (registry snapshot)")
    ] = None,
    fmt: FormatOption = Format.text,
    admin: Annotated[
        str | None,
        typer.Option("--admin", help="ask a running proxy (admin URL) with its live providers"),
    ] = None,
) -> None:
    """Show where a call would be routed, and why (offline from --routes, or live --admin)."""
    import json

    from routing import CallView, RoutesError, load, load_providers, static_view

    pairs: list[tuple[str, str]] = []
    for item in header or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise typer.BadParameter(f"expected NAME=VALUE, got {item!r}", param_hint="-H")
        pairs.append((name.strip(), value))
    if admin is not None:
        if routes is not None or providers is not None:
            raise typer.BadParameter("--admin asks a running proxy: drop --routes / --providers")
        _explain_live(admin, service, method, pairs, version, group, fmt)
    if routes is None:
        raise typer.BadParameter("give --routes FILE, or --admin URL of a running proxy")
    try:
        table = load(routes)
        extra = load_providers(providers) if providers is not None else ()
    except RoutesError as exc:
        for p in exc.errors:
            typer.echo(str(p), err=True)
        raise typer.Exit(EXIT_INVALID) from None
    call = CallView.of(
        service, method, version=version or "0.0.0", group=group or "", metadata=pairs
    )
    view = static_view(
        (*table.static_providers, *extra), service, main=table.main, version=version, group=group
    )
    decision = table.decide(call, view)
    chain: list[str] = []
    for step in table.chain(decision.env):
        chain.append(step.env)
        if step.strict:
            break  # a strict env ends its chain (unless expired, which the lanes show)
    if fmt is Format.json:
        typer.echo(json.dumps({**decision.to_dict(), "chain": chain}, indent=2))
    else:
        _print_table(decision.to_dict(), chain)
    raise typer.Exit(EXIT_OK if decision.ok else EXIT_NO_ROUTE)


def _explain_live(
    admin: str,
    service: str,
    method: str,
    pairs: list[tuple[str, str]],
    version: str | None,
    group: str | None,
    fmt: Format,
) -> NoReturn:
    """`explain --admin`: the running proxy's answer (the same JSON decision). Exits."""
    import json

    from proxy.admin.client import AdminError
    from proxy.admin.client import explain as ask

    try:
        doc = ask(admin, service, method, pairs, version=version, group=group)
    except AdminError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_INVALID) from None
    raw_chain = doc.get("chain")
    chain = [str(e) for e in raw_chain] if isinstance(raw_chain, list) else []
    if fmt is Format.json:
        typer.echo(json.dumps(doc, indent=2))
    else:
        _print_table(doc, chain)
    raise typer.Exit(EXIT_OK if doc.get("provider") else EXIT_NO_ROUTE)


def _print_table(d: dict[str, object], chain: list[str]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title="laneway explain", show_header=False)
    t.add_column("field", style="bold")
    t.add_column("value")
    tried = d["lanes_tried"]
    lanes = ""
    if isinstance(tried, list):
        lanes = ", ".join(f"{a['env']} ({a['outcome']})" for a in tried)
    provider = d["provider"]
    rows = [
        ("service", f"{d['service']} {d['method']}".strip()),
        ("tag", f"{d['tag']} (from {d['carrier']})" if d["tag"] else "untagged"),
        ("invalid tag", d["invalid_tag"]),
        ("rule", d["rule"]),
        ("env", d["env"]),
        ("chain", " -> ".join(chain)),
        ("lanes tried", lanes),
        ("lane", d["lane"]),
        ("fallback", d["fallback"]),
        ("provider", provider["address"] if isinstance(provider, dict) else None),
        ("error", d["error"]),
        ("table version", d["table_version"]),
    ]
    for name, value in rows:
        if value is not None:
            t.add_row(name, str(value))
    Console().print(t)
