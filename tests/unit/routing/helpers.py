"""Shared builders for the routing tests: providers views and calls in one line."""

from __future__ import annotations

from routing import CallView, Endpoint

SVC = "com.acme.UserService"


def lanes(*envs: str, unhealthy: tuple[str, ...] = ()) -> dict[str, list[Endpoint]]:
    """One provider per env; those in ``unhealthy`` are marked unhealthy."""
    return {
        e: [Endpoint(f"10.0.0.{i}:20880", e, 100, e not in unhealthy)]
        for i, e in enumerate(envs, start=1)
    }


def call(
    service: str = SVC,
    method: str = "getUser",
    version: str = "0.0.0",
    group: str = "",
    **meta: str,
) -> CallView:
    """A call; keyword metadata names use '_' for '-' (x_env -> x-env)."""
    return CallView.of(
        service,
        method,
        version=version,
        group=group,
        metadata={k.replace("_", "-"): v for k, v in meta.items()},
    )
