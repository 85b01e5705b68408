"""Static providers: a providers file (for ``laneway explain``) and the by-env view of them.

The proxy merges the routes file's static providers with the registry's itself; this
module only turns ``StaticProvider`` entries into the view ``decide()`` takes.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from routing.loader import read_text, validate
from routing.model import ProvidersFile, StaticProvider
from routing.views import Endpoint
from routing.yamlsafe import parse


def load_providers(path: str | os.PathLike[str]) -> tuple[StaticProvider, ...]:
    """Read a providers file (``providers: [...]``, the routes file's provider schema plus
    ``healthy``). Raises ``RoutesError`` with every problem found."""
    text, name = read_text(path)
    return loads_providers(text, name)


def loads_providers(text: str, filename: str = "providers.yaml") -> tuple[StaticProvider, ...]:
    return validate(ProvidersFile, parse(text, filename)).providers


def static_view(
    providers: Iterable[StaticProvider],
    service: str,
    *,
    main: str = "main",
    version: str | None = None,
    group: str | None = None,
) -> dict[str, list[Endpoint]]:
    """Providers of ``service`` (and ``version`` / ``group`` when given) grouped by env;
    a provider without an env is in ``main``."""
    out: dict[str, list[Endpoint]] = {}
    for p in providers:
        if p.service != service:
            continue
        if (version is not None and p.version != version) or (
            group is not None and p.group != group
        ):
            continue
        env = p.env or main
        out.setdefault(env, []).append(Endpoint(p.address, env, p.weight, p.healthy, p.protocol))
    return out
