"""`laneway tunnel` (join a project env from a laptop), `laneway tunnel ls`, `laneway token ...`."""

from __future__ import annotations

import json
import platform
import re
import ssl
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from proxy.cli import app

EXIT_REFUSED = 1
EXIT_USAGE = 2

tunnel_app = typer.Typer(
    help="Join a project env from this machine: calls tagged with the token's env reach "
    "your local provider (docs/tunnel.md).",
    invoke_without_command=True,
    no_args_is_help=False,
)
token_app = typer.Typer(help="Issue and revoke tunnel tokens (run where laneway.yaml is).")
app.add_typer(tunnel_app, name="tunnel")
app.add_typer(token_app, name="token")

_TTL = re.compile(r"^(\d+)([smhd]?)$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}

ServerOpt = Annotated[
    str | None, typer.Option("--server", help="the proxy's tunnel listener, HOST:PORT")
]
TokenOpt = Annotated[
    str | None,
    typer.Option("--token", envvar="LANEWAY_TOKEN", help="tunnel token (or $LANEWAY_TOKEN)"),
]
CaOpt = Annotated[
    Path | None, typer.Option("--ca", help="verify the proxy's TLS certificate with this CA")
]
TlsOpt = Annotated[bool, typer.Option("--tls", help="TLS with the system's CAs")]
CertOpt = Annotated[Path | None, typer.Option("--cert", help="client certificate (mTLS)")]
KeyOpt = Annotated[Path | None, typer.Option("--key", help="client key (mTLS)")]


def parse_ttl(text: str) -> int:
    """``8h`` / ``30m`` / ``90s`` / ``1d`` / ``3600`` -> seconds."""
    match = _TTL.match(text.strip())
    if match is None:
        raise typer.BadParameter(f"ttl must look like 8h, 30m, 90s or 1d, got {text!r}")
    return int(match.group(1)) * _UNITS[match.group(2)]


def _per_service(values: list[str], count: int, name: str, default: str) -> list[str]:
    if not values:
        return [default] * count
    if len(values) == 1:
        return values * count
    if len(values) != count:
        raise typer.BadParameter(f"give {name} once, or once per --service")
    return values


def _ssl(tls: bool, ca: Path | None, cert: Path | None, key: Path | None) -> ssl.SSLContext | None:
    if not (tls or ca or cert):
        return None
    from proxy.tunnel.settings import client_ssl_context

    return client_ssl_context(ca, cert, key)


def _say(line: str) -> None:
    typer.echo(line)
    sys.stdout.flush()


@tunnel_app.callback()
def tunnel(
    ctx: typer.Context,
    server: ServerOpt = None,
    token: TokenOpt = None,
    service: Annotated[
        list[str] | None,
        typer.Option("--service", help="INTERFACE[:VERSION[:GROUP]] to serve (repeatable)"),
    ] = None,
    to: Annotated[
        list[str] | None, typer.Option("--to", help="HOST:PORT of the local provider (repeatable)")
    ] = None,
    group: Annotated[list[str] | None, typer.Option("--group", help="service group")] = None,
    protocol: Annotated[
        list[str] | None, typer.Option("--protocol", help="dubbo (default) or grpc")
    ] = None,
    name: Annotated[str, typer.Option("--name", help="how `tunnel ls` shows you")] = "",
    tls: TlsOpt = False,
    ca: CaOpt = None,
    cert: CertOpt = None,
    key: KeyOpt = None,
) -> None:
    """Dial the proxy, authenticate, and serve SERVICE from the local provider at --to in
    the token's env until Ctrl-C. Reconnects with backoff when the link drops."""
    if ctx.invoked_subcommand is not None:
        return
    import trio

    from proxy.registry.model import InvalidRegistration, ServiceKey
    from proxy.tunnel.client import LocalService, TunnelClient, run_until_signalled
    from proxy.tunnel.wire import TUNNEL_PROTOCOLS, Announced, WireError, check_local_target

    services, targets = service or [], to or []
    if server is None or token is None or not services:
        typer.echo(ctx.get_help())
        raise typer.Exit(EXIT_USAGE)
    if len(services) != len(targets):
        raise typer.BadParameter("give one --to per --service")
    groups = _per_service(group or [], len(services), "--group", "")
    protocols = _per_service(protocol or [], len(services), "--protocol", "dubbo")
    local: list[LocalService] = []
    try:
        for spec, target, grp, proto in zip(services, targets, groups, protocols, strict=True):
            if proto not in TUNNEL_PROTOCOLS:
                raise typer.BadParameter(f"--protocol must be one of {TUNNEL_PROTOCOLS}")
            parsed = ServiceKey.parse(spec)
            k = ServiceKey.of(parsed.interface, parsed.version, grp or parsed.group)
            local.append(LocalService(Announced(k, proto), check_local_target(target)))
    except (InvalidRegistration, WireError) as exc:
        raise typer.BadParameter(str(exc)) from exc
    client = TunnelClient(
        server,
        token,
        local,
        client_name=name or platform.node(),
        ssl_context=_ssl(tls, ca, cert, key),
        out=_say,
    )
    refused = trio.run(run_until_signalled, client)
    if refused is not None:
        typer.echo(f"laneway tunnel: refused: {refused.message}", err=True)
        raise typer.Exit(EXIT_REFUSED)
    typer.echo("laneway tunnel: left (the proxy has forgotten these services)")


@tunnel_app.command("ls")
def tunnel_ls(
    admin: Annotated[
        str | None, typer.Option("--admin", help="the proxy's admin API, HOST:PORT or URL")
    ] = None,
    server: ServerOpt = None,
    token: TokenOpt = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    tls: TlsOpt = False,
    ca: CaOpt = None,
    cert: CertOpt = None,
    key: KeyOpt = None,
) -> None:
    """List the live tunnels: from the admin API (--admin), or from the tunnel listener
    itself (--server and any valid --token)."""
    tunnels = (
        _tunnels_from_admin(admin)
        if admin
        else _tunnels_from_server(server, token, tls, ca, cert, key)
    )
    if as_json:
        typer.echo(json.dumps(tunnels, indent=2))
        return
    if not tunnels:
        typer.echo("no live tunnels")
    for t in tunnels:
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(t.get("since", 0))))
        typer.echo(
            f"#{t['session']}  env={t['env']}  {t['client']} from {t['peer']}  since {since}"
        )
        for s in t.get("services", []):
            typer.echo(f"    {s['service']} ({s['protocol']}) at {s['address']}")


