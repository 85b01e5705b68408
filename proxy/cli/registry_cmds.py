"""`laneway registry serve | ls | publish`: run the embedded registry, inspect, register.

``serve`` prints exactly one ready line, ``laneway registry listening on HOST:PORT``, once
the gRPC API accepts connections (port 0 picks a free port), then runs until SIGINT or
SIGTERM. ``publish`` prints ``published ...`` once registered and holds the registration
(the registry's lease is the process's connection) until signalled. ``ls`` reads either the
embedded registry's API (``--registry``) or ZooKeeper (``--zk``).

Exit codes: 0 ok; 1 the registry could not be reached or refused; 2 bad usage.
"""

from __future__ import annotations

import enum
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from proxy.cli import app

if TYPE_CHECKING:
    from proxy.registry.model import Lanes, Provider, ServiceKey

T = TypeVar("T")

EXIT_UNREACHABLE = 1
EXIT_USAGE = 2

LS_TIMEOUT = 15.0
# why: a listing that cannot finish in 15 s means the registry is unreachable; say so.

registry_app = typer.Typer(
    name="registry",
    help="The HSF-like registry: serve the embedded one, list providers, publish one.",
    no_args_is_help=True,
)
app.add_typer(registry_app, name="registry")


class Format(enum.StrEnum):
    text = "text"
    json = "json"


def _fail(message: str, code: int = EXIT_UNREACHABLE) -> typer.Exit:
    typer.echo(f"laneway registry: {message}", err=True)
    return typer.Exit(code)


def _parse_key(text: str) -> ServiceKey:
    from proxy.registry.model import InvalidRegistration, ServiceKey

    try:
        return ServiceKey.parse(text)
    except InvalidRegistration as e:
        raise _fail(str(e), EXIT_USAGE) from None


def _run(main: Callable[[], Awaitable[T]], errors: tuple[type[Exception], ...]) -> T:
    """``trio.run(main)``, turning the expected ``errors`` (also when a nursery wrapped
    them in an exception group) into one clean message and exit code 1."""
    import trio

    try:
        return trio.run(main)
    except errors as e:
        raise _fail(str(e)) from None
    except BaseExceptionGroup as group:
        leaf: BaseException = group
        while isinstance(leaf, BaseExceptionGroup) and len(leaf.exceptions) == 1:
            leaf = leaf.exceptions[0]
        if isinstance(leaf, errors):
            raise _fail(str(leaf) or type(leaf).__name__) from None
        raise


async def _until_signalled() -> None:
    import trio

    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            return


@registry_app.command("serve")
def serve(
    listen: Annotated[
        str, typer.Option("--listen", help="HOST:PORT for the gRPC API (port 0: any)")
    ] = "127.0.0.1:0",
    state_file: Annotated[
        Path | None, typer.Option("--state-file", help="keep the last list here across restarts")
    ] = None,
    heartbeat: Annotated[
        float, typer.Option("--heartbeat", help="publisher heartbeat interval, seconds")
    ] = 5.0,
) -> None:
    """Run the embedded registry (gRPC service laneway.registry.v1.Registry)."""
    import trio

    from proxy.registry.embedded import EmbeddedRegistry
    from proxy.registry.state_file import StateFileError

    async def main() -> None:
        registry = EmbeddedRegistry(
            listen=listen, state_file=state_file, heartbeat_interval=heartbeat
        )
        async with trio.open_nursery() as nursery:
            address = await nursery.start(registry.run)
            typer.echo(f"laneway registry listening on {address}")
            sys.stdout.flush()
            await _until_signalled()
            nursery.cancel_scope.cancel()

    _run(main, (OSError, StateFileError))


@registry_app.command("ls")
def ls(
    service: Annotated[
        str | None, typer.Option("--service", help="INTERFACE or INTERFACE:VERSION[:GROUP]")
    ] = None,
    env: Annotated[str | None, typer.Option("--env", help="only this env")] = None,
    zk: Annotated[
        str | None, typer.Option("--zk", help="ZooKeeper hosts, optionally with a /chroot")
    ] = None,
    root: Annotated[str, typer.Option("--root", help="ZooKeeper root")] = "/dubbo",
    registry: Annotated[
        str | None, typer.Option("--registry", help="embedded registry HOST:PORT")
    ] = None,
    fmt: Annotated[Format, typer.Option("--format", help="text or json")] = Format.text,
    timeout: Annotated[
        float, typer.Option("--timeout", help="seconds to wait for the registry")
    ] = LS_TIMEOUT,
) -> None:
    """List services, their envs and providers."""
    if (zk is None) == (registry is None):
        raise _fail("give exactly one of --zk HOSTS or --registry HOST:PORT", EXIT_USAGE)
    wanted = _parse_key(service) if service and ":" in service else None
    if zk is not None:
        rows = _read_zk(zk, root, timeout)
    else:
        rows = _read_registry(registry or "", timeout)
    out = []
    for key, lanes, stale in rows:
        if service and (key != wanted if wanted else key.interface != service):
            continue
        if env is not None:
            lanes = {env: lanes[env]} if env in lanes else {}
        if lanes:
            out.append((key, lanes, stale))
    if fmt is Format.json:
        import json

        typer.echo(json.dumps([_as_json(k, lanes, s) for k, lanes, s in out], indent=2))
        return
    for key, lanes, stale in out:
        typer.echo(f"{key}{'  [stale]' if stale else ''}")
        for lane, providers in lanes.items():
            for p in providers:
                typer.echo(
                    f"  {lane:<20} {p.address:<22} {p.protocol:<5} w={p.weight:<4}"
                    f" app={p.application or '-'} src={p.source}"
                )


