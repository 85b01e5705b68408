"""`laneway` command-line entry point.

Each command family lives in its own module under ``proxy.cli`` and registers itself on
``app`` when imported; ``main`` imports them all. Heavy imports stay inside the commands so
``laneway --help`` is fast.
"""

from __future__ import annotations

import importlib

import typer

from proxy import __version__

app = typer.Typer(
    name="laneway",
    help="RPC compatibility and environment-routing proxy (Dubbo 2, gRPC / Triple).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)

# Command modules, imported for their registrations on `app` (by fixed name, never from input).
COMMAND_MODULES: tuple[str, ...] = (
    "routing_cmds",
    "serve_cmds",
    "registry_cmds",
    "tunnel_cmds",
)


@app.callback()
def _root() -> None:
    """laneway: route Dubbo 2 and gRPC calls by environment tag, falling back to main."""


@app.command()
def version() -> None:
    """Print laneway's version."""
    typer.echo(f"laneway {__version__}")


def main() -> None:
    for name in COMMAND_MODULES:
        importlib.import_module(f"proxy.cli.{name}")
    app()
