"""Empty-push protection for the baseline lane (Dubbo ``enable-empty-protection``, Nacos).

A registry that suddenly reports no ``main`` provider for a service is more often broken
(a bad write, a half-restored ensemble) than right. Emptying main would fail every
untagged call, so the previous main providers are kept while they still answer; project
envs follow the push as it is (a project env that vanished really is gone).

Pure functions: the backend decides what "still answer" means (a TCP probe) and calls
``drop_dead`` with the result.
"""

from __future__ import annotations

from collections.abc import Iterable

from proxy.registry.model import MAIN_ENV, Lanes, Provider, group_by_env


def protect_main(old: Lanes, new: Lanes) -> tuple[Lanes, tuple[Provider, ...]]:
    """Apply a push. Returns (lanes to serve, main providers kept despite the push).

    When ``new`` has no main provider but ``old`` had some, main keeps ``old``'s providers
    and they are returned as *protected* (to be probed); otherwise ``new`` as it is.
    """
    if new.get(MAIN_ENV) or not old.get(MAIN_ENV):
        return new, ()
    kept = old[MAIN_ENV]
    merged = [p for env, ps in new.items() if env != MAIN_ENV for p in ps]
    return group_by_env([*merged, *kept]), kept


def drop_dead(lanes: Lanes, dead: Iterable[Provider]) -> Lanes:
    """``lanes`` without the ``dead`` main providers (protected ones that stopped answering)."""
    gone = set(dead)
    return group_by_env(p for ps in lanes.values() for p in ps if p not in gone)
