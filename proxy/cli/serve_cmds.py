"""`laneway serve`, `laneway demo` and `laneway call`."""

from __future__ import annotations

import gc
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from proxy.cli import app

EXIT_CONFIG = 2


@app.command()
def serve(
    config: Annotated[Path, typer.Option("--config", "-c", help="laneway.yaml")] = Path(
        "laneway.yaml"
    ),
) -> None:
    """Run the proxy: listeners, registry, routes (hot-reloaded). SIGTERM drains."""
    import trio

    from proxy.config import ConfigError, load_config
    from proxy.logs import configure as configure_logs
    from proxy.serve import Bound, Proxy, run_until_signalled
    from routing import RoutesError

    configure_logs()  # JSON lines off a terminal, readable lines on one (docs/observability.md)
    try:
        cfg = load_config(config)
        proxy = Proxy(cfg)
    except (ConfigError, RoutesError) as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(EXIT_CONFIG) from exc

    def ready(bound: Bound) -> None:
        # Everything alive now (modules, config, tables, codecs' static data) lives as long
        # as the process: move it out of the cyclic collector's generations, so that a full
        # collection scans only what calls allocated (bench/RESULTS.md: a gen-2 pass over
        # ~65k startup objects took ~20 ms, a tail-latency spike).
        gc.collect()
        gc.freeze()
        typer.echo(
            f"laneway ready: dubbo={bound.dubbo} grpc={bound.grpc} registry={bound.registry}"
            + (f" tunnel={bound.tunnel}" if bound.tunnel else "")
            + (f" admin={bound.admin}" if bound.admin else "")
        )
        sys.stdout.flush()

    trio.run(run_until_signalled, proxy, ready)


@app.command()
def demo(
    dubbo: Annotated[str, typer.Option(help="Dubbo listen address")] = "127.0.0.1:20880",
) -> None:
    """Start the proxy, the embedded registry and demo providers in main and feature-1."""
    import trio

    from proxy.demo import run_demo

    try:
        trio.run(run_demo, dubbo)
    except KeyboardInterrupt:
        typer.echo("demo stopped")


def _parse_attach(values: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"--attach wants k=v, got {item!r}")
        out[key] = value
    return out


def _jsonable(value: Any) -> Any:
    from proxy.codecs.hessian2 import HessianDate, HessianObject

    if isinstance(value, HessianObject):
        return {"$class": value.type_name, **{k: _jsonable(v) for k, v in value.fields.items()}}
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, HessianDate):
        return value.to_datetime().isoformat()
    return value


@app.command()
def call(
    url: Annotated[str, typer.Argument(help="dubbo://HOST:PORT/INTERFACE")],
    method: Annotated[str, typer.Argument()],
    args: Annotated[str, typer.Argument(help="JSON array of arguments")] = "[]",
    types: Annotated[
        list[str] | None, typer.Option("--types", help="Java type of each argument")
    ] = None,
    version: Annotated[str, typer.Option()] = "0.0.0",
    group: Annotated[str, typer.Option()] = "",
    tag: Annotated[str | None, typer.Option(help="env tag (dubbo.tag attachment)")] = None,
    attach: Annotated[list[str] | None, typer.Option("--attach", help="k=v attachment")] = None,
    timeout: Annotated[float, typer.Option(help="seconds")] = 10.0,
) -> None:
    """Call a Dubbo service (JSON arguments in, JSON result out). Exit 1 with the status
    on error."""
    import trio

    from proxy.net.dubbo_client import call_once, descriptor_of

    if not url.startswith("dubbo://") or "/" not in url[len("dubbo://") :]:
        raise typer.BadParameter("url must look like dubbo://HOST:PORT/INTERFACE")
    address, _, interface = url[len("dubbo://") :].partition("/")
    try:
        arguments = json.loads(args)
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(f"arguments are not JSON: {exc}") from exc
    if not isinstance(arguments, list):
        raise typer.BadParameter("arguments must be a JSON array")
    attachments: dict[str, object] = dict(_parse_attach(attach or []))
    if group:
        attachments["group"] = group
    if tag:
        attachments["dubbo.tag"] = tag
    descriptor = descriptor_of(types) if types else None

    async def go() -> Any:
        with trio.fail_after(timeout):
            return await call_once(
                address,
                interface,
                method,
                arguments,
                parameter_types=descriptor,
                version=version,
                attachments=attachments,
            )

    try:
        result = trio.run(go)
    except (OSError, trio.TooSlowError) as exc:
        typer.echo(f"error: {address}: {exc or 'timed out'}", err=True)
        raise typer.Exit(1) from exc
    out = {
        "status": result.status,
        "value": _jsonable(result.value),
        "attachments": _jsonable(dict(result.attachments)),
    }
    if result.exception is not None:
        out["exception"] = _jsonable(result.exception)
    if result.error_message is not None:
        out["error"] = result.error_message
    typer.echo(json.dumps(out, indent=2, ensure_ascii=False))
    if not result.ok:
        raise typer.Exit(1)