def _tunnels_from_admin(admin: str) -> list[dict[str, Any]]:
    from proxy.admin.client import AdminError, get_json

    try:
        doc = get_json(admin, "/tunnels")
    except AdminError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_REFUSED) from exc
    tunnels = doc.get("tunnels", [])
    return [t for t in tunnels if isinstance(t, dict)] if isinstance(tunnels, list) else []


def _tunnels_from_server(
    server: str | None,
    token: str | None,
    tls: bool,
    ca: Path | None,
    cert: Path | None,
    key: Path | None,
) -> list[dict[str, Any]]:
    import trio

    from proxy.tunnel.client import TunnelRefused, list_tunnels

    if server is None or token is None:
        raise typer.BadParameter("give --admin, or --server and --token (or $LANEWAY_TOKEN)")
    try:
        return trio.run(list_tunnels, server, token, _ssl(tls, ca, cert, key))
    except TunnelRefused as exc:
        typer.echo(f"refused: {exc.message}", err=True)
        raise typer.Exit(EXIT_REFUSED) from exc
    except OSError as exc:
        typer.echo(f"error: {server}: {exc}", err=True)
        raise typer.Exit(EXIT_REFUSED) from exc


def _secret(config: Path) -> tuple[bytes, frozenset[str]]:
    from proxy.config import ConfigError, load_config
    from proxy.tunnel.settings import read_secret

    try:
        cfg = load_config(config)
        return read_secret(cfg), frozenset(cfg.tunnel.protected_envs)
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(EXIT_USAGE) from exc


ConfigOpt = Annotated[
    Path, typer.Option("--config", "-c", help="laneway.yaml holding the tunnel secret")
]


@token_app.command("issue")
def token_issue(
    env: Annotated[str, typer.Option("--env", help="the project env the token may join")],
    ttl: Annotated[str, typer.Option("--ttl", help="lifetime: 8h, 30m, ... (max 24h)")] = "8h",
    services: Annotated[
        list[str] | None,
        typer.Option("--services", help="interface glob the token may serve (repeatable)"),
    ] = None,
    config: ConfigOpt = Path("laneway.yaml"),
) -> None:
    """Print a signed token for ENV on stdout (its id, for revocation, on stderr)."""
    from proxy.tunnel.tokens import TokenError, issue_token, token_id

    secret, protected = _secret(config)
    try:
        token = issue_token(
            secret, env, parse_ttl(ttl), time.time(), services or [], protected_envs=protected
        )
    except TokenError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_USAGE) from exc
    typer.echo(token)
    typer.echo(f"token id (for `laneway token revoke`): {token_id(token)}", err=True)


@token_app.command("revoke")
def token_revoke(
    token: Annotated[str, typer.Argument(help="the token, or its 64-hex-digit id")],
    file: Annotated[Path, typer.Option("--file", help="the proxy's tunnel.revoked_file")],
) -> None:
    """Add a token's id to the revocation list; live tunnels using it close within seconds."""
    from proxy.tunnel.tokens import token_id

    ident = token.lower() if re.fullmatch(r"[0-9a-fA-F]{64}", token) else token_id(token)
    with file.open("a") as out:
        out.write(f"{ident}\n")
    typer.echo(f"revoked {ident}")