Row = tuple["ServiceKey", "Lanes", bool]


def _read_registry(address: str, timeout: float) -> list[Row]:
    import grpc

    from proxy.registry.client import RegistryClient

    with RegistryClient(address) as client:
        try:
            listing = client.list_services(timeout=timeout)
        except grpc.RpcError as e:
            raise _fail(f"registry {address}: {e.code()} {e.details()}") from None
    return [(s.key, s.lanes, s.stale) for s in listing]


def _read_zk(hosts: str, root: str, timeout: float) -> list[Row]:
    import trio

    from proxy.registry.zk import RegistryUnavailable, ZkRegistry

    async def main() -> list[Row]:
        reg = ZkRegistry(hosts, root=root, connect_timeout=timeout)
        async with trio.open_nursery() as nursery:
            try:
                with trio.fail_after(timeout):
                    await nursery.start(reg.run)
            except trio.TooSlowError:
                raise RegistryUnavailable(
                    f"ZooKeeper {hosts}: no full listing within {timeout}s"
                ) from None
            rows = [(k, reg.snapshot(k), reg.is_stale(k)) for k in reg.services()]
            nursery.cancel_scope.cancel()
        return rows

    _quiet_kazoo()
    rows: list[Row] = _run(main, (RegistryUnavailable,))
    return rows


def _quiet_kazoo() -> None:
    """kazoo logs every reconnect attempt as a warning; a CLI reports the outcome once."""
    import logging

    logging.getLogger("kazoo").setLevel(logging.ERROR)


def _as_json(key: ServiceKey, lanes: Lanes, stale: bool) -> dict[str, object]:
    def provider(p: Provider) -> dict[str, object]:
        return {
            "address": p.address,
            "protocol": p.protocol,
            "env": p.env,
            "weight": p.weight,
            "methods": list(p.methods),
            "application": p.application,
            "source": p.source,
            "metadata": dict(p.metadata),
        }

    return {
        "service": {"interface": key.interface, "version": key.version, "group": key.group},
        "unique_name": key.unique_name,
        "stale": stale,
        "lanes": {env: [provider(p) for p in ps] for env, ps in lanes.items()},
    }


@registry_app.command("publish")
def publish(
    service: Annotated[
        str,
        typer.Option("--service", help="INTERFACE, INTERFACE:VERSION or INTERFACE:VERSION:GROUP"),
    ],
    address: Annotated[str, typer.Option("--address", help="provider HOST:PORT")],
    protocol: Annotated[str, typer.Option("--protocol", help="dubbo, tri or grpc")] = "dubbo",
    env: Annotated[str, typer.Option("--env", help="env (lane); main when untagged")] = "main",
    weight: Annotated[int, typer.Option("--weight")] = 100,
    methods: Annotated[str, typer.Option("--methods", help="comma-separated")] = "",
    application: Annotated[str, typer.Option("--application")] = "",
    zk: Annotated[
        str | None, typer.Option("--zk", help="ZooKeeper hosts, optionally with a /chroot")
    ] = None,
    root: Annotated[str, typer.Option("--root", help="ZooKeeper root")] = "/dubbo",
    registry: Annotated[
        str | None, typer.Option("--registry", help="embedded registry HOST:PORT")
    ] = None,
) -> None:
    """Register one provider and keep it registered until SIGINT / SIGTERM."""
    from proxy.registry.model import InvalidRegistration, Provider, normalize_env

    if (zk is None) == (registry is None):
        raise _fail("give exactly one of --zk HOSTS or --registry HOST:PORT", EXIT_USAGE)
    key = _parse_key(service)
    try:
        provider = Provider(
            address=address,
            protocol=protocol,
            env=normalize_env(env),
            weight=weight,
            methods=tuple(m for m in methods.split(",") if m),
            application=application,
            source="registry" if registry else "zookeeper",
        )
    except InvalidRegistration as e:
        raise _fail(str(e), EXIT_USAGE) from None
    if registry is not None:
        _publish_registry(registry, key, provider)
    else:
        _publish_zk(zk or "", root, key, provider)


def _publish_registry(address: str, key: ServiceKey, provider: Provider) -> None:
    import trio

    from proxy.registry.client import RegistryClientError, RegistryPublisher

    async def main() -> None:
        publisher = RegistryPublisher(address).start()
        try:
            await trio.to_thread.run_sync(publisher.register, key, provider)
            typer.echo(f"published {key} {provider.env} {provider.address} via {address}")
            sys.stdout.flush()
            await _until_signalled()
        finally:
            await trio.to_thread.run_sync(publisher.close)

    _run(main, (RegistryClientError,))


def _publish_zk(hosts: str, root: str, key: ServiceKey, provider: Provider) -> None:
    import trio

    from proxy.registry.zk import RegistryUnavailable, ZkRegistry

    async def main() -> None:
        reg = ZkRegistry(hosts, root=root)
        async with trio.open_nursery() as nursery:
            await nursery.start(reg.run)
            await reg.publish(key, provider)
            typer.echo(f"published {key} {provider.env} {provider.address} via zookeeper {hosts}")
            sys.stdout.flush()
            await _until_signalled()
            nursery.cancel_scope.cancel()

    _quiet_kazoo()
    _run(main, (RegistryUnavailable,))
